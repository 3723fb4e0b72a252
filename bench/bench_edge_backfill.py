"""How fast the agent replays the backlog of a one-day outage: a day of a school's samples (an inverter and a
meter every 10 s, 17,280 samples with the quantities the shipped profiles publish) sent to a real Mosquitto
and acknowledged (``mosquitto_sub`` taking them, as the ingest would), oldest first, with the rate limit
lifted. The baseline is the pace the agent keeps by
default (`PublisherSettings.backfill_samples_per_s`), so the ratio says how much headroom that leaves.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.report import report
from common.broker import parse_broker_url
from common.clock import SystemClock
from edge.modbus.profiles import load_profile
from edge.outbox import NewSample, Outbox
from edge.publisher import Publisher, PublisherSettings
from tests import servers
from tests.conftest import PROFILES_DIR

POLLS_A_DAY = 8640


def day_of_samples(path: Path, now_ms: int) -> int:
    inverter = {
        q: 1234.5 + 17.25 * i for i, q in enumerate(load_profile(PROFILES_DIR, "sunspec-inverter").published)
    }
    meter = {
        q: 229.3438720703125 + i for i, q in enumerate(load_profile(PROFILES_DIR, "eastron-sdm630").published)
    }
    start = now_ms - 86_400_000 - 3_600_000
    box = Outbox(path)
    samples = [
        NewSample(device, kind, start + 10_000 * poll, dict(values))
        for poll in range(POLLS_A_DAY)
        for device, kind, values in (("inverter", "pv_inverter", inverter), ("meter", "grid_meter", meter))
    ]
    box.append(samples)
    box.close()
    return len(samples)


async def replay(path: Path, broker_url: str) -> float:
    """Seconds from the connection until the broker has acknowledged the whole backlog."""
    box = Outbox(path)
    settings = PublisherSettings(backfill_samples_per_s=0, backfill_delay_max_s=0)
    publisher = Publisher("sp5", box, parse_broker_url(broker_url), SystemClock(), settings)
    stop = asyncio.Event()
    publisher.start()
    running = asyncio.create_task(publisher.run(stop))
    while not publisher.connected:
        await asyncio.sleep(0.001)
    started = time.perf_counter()
    while box.count():
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    stop.set()
    await running
    await publisher.stop()
    box.close()
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        samples = day_of_samples(work / "outbox.db", SystemClock().now_ms())
        size = (work / "outbox.db").stat().st_size
        with servers.mosquitto(work / "broker") as broker, servers.subscriber(broker):
            elapsed = asyncio.run(replay(work / "outbox.db", broker.url))
    default_rate = PublisherSettings().backfill_samples_per_s
    report(
        "edge_backfill_rate",
        "backlog replay rate after a one-day outage (rate limit lifted, acknowledged by Mosquitto)",
        samples / elapsed,
        "samples/s",
        default_rate,
        baseline_name="the agent's default backfill pace",
        details={
            "samples": samples,
            "replay_s_unlimited": elapsed,
            "replay_s_at_default_pace": samples / default_rate,
            "outbox_file_mb": size / 1e6,
            "readings_per_sample": 13,
        },
    )


if __name__ == "__main__":
    main()
