"""A simulated school day through the whole pipeline, with every part real.

Three schools' simulated devices serve Modbus TCP on loopback; three edge agents poll them, keep the samples
in their outboxes and publish to a real Mosquitto; the real ingest (a separate process) stores them in SQLite
and in PostgreSQL. A manual clock moves the day forward one poll at a time, so the test decides exactly when
each poll happens. At the end the stored 15-minute energies must equal the simulators' own counters to within
1 Wh per interval, and every sample polled must be stored exactly once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from common.broker import parse_broker_url
from common.clock import CLOCK_ENV, ManualClock, ScaledClock, parse_iso_ms
from common.sites import Site, load_site
from edge.agent import EdgeAgent, build_pollers
from edge.outbox import Outbox
from lokalnie.ports import free_port_run
from simulators.loopback import loopback_site
from simulators.model import Counters
from simulators.server import SiteSimulator
from tests import servers
from tests.conftest import PROFILES_DIR, SITES_DIR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHOOLS = ("sp5", "pm4", "sp11")
DAY_START_MS = parse_iso_ms("2026-06-15T06:00:00+02:00")  # a Monday with lessons
DAY_END_MS = parse_iso_ms("2026-06-15T18:00:00+02:00")
# A minute between polls (the site files say 10 s): the same checks over half the steps of 30 s.
POLL_PERIOD_S = 60
QUARTER_MS = 15 * 60 * 1000
# The simulators answer in the agents' event loop: a loop held up by a slow disk (a loaded CI machine) must
# not turn one poll moment into six timeouts, which the count below would take for lost samples.
PATIENT_TIMEOUT_S = 15.0


@pytest.fixture
def school_sites(tmp_path: Path) -> list[Site]:
    """The three schools moved to loopback ports, polled each minute, written where the ingest reads sites."""
    sites_dir = tmp_path / "sites"
    sites_dir.mkdir()
    first_port = free_port_run(2 * len(SCHOOLS))
    sites = []
    for index, school in enumerate(SCHOOLS):
        site = loopback_site(load_site(SITES_DIR / f"{school}.yaml"), first_port + 2 * index)
        site = site.model_copy(update={"poll_period_s": POLL_PERIOD_S})
        (sites_dir / f"{school}.yaml").write_text(
            yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True)
        )
        sites.append(site)
    return sites


@pytest.fixture
def ingest(
    broker: servers.Broker, database_url: str, tmp_path: Path, school_sites: list[Site]
) -> Iterator[subprocess.Popen[bytes]]:
    """`lokalnie ingest` as its own process, on a clock that sees the simulated day as today."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MQTT_URL": broker.url,
        "LOKALNIE_SITES_DIR": str(tmp_path / "sites"),
        "LOKALNIE_INGEST_GROUP": f"day-{tmp_path.name}",
        "LOKALNIE_INGEST_CLIENT_ID": f"ingest-{tmp_path.name}",
        CLOCK_ENV: ScaledClock(DAY_START_MS, 1.0).spec(),
    }
    process = servers.start([sys.executable, "-m", "lokalnie", "ingest"], tmp_path / "ingest.log", env)
    try:
        # Until the ingest has subscribed, the broker holds no session for it and would drop telemetry.
        servers.wait_for_log(tmp_path / "ingest.log", "subscribed to", process=process)
        yield process
    finally:
        servers.stop_process(process)
        assert process.returncode == 0, (tmp_path / "ingest.log").read_text()[-3000:]


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def run_day(
    sites: list[Site], broker: servers.Broker, tmp_path: Path
) -> tuple[dict[str, SiteSimulator], int]:
    """Run the day; return the simulators and how many samples the agents polled."""
    clock = ManualClock(DAY_START_MS - 1)
    # A recently replaced meter: the SDM630's float32 kWh registers resolve 1 Wh below 8,388 kWh.
    simulators = {
        site.id: SiteSimulator(
            site, clock, seed=index, initial=Counters(150_000_000.0, 1_000_000.0, 200_000.0)
        )
        for index, site in enumerate(sites)
    }
    for simulator in simulators.values():
        await simulator.start()
    address = parse_broker_url(broker.url)
    agents = [
        EdgeAgent(site, build_pollers(site, PROFILES_DIR), Outbox(tmp_path / f"{site.id}.db"), address, clock)
        for site in sites
    ]
    for agent in agents:
        for bridge in agent.bridges:
            bridge.link.settings = replace(bridge.link.settings, timeout_s=PATIENT_TIMEOUT_S)
    stop = asyncio.Event()
    running = [asyncio.create_task(agent.run(stop)) for agent in agents]
    try:
        await wait_until(lambda: all(a.publisher and a.publisher.connected for a in agents), 10, "the broker")
        for moment_ms in range(DAY_START_MS, DAY_END_MS + 1, POLL_PERIOD_S * 1000):
            await clock.advance_to(moment_ms)
            await wait_until(
                lambda m=moment_ms: all(a.last_poll_ms >= m for a in agents), 2 * PATIENT_TIMEOUT_S, "a poll"
            )
        await wait_until(lambda: all(a.outbox.count() == 0 for a in agents), 30, "the outboxes to drain")
    finally:
        stop.set()
        await asyncio.gather(*running)
        for simulator in simulators.values():
            await simulator.stop()
    return simulators, sum(agent.outbox.last_sequence() for agent in agents)


def stored_count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT COUNT(*) FROM samples")).scalar_one())


def dead_letters(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT topic, reason FROM dead_letters ORDER BY id")).all()
    return [(str(topic), str(reason)) for topic, reason in rows]


def test_a_school_day_arrives_whole_and_exact(
    school_sites: list[Site],
    broker: servers.Broker,
    ingest: subprocess.Popen[bytes],
    database_url: str,
    tmp_path: Path,
) -> None:
    simulators, polled = asyncio.run(run_day(school_sites, broker, tmp_path))

    polls = (DAY_END_MS - DAY_START_MS) // (POLL_PERIOD_S * 1000) + 1
    assert polled == polls * 2 * len(SCHOOLS), "every device answered every poll"
    engine = sa.create_engine(database_url)
    deadline = time.monotonic() + 60
    while stored_count(engine) < polled and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored_count(engine) == polled, (
        f"every polled sample is stored exactly once; dead letters: {dead_letters(engine)}; the ingest's log "
        f"ends: {(tmp_path / 'ingest.log').read_text()[-3000:]}"
    )

    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT school_id, start_ms, pv_wh, import_wh, export_wh, consumption_wh FROM intervals "
                "WHERE start_ms >= :start AND start_ms < :end AND complete ORDER BY school_id, start_ms"
            ),
            {"start": DAY_START_MS, "end": DAY_END_MS},
        ).all()
    engine.dispose()
    quarters = (DAY_END_MS - DAY_START_MS) // QUARTER_MS
    assert len(rows) == quarters * len(SCHOOLS), "every quarter hour of the day has a complete interval"
    for school_id, start_ms, pv_wh, import_wh, export_wh, consumption_wh in rows:
        model = simulators[school_id].model
        before, after = model.state_at(start_ms), model.state_at(start_ms + QUARTER_MS)
        assert pv_wh == pytest.approx(after.pv_energy_wh - before.pv_energy_wh, abs=1.0)
        assert import_wh == pytest.approx(after.import_wh - before.import_wh, abs=1.0)
        assert export_wh == pytest.approx(after.export_wh - before.export_wh, abs=1.0)
        assert consumption_wh == pytest.approx(pv_wh + import_wh - export_wh, abs=1e-6)
    noon = [row for row in rows if row[1] == parse_iso_ms("2026-06-15T12:00:00+02:00")]
    assert all(row[2] > 1000 for row in noon), "a June noon produces PV energy at every school"
