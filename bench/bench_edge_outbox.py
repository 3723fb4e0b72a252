"""The outbox's write cost per reading: one poll of a school (an inverter and a meter, 26 readings) committed
as one transaction, with ``synchronous=FULL`` as the agent runs it, against ``synchronous=NORMAL`` (which may
lose the last commits on a power cut) in the same WAL file on the same disk.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.report import report
from edge.modbus.profiles import load_profile
from edge.outbox import NewSample, Outbox
from tests.conftest import PROFILES_DIR

POLLS = 1000
# A school's poll: the quantities the shipped profiles publish, with as many digits as real readings have.
INVERTER: dict[str, float | None] = {
    name: 1234.5 + 17.25 * index
    for index, name in enumerate(load_profile(PROFILES_DIR, "sunspec-inverter").published)
}
METER: dict[str, float | None] = {
    name: 229.3438720703125 + index
    for index, name in enumerate(load_profile(PROFILES_DIR, "eastron-sdm630").published)
}
READINGS_PER_POLL = len(INVERTER) + len(METER)


def seconds_per_poll(path: Path, synchronous: str) -> float:
    box = Outbox(path)
    # The benchmark's only reach into the outbox: its durability setting, to price the choice.
    box._db.execute(f"PRAGMA synchronous={synchronous}")
    started = time.perf_counter()
    for poll in range(POLLS):
        ts_ms = 1_781_517_600_000 + poll * 10_000
        box.append(
            [
                NewSample("inverter", "pv_inverter", ts_ms, INVERTER),
                NewSample("meter", "grid_meter", ts_ms, METER),
            ]
        )
        box.enforce_limits(ts_ms)
    elapsed = time.perf_counter() - started
    box.close()
    return elapsed / POLLS


def main() -> None:
    # On the repository's disk, not a tmpfs: the cost measured is the disk's flush.
    var = Path(__file__).resolve().parent.parent / "var"
    var.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=var) as temp:
        full = seconds_per_poll(Path(temp) / "full.db", "FULL")
        normal = seconds_per_poll(Path(temp) / "normal.db", "NORMAL")
    report(
        "edge_outbox_write",
        "outbox write cost per reading (one transaction per poll, synchronous=FULL)",
        full / READINGS_PER_POLL * 1e6,
        "µs/reading",
        normal / READINGS_PER_POLL * 1e6,
        baseline_name="the same with synchronous=NORMAL (not durable on power loss)",
        details={
            "polls": POLLS,
            "readings_per_poll": READINGS_PER_POLL,
            "ms_per_poll_full": full * 1e3,
            "ms_per_poll_normal": normal * 1e3,
            "disk": "the repository's var/ directory on this machine",
        },
    )


if __name__ == "__main__":
    main()
