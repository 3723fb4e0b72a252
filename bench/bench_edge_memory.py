"""The agent's peak resident memory while it works hardest: ``python -m edge run`` polling a school every
(simulated) 10 s and replaying a one-day backlog to a real Mosquitto at the same time.

The agent, the simulators and the broker are separate processes, as on the Pi (which also runs the kiosk's
browser, hence the goal of staying under 80 MB); ``mosquitto_sub`` takes what the agent sends, as the ingest
would (with no subscriber the broker answers "no matching subscribers" and the agent keeps its rows). The
peak is the kernel's high-water mark of the agent's resident set (``VmHWM`` in ``/proc/<pid>/status``), read
just before it is stopped.

With a failed card the outbox lives in memory, up to `edge.outbox.MEMORY_MAX_BYTES`: filling it takes days of
polls, so what a full one adds to a process is measured apart, in a child process that fills an outbox moved
to memory to its bound with the same samples, and added to the peak.
"""

from __future__ import annotations

import os
import re
import subprocess
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
    inverter: dict[str, float | None] = {f"q{i}_w": 1234.5 + 17.25 * i for i in range(13)}
    meter: dict[str, float | None] = {f"q{i}_v": 229.3438720703125 + i for i in range(13)}
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


# Run in a child process: its resident memory before and after filling an outbox moved to memory.
FILL_IN_MEMORY = """
import re, sys
from pathlib import Path
from edge.outbox import NewSample, Outbox

def rss_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

box = Outbox(Path("/proc/no-such-directory/outbox.db"))  # cannot be made: the outbox starts in memory
assert box.failure is not None
before = rss_mb()
values = {f"q{i}_w": 1234.5 + 17.25 * i for i in range(13)}
for poll in range(200_000):
    box.append([NewSample(d, "grid_meter", poll * 10_000, values) for d in ("inverter", "meter")])
    if poll % 500 == 0:
        box.enforce_limits(poll * 10_000)
box.enforce_limits(200_000 * 10_000)
print(rss_mb() - before, box.count(), box.used_bytes())
"""


def memory_outbox_full() -> tuple[float, int, int]:
    """(MB a full outbox in memory adds to a process, samples it holds, bytes of its pages)."""
    out = subprocess.run(
        [sys.executable, "-c", FILL_IN_MEMORY], capture_output=True, text=True, check=True, timeout=600
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


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
            with servers.mosquitto(work / "broker") as broker, servers.subscriber(broker):
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
    in_memory_mb, in_memory_samples, in_memory_bytes = memory_outbox_full()
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
            "card_failed": {
                "what": "an outbox moved to memory, filled to its bound (edge.outbox.MEMORY_MAX_BYTES)",
                "adds_mb": round(in_memory_mb, 1),
                "samples_held": in_memory_samples,
                "page_bytes": in_memory_bytes,
                "peak_mb_with_it_full": round(peak + in_memory_mb, 1),
            },
        },
    )


if __name__ == "__main__":
    main()
