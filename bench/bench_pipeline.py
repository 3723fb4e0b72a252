"""Readings per second through the whole pipeline: Modbus → edge agent → Mosquitto → ingest → committed rows.

Sixteen simulated schools and their agents run in this process on a manual clock that moves to the next poll
as soon as every agent has polled, so the pipeline runs as fast as it can. The baseline is the same run
without an ingest (``mosquitto_sub`` taking the messages, since the broker does not acknowledge a message no
one subscribed to as delivered, and the agents keep such rows): how fast the agents alone poll, commit to
their outboxes and get the broker's acknowledgements. The ratio says how close the whole pipeline comes to
the edge side's own pace.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import yaml

from bench.report import report
from common.broker import parse_broker_url
from common.clock import CLOCK_ENV, ManualClock, ScaledClock, parse_iso_ms
from common.sites import Site, load_sites
from edge.agent import EdgeAgent, build_pollers
from edge.outbox import Outbox
from lokalnie.ports import free_port_run
from simulators.loopback import loopback_site
from simulators.server import SiteSimulator
from tests import servers

REPO = Path(__file__).resolve().parent.parent
START_MS = parse_iso_ms("2026-06-15T10:00:00+02:00")
POLLS = int(os.environ.get("BENCH_PIPELINE_POLLS", "150"))


def loopback_sites(directory: Path) -> list[Site]:
    sites = load_sites(REPO / "firmware-config" / "sites")
    first_port = free_port_run(2 * len(sites))
    moved = []
    for index, site in enumerate(sites):
        site = loopback_site(site, first_port + 2 * index)
        (directory / f"{site.id}.yaml").write_text(
            yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True)
        )
        moved.append(site)
    return moved


async def run_edge(sites: list[Site], broker_url: str, work: Path, tag: str) -> tuple[float, int]:
    """Poll every school POLLS times, fast; return (seconds until the outboxes drained, readings)."""
    clock = ManualClock(START_MS - 1)
    simulators = [SiteSimulator(site, clock, seed=i) for i, site in enumerate(sites)]
    for simulator in simulators:
        await simulator.start()
    profiles = REPO / "firmware-config" / "profiles"
    agents = [
        EdgeAgent(
            site,
            build_pollers(site, profiles),
            Outbox(work / f"{tag}-{site.id}.db"),
            parse_broker_url(broker_url),
            clock,
        )
        for site in sites
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(agent.run(stop)) for agent in agents]
    while not all(agent.publisher and agent.publisher.connected for agent in agents):
        await asyncio.sleep(0.01)
    began = time.perf_counter()
    period_ms = sites[0].poll_period_s * 1000
    for step in range(POLLS):
        moment = START_MS + step * period_ms
        await clock.advance_to(moment)
        while not all(agent.last_poll_ms >= moment for agent in agents):
            await asyncio.sleep(0.0005)
    while any(agent.outbox.count() for agent in agents):
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - began
    readings = sum(len(poller.profile.published) for agent in agents for poller in agent.pollers) * POLLS
    stop.set()
    await asyncio.gather(*tasks)
    for simulator in simulators:
        await simulator.stop()
    return elapsed, readings


def stored_samples(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        count = int(connection.execute(sa.text("SELECT COUNT(*) FROM samples")).scalar_one())
    engine.dispose()
    return count


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        (work / "sites").mkdir()
        sites = loopback_sites(work / "sites")
        with servers.mosquitto(work / "broker") as broker:
            with servers.subscriber(broker):
                edge_s, readings = asyncio.run(run_edge(sites, broker.url, work, "edge-only"))

            url = f"sqlite:///{work / 'lokalnie.db'}"
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "MQTT_URL": broker.url,
                "LOKALNIE_SITES_DIR": str(work / "sites"),
                CLOCK_ENV: ScaledClock(START_MS, 1.0).spec(),
                "LOKALNIE_LOG_LEVEL": "WARNING",
            }
            ingest = servers.start(
                [sys.executable, "-m", "lokalnie", "ingest"],
                work / "ingest.log",
                {**env, "LOKALNIE_LOG_LEVEL": "INFO"},
            )
            try:
                servers.wait_for_log(work / "ingest.log", "subscribed to", process=ingest)
                polling_s, _ = asyncio.run(run_edge(sites, broker.url, work, "pipeline"))
                drained_at = time.perf_counter()
                expected = POLLS * 2 * len(sites)
                while stored_samples(url) < expected:
                    time.sleep(0.05)
                # From the first poll until the ingest has committed the last sample.
                pipeline_s = polling_s + (time.perf_counter() - drained_at)
            finally:
                servers.stop_process(ingest)
    report(
        "pipeline_readings_per_s",
        "readings per second from Modbus to committed rows (16 schools, SQLite)",
        readings / pipeline_s,
        "readings/s",
        readings / edge_s,
        baseline_name="the edge side alone: Modbus polls to broker acknowledgements",
        details={
            "readings": readings,
            "polls_per_school": POLLS,
            "pipeline_s": pipeline_s,
            "edge_only_s": edge_s,
        },
    )


if __name__ == "__main__":
    main()
