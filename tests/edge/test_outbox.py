"""The outbox keeps every appended sample until it is acknowledged, across kill -9 and reopening."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.outbox import NewSample, Outbox

WRITER = """
import sys
from pathlib import Path
from edge.outbox import NewSample, Outbox
box = Outbox(Path(sys.argv[1]))
i = 0
while True:
    ids = box.append([NewSample("meter", "grid_meter", i, {"power_w": float(i)})])
    print(ids[0], flush=True)
    i += 1
"""


def sample(ts_ms: int) -> NewSample:
    return NewSample(
        device="inverter", kind="pv_inverter", ts_ms=ts_ms, values={"power_w": 1.5, "energy_wh": None}
    )


def test_rows_stay_until_acknowledged_and_ids_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    ids = box.append([sample(1), sample(2), sample(3)])
    assert ids == sorted(ids)
    assert [row.ts_ms for row in box.pending()] == [1, 2, 3]
    assert box.pending()[0].values == {"power_w": 1.5, "energy_wh": None}
    box.acknowledge(ids[:2])
    assert [row.id for row in box.pending()] == ids[2:]
    box.acknowledge(ids[2:])
    stream = box.stream
    box.close()

    reopened = Outbox(path)
    assert reopened.stream == stream
    assert reopened.append([sample(4)])[0] > ids[-1]


def test_a_new_file_is_a_new_stream(tmp_path: Path) -> None:
    assert Outbox(tmp_path / "a.db").stream != Outbox(tmp_path / "b.db").stream


def test_pending_pages_by_row_id(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    ids = box.append([sample(ts) for ts in range(10)])
    first = box.pending(limit=4)
    assert [row.id for row in first] == ids[:4]
    assert [row.id for row in box.pending(after_id=first[-1].id, limit=100)] == ids[4:]


def test_kill_9_loses_nothing_that_append_returned(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert writer.stdout is not None
    confirmed: list[int] = []
    deadline = time.monotonic() + 20
    while len(confirmed) < 300 and time.monotonic() < deadline:
        confirmed.append(int(writer.stdout.readline()))
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    # Lines the writer printed after the last one read are confirmed too; read them.
    confirmed += [int(line) for line in writer.stdout.read().split()]
    stored = {row.id for row in Outbox(path).pending(limit=1_000_000)}
    assert len(confirmed) >= 300
    assert set(confirmed) <= stored
