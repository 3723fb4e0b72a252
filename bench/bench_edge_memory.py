"""The agent's peak resident memory while it works hardest: ``python -m edge run`` polling a school every
(simulated) 10 s and replaying a one-day backlog to a real Mosquitto at the same time.

The agent, the simulators and the broker are separate processes, as on the Pi (which also runs the kiosk's
browser, hence the goal of staying under 80 MB). The peak is the kernel's high-water mark of the agent's
resident set (``VmHWM`` in ``/proc/<pid>/status``), read just before it is stopped.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.report import report
from common.clock import CLOCK_ENV, ScaledClock, parse_iso_ms
from common.sites import load_site
from edge.outbox import NewSample, Outbox
from lokalnie.ports import free_port_run
from simulators.loopback import loopback_site
from tests import servers
from tests.conftest import SITES_DIR

START_MS = parse_iso_ms("2026-06-15T08:00:00+02:00")
GOAL_MB = 80.0
RUN_S = float(os.environ.get("BENCH_EDGE_MEMORY_S", "25"))
DAY_SAMPLES = 2 * 8640  # an inverter and a meter, every 10 s


def status_mb(pid: int, field: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None, f"no {field} in /proc/{pid}/status"
    return int(match.group(1)) / 1024


def backlog(path: Path) -> None:
    """A day of samples from an outage, with the quantities and digits of real ones."""
    box = Outbox(path)
    inverter = {f"q{i}_w": 1234.5 + 17.25 * i for i in range(13)}
    meter = {f"q{i}_v": 229.3438720703125 + i for i in range(13)}
    day_ago = START_MS - 86_400_000
    devices = [("inverter", "pv_inverter", inverter), ("meter", "grid_meter", meter)]
    polls = DAY_SAMPLES // len(devices)
    box.append(
        [
            NewSample(d, kind, day_ago + 10_000 * i, values)
            for i in range(polls)
            for d, kind, values in devices
        ]
    )
    box.close()


def measure(entry: list[str]) -> tuple[float, list[float], int]:
    """(peak MB, resident MB samples, backlog left) of one run of the agent started as ``entry``."""
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        site = loopback_site(load_site(SITES_DIR / "sp5.yaml"), free_port_run(2))
        (work / "sites").mkdir()
        site_file = work / "sites" / "sp5.yaml"
        site_file.write_text(yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True))
        backlog(work / "outbox.db")
        env = {**os.environ, CLOCK_ENV: ScaledClock(START_MS, 60.0).spec(), "LOKALNIE_LOG_LEVEL": "WARNING"}
        simulator = servers.start(
            [sys.executable, "-m", "lokalnie", "sim", "--site", str(site_file)], work / "sim.log", env
        )
        agent = None
        try:
            for device in site.devices:
                servers.wait_for_port(device.transport.port, process=simulator)  # type: ignore[union-attr]
            with servers.mosquitto(work / "broker") as broker:
                outbox = str(work / "outbox.db")
                command = ["run", "--site", str(site_file), "--mqtt", broker.url, "--outbox", outbox]
                pace = ["--backfill-rate", "1000", "--backfill-delay-max", "0"]
                agent = servers.start([*entry, *command, *pace], work / "agent.log", env)
                samples = []
                deadline = time.monotonic() + RUN_S
                while time.monotonic() < deadline and agent.poll() is None:
                    samples.append(status_mb(agent.pid, "VmRSS"))
                    time.sleep(0.2)
                peak = status_mb(agent.pid, "VmHWM")
                left = Outbox(work / "outbox.db").count()
                servers.stop_process(agent)
        finally:
            if agent is not None:
                servers.stop_process(agent)
            servers.stop_process(simulator)
    return peak, samples, left


def main() -> None:
    # As the Pi runs it (firmware-config/pi/lokalnie-edge.service): the agent's imports only.
    peak, samples, left = measure([sys.executable, "-m", "edge"])
    # The umbrella command loads every role installed beside the agent: all of them in this development venv.
    umbrella_peak, _, _ = measure([sys.executable, "-m", "lokalnie", "edge"])
    report(
        "edge_peak_memory",
        "agent peak resident memory (python -m edge run, polling and replaying a day's backlog)",
        peak,
        "MB",
        GOAL_MB,
        baseline_name="the goal on a Pi shared with the kiosk browser",
        details={
            "rss_mb_median": sorted(samples)[len(samples) // 2] if samples else None,
            "run_s": RUN_S,
            "backlog_samples": DAY_SAMPLES,
            "backlog_left_at_the_end": left,
            "peak_mb_as_lokalnie_edge_run_with_every_role_installed": umbrella_peak,
        },
    )


if __name__ == "__main__":
    main()
