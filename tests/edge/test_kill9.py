"""``kill -9`` of the agent while it publishes loses no reading: after a restart it sends again whatever the
broker had not acknowledged (the cloud drops the repeats). The agent and the simulators run as their own
processes (``lokalnie edge run``, ``lokalnie sim``), as on a school's Raspberry Pi, with a real Mosquitto."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.clock import CLOCK_ENV, ScaledClock
from edge.outbox import NewSample, Outbox
from tests import servers
from tests.edge.conftest import NOON_MS, Collector, device, school, wait_for, write_site

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

BACKLOG = 6000
DAY_MS = 86_400_000


def test_kill_9_while_publishing_loses_no_reading(broker: servers.Broker, tmp_path: Path) -> None:
    site = school(
        [device("inverter", "sunspec-inverter"), device("meter", "eastron-sdm630")], school_id="sp6"
    )
    site_file = write_site(site, tmp_path / "sites")
    outbox_path = tmp_path / "outbox.db"
    # A backlog from an outage two days ago, waiting to be replayed.
    box = Outbox(outbox_path)
    box.append(
        [
            NewSample(
                "meter",
                "grid_meter",
                NOON_MS - 2 * DAY_MS + 10_000 * i,
                {"power_w": float(i), "import_wh": 1e6 + i},
            )
            for i in range(BACKLOG)
        ]
    )
    box.close()
    env = {**os.environ, CLOCK_ENV: ScaledClock(NOON_MS, 10.0).spec(), "LOKALNIE_LOG_LEVEL": "INFO"}
    agent_args = [
        sys.executable,
        "-m",
        "lokalnie",
        "edge",
        "run",
        "--site",
        str(site_file),
        "--outbox",
        str(outbox_path),
        "--mqtt",
        broker.url,
        "--backfill-rate",
        "1000",
        "--backfill-delay-max",
        "0",
    ]
    collector = Collector(broker.url, site.id, client_id=f"kill9-{tmp_path.name}")
    simulator = servers.start(
        [sys.executable, "-m", "lokalnie", "sim", "--site", str(site_file)], tmp_path / "sim.log", env
    )
    agent: subprocess.Popen[bytes] | None = None
    try:
        for simulated in site.devices:
            servers.wait_for_port(simulated.transport.port, process=simulator)  # type: ignore[union-attr]
        agent = servers.start(agent_args, tmp_path / "agent.log", env)
        wait_for(lambda: len(set(collector.seqs(backfill=True))) >= 1500, 30, "the replay to be under way")
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(10)
        assert agent.returncode == -signal.SIGKILL
        replayed_before_kill = set(collector.seqs(backfill=True))
        assert len(replayed_before_kill) < BACKLOG, "killed in the middle of the replay"

        agent = servers.start(agent_args, tmp_path / "agent.log", env)
        wait_for(lambda: set(range(1, BACKLOG + 1)) <= set(collector.seqs()), 40, "the whole backlog")
        wait_for(lambda: any(seq > BACKLOG for seq in collector.seqs(backfill=False)), 20, "live samples")
        servers.stop_process(agent)
        assert agent.returncode == 0, (tmp_path / "agent.log").read_text()[-3000:]
    finally:
        collector.close()
        if agent is not None:
            servers.stop_process(agent)
        servers.stop_process(simulator)

    box = Outbox(outbox_path)
    still_waiting = {row.id for row in box.pending(limit=1_000_000)}
    every_sample = set(range(1, box.last_sequence() + 1))
    box.close()
    received = set(collector.seqs())
    assert every_sample <= received | still_waiting, "every sample is delivered or still in the outbox"
    assert not (still_waiting & set(range(1, BACKLOG + 1))), "the backlog is all delivered"
    log = (tmp_path / "agent.log").read_text()
    assert "backlog up to sample" in log
