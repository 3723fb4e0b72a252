"""A broker outage of a whole simulated day loses no reading, and the backlog is delivered in order, flagged
as backfill, while live samples keep flowing beside it.

A real Mosquitto (with persistence, so that the test's subscriber keeps its session across the restart) is
stopped; the agent polls simulated devices over real Modbus TCP for a day on a manual clock, one poll a
minute as fast as it can; the broker comes back on the same port; the agent replays the backlog at its rate
limit after its random start delay while the polls go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from common.broker import parse_broker_url
from common.clock import ManualClock
from common.sites import Site
from edge.agent import EdgeAgent, build_pollers
from edge.outbox import Outbox
from edge.publisher import PublisherSettings
from lokalnie.ports import free_port
from simulators.server import SiteSimulator
from tests import servers
from tests.conftest import PROFILES_DIR
from tests.edge.conftest import NOON_MS, Collector, device, running, school, wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

PERIOD_S = 60
DAY_POLLS = 24 * 3600 // PERIOD_S


def persistent_config(port: int, directory: Path) -> str:
    return servers.mosquitto_config(port, directory).replace(
        "persistence false\n", f"persistence true\npersistence_location {directory}/\nautosave_interval 0\n"
    )


class Broker:
    """A Mosquitto that a test can stop and start again on the same port with the same persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._running: contextlib.AbstractContextManager[servers.Broker] | None = None

    def start(self) -> None:
        self._running = servers.mosquitto(
            self.directory, persistent_config(self.port, self.directory), self.port
        )
        self._running.__enter__()

    def stop(self) -> None:
        if self._running is not None:
            self._running.__exit__(None, None, None)
            self._running = None


def test_a_day_long_broker_outage(tmp_path: Path) -> None:
    site = school(
        [device("inverter", "sunspec-inverter"), device("meter", "eastron-sdm630")], poll_period_s=PERIOD_S
    )
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    collector = None
    try:
        collector = Collector(broker.url, site.id, client_id=f"outage-{tmp_path.name}", session=True)
        result = asyncio.run(scenario(site, broker, tmp_path, collector))
        wait_for(lambda: set(range(1, result.last_seq + 1)) <= set(collector.seqs()), 30, "every sample")
    finally:
        if collector is not None:
            collector.close()
        broker.stop()

    assert set(collector.seqs()) == set(range(1, result.last_seq + 1)), "no reading lost, none invented"
    backfill = _first_seen(collector.seqs(backfill=True))
    # All but the last live window's samples (two polls of two devices) are backlog.
    assert len(backfill) >= 2 * (DAY_POLLS - 3), "the day's samples came back as backfill"
    assert backfill == sorted(backfill), "the backlog arrives in order"
    by_seq = {s.seq: (s.ts_ms, b.backfill) for b in collector.batches for s in b.samples}
    for seq, (ts_ms, flagged) in by_seq.items():
        if result.outage_from_ms < ts_ms < result.back_at_ms - 2 * PERIOD_S * 1000:
            assert flagged, f"sample {seq} of the outage must be flagged as backfill"
        if ts_ms > result.back_at_ms:
            assert not flagged, f"sample {seq} taken after the broker came back is live"
    arrivals = [b.backfill for b in collector.batches]
    first, last = arrivals.index(True), len(arrivals) - 1 - arrivals[::-1].index(True)
    assert False in arrivals[first:last], "live samples flowed while the backlog was replayed"


def _first_seen(seqs: list[int]) -> list[int]:
    seen: set[int] = set()
    return [s for s in seqs if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]


class Result:
    def __init__(self, last_seq: int, outage_from_ms: int, back_at_ms: int) -> None:
        self.last_seq, self.outage_from_ms, self.back_at_ms = last_seq, outage_from_ms, back_at_ms


async def scenario(site: Site, broker: Broker, tmp_path: Path, collector: Collector) -> Result:
    clock = ManualClock(NOON_MS)
    step = 0

    async def poll(agent: EdgeAgent) -> None:
        nonlocal step
        step += 1
        moment = NOON_MS + step * PERIOD_S * 1000
        await clock.advance_to(moment)
        await wait_until(lambda: agent.last_poll_ms >= moment, 10, f"poll {step}")

    settings = PublisherSettings(
        live_window_ms=2 * PERIOD_S * 1000,
        backfill_samples_per_s=1500,
        backfill_batch_size=250,
        backfill_delay_max_s=1.0,
        reconnect_min_s=1,
        reconnect_max_s=1,
    )
    async with SiteSimulator(site, clock, seed=2) as _:
        agent = EdgeAgent(
            site,
            build_pollers(site, PROFILES_DIR),
            Outbox(tmp_path / "outbox.db"),
            parse_broker_url(broker.url),
            clock,
            settings,
        )
        publisher = lambda: agent.publisher  # noqa: E731
        async with running(agent):
            await wait_until(lambda: bool(publisher() and publisher().connected), 10, "the broker")  # type: ignore[union-attr]
            for _ in range(5):
                await poll(agent)
            await wait_until(lambda: agent.outbox.count() == 0, 10, "the live samples")
            await asyncio.to_thread(broker.stop)
            await wait_until(lambda: not publisher().connected, 10, "the disconnection")  # type: ignore[union-attr]
            outage_from_ms = clock.now_ms()
            for _ in range(DAY_POLLS):
                await poll(agent)
            assert agent.outbox.count() >= 2 * DAY_POLLS, "the day waits in the outbox"
            await asyncio.to_thread(broker.start)
            back_at_ms = clock.now_ms()
            await wait_until(lambda: publisher().connected, 15, "the reconnection")  # type: ignore[union-attr]
            # Live polls go on while the backlog is replayed.
            while agent.outbox.count() > 0 or step < DAY_POLLS + 5 + 40:
                await poll(agent)
                await asyncio.sleep(0.05)
                if step > DAY_POLLS + 2000:
                    raise AssertionError("the backlog never drained")
            return Result(agent.outbox.last_sequence(), outage_from_ms, back_at_ms)
