"""The outbox keeps every appended sample until it is acknowledged, across kill -9 and reopening."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import MethodType

import pytest

from common.wire import Severity
from edge.outbox import (
    MEMORY_MAX_BYTES,
    MIN_BYTE_BOUND,
    NewEvent,
    NewSample,
    Outbox,
    OutboxLimits,
    _falls_back,
)
from tests.edge.conftest import Disk, FailingCard, refuse_writes

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
    first = Outbox(tmp_path / "a.db")
    assert first.stream != Outbox(tmp_path / "b.db").stream
    assert first.created
    first.close()
    reopened = Outbox(tmp_path / "a.db")
    assert (reopened.stream, reopened.created) == (first.stream, False)
    reopened.close()


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


def event(ts_ms: int, active: bool = True) -> NewEvent:
    return NewEvent(
        "inverter", "device_unreachable", Severity.CRITICAL, active, ts_ms, "Falownik nie odpowiada."
    )


def test_events_have_their_own_row_ids_and_are_acknowledged_by_them(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    sample_ids = box.append([sample(1)])
    event_ids = box.append_events([event(1), event(2, active=False)])
    assert event_ids == [1, 2] and sample_ids == [1]
    stored = box.pending_events()
    assert [(e.id, e.active, e.severity, e.message_pl) for e in stored] == [
        (1, True, Severity.CRITICAL, "Falownik nie odpowiada."),
        (2, False, Severity.CRITICAL, "Falownik nie odpowiada."),
    ]
    box.acknowledge_events([1])
    assert [e.id for e in box.pending_events()] == [2]
    assert box.count() == 1, "acknowledging events leaves samples alone"


def test_raised_conditions_are_kept_until_cleared_across_reopening_and_acknowledgement(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "outbox.db")
    clock_jump = NewEvent(
        None, "clock_jump", Severity.WARNING, True, 5, "Zegar przeskoczył.", {"jump_s": 60.0}
    )
    box.append_events([event(1), clock_jump, event(7)])
    box.acknowledge_events(event.id for event in box.pending_events())
    box.close()
    box = Outbox(tmp_path / "outbox.db")
    # The newest raising event of each condition, its details as they were.
    assert box.raised_conditions() == [clock_jump, event(7)]
    box.append_events([event(9, active=False)])
    assert box.raised_conditions() == [clock_jump]
    box.close()


def test_an_event_is_never_dated_before_one_stored_before_it(tmp_path: Path) -> None:
    """After a power cut the Pi's clock starts from the time it saved, before the fault was raised: the
    clear (and a raise after it) must still come after the raise, or the cloud, which keeps each condition's
    newest event, would ignore them."""
    box = Outbox(tmp_path / "outbox.db")
    box.append_events([event(5_000)])
    box.close()
    box = Outbox(tmp_path / "outbox.db")
    box.append_events([event(2_000, active=False), event(1_000), event(3_000)])
    box.append_events([event(6_000, active=False)])
    assert [(e.active, e.ts_ms) for e in box.pending_events()] == [
        (True, 5_000),
        (False, 5_000),
        (True, 5_000),
        (True, 5_000),
        (False, 6_000),
    ]
    box.close()


def test_the_backlog_boundary_is_a_row_id(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    ids = box.append([sample(ts) for ts in (100, 200, 300, 400)])
    assert box.last_id_before(250) == ids[1]
    assert box.last_id_before(50) == 0
    assert [row.id for row in box.pending(after_id=ids[0], upto_id=ids[2])] == ids[1:3]


def test_samples_older_than_the_age_bound_go_oldest_first_and_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, OutboxLimits(max_age_days=1))
    day = 86_400_000
    box.append([sample(ts) for ts in range(0, 2 * day, day // 4)])  # 8 samples over two days
    dropped = box.enforce_limits(now_ms=2 * day)
    assert (dropped.samples, dropped.samples_total) == (4, 4)
    assert dropped.oldest_kept_ts_ms == day
    assert box.pending(limit=1)[0].ts_ms == day
    assert not box.enforce_limits(now_ms=2 * day), "nothing more to drop"
    box.close()
    assert Outbox(path).dropped_total() == 4, "the count survives a restart"


def test_the_byte_bound_drops_the_oldest_and_keeps_the_newest(tmp_path: Path) -> None:
    limits = OutboxLimits(max_bytes=400_000)
    box = Outbox(tmp_path / "outbox.db", limits)
    values = {f"value_{i}": float(i) for i in range(40)}
    total_dropped = 0
    for batch in range(60):
        box.append([NewSample("meter", "grid_meter", batch * 100 + i, values) for i in range(100)])
        total_dropped += box.enforce_limits(now_ms=batch * 100).samples
        assert box.used_bytes() <= limits.max_bytes
    remaining = box.pending(limit=1_000_000)
    assert total_dropped > 0 and total_dropped + len(remaining) == 6000
    assert remaining[-1].ts_ms == 5999, "the newest samples are kept"
    assert [row.id for row in remaining] == sorted(row.id for row in remaining)
    assert remaining[0].id == total_dropped + 1, "what went were the oldest"
    assert box.dropped_total() == total_dropped


def test_a_card_with_less_room_than_the_bound_bounds_the_outbox_to_its_room(tmp_path: Path) -> None:
    """The card filling with something else: the outbox drops its oldest samples to stay within the room
    left (its pages and the free space, less the reserve) rather than fill the card and stop."""
    # The reserve covers the journal (SQLite's WAL grows to about 4 MB between checkpoints).
    limits = OutboxLimits(max_bytes=50_000_000, disk_reserve_bytes=6_000_000)
    disk = Disk(capacity_bytes=100_000_000)
    box = Outbox(tmp_path / "outbox.db", limits, disk.free)
    values = {f"value_{i}": float(i) for i in range(40)}
    for batch in range(10):
        box.append([NewSample("meter", "grid_meter", batch * 100 + i, values) for i in range(100)])
        assert box.enforce_limits(now_ms=batch * 100).samples == 0
    assert box.byte_bound() == limits.max_bytes
    disk.capacity_bytes = Disk.used(tmp_path) + 10_000_000  # the logs grew: 10 MB left
    for batch in range(10, 150):
        box.append([NewSample("meter", "grid_meter", batch * 100 + i, values) for i in range(100)])
        box.enforce_limits(now_ms=batch * 100)
        assert box.byte_bound() < limits.max_bytes
        assert disk.free(tmp_path) > 1_000_000, "the card never fills"
    assert box.pending(limit=1_000_000)[-1].ts_ms == 14_999, "the newest samples are kept"
    assert box.dropped_total() > 0
    disk.capacity_bytes = Disk.used(tmp_path)
    assert box.byte_bound() == MIN_BYTE_BOUND, "a full card still leaves the outbox its least room"


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 12 MB filesystem (tmpfs), where mounting one is allowed (as root with CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "card"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_on_a_real_small_filesystem_the_outbox_keeps_writing_and_never_fills_it(
    small_filesystem: Path,
) -> None:
    """Twice the samples the filesystem holds: no "database or disk is full", the newest kept."""
    limits = OutboxLimits(disk_reserve_bytes=6_000_000)
    box = Outbox(small_filesystem / "outbox.db", limits)
    values = {f"value_{i}": float(i) for i in range(40)}
    for batch in range(240):
        box.append([NewSample("meter", "grid_meter", batch * 100 + i, values) for i in range(100)])
        box.enforce_limits(now_ms=batch * 100)
        assert shutil.disk_usage(small_filesystem).free > 1_000_000
    assert box.pending(limit=1_000_000)[-1].ts_ms == 23_999 and box.dropped_total() > 0
    box.close()


def test_events_beyond_their_count_are_dropped_oldest_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db", OutboxLimits(max_events=3))
    box.append_events([event(ts) for ts in range(5)])
    assert box.enforce_limits(now_ms=5).events == 2
    assert [e.ts_ms for e in box.pending_events()] == [2, 3, 4]
    assert box.raised_conditions() == [event(4)], "the condition stays raised"


def test_acknowledgement_is_by_row_id_even_for_samples_of_the_same_moment(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    ids = box.append([sample(1000), sample(1000), sample(1000)])
    box.acknowledge([ids[1]])
    assert [row.id for row in box.pending()] == [ids[0], ids[2]]


def test_a_card_that_stops_taking_writes_moves_the_outbox_to_memory(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.append([sample(1), sample(2)])
    card_stream = box.stream
    refuse_writes(box)
    assert box.append([sample(3), sample(4)]) == [1, 2], "the samples are kept, numbered anew"
    assert box.failure is not None and box.failure.name == "SQLITE_READONLY" and not box.failure.file_damaged
    assert box.stream != card_stream, "a new stream: the cloud never mistakes the new numbers for old ones"
    assert [row.ts_ms for row in box.pending()] == [3, 4]
    box.acknowledge([1])
    assert [row.ts_ms for row in box.pending()] == [4]
    assert box.append_events([event(5)]) == [1] and box.room_bytes() == box.limits.max_bytes
    assert box.limits.max_bytes == MEMORY_MAX_BYTES
    box.close()
    card = Outbox(tmp_path / "outbox.db")
    assert card.stream == card_stream and [row.ts_ms for row in card.pending()] == [1, 2], (
        "what waited on the card is still there"
    )
    card.close()


def test_an_acknowledgement_the_card_refuses_touches_nothing_in_memory(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.append([sample(1), sample(2)])
    refuse_writes(box)
    box.acknowledge([1, 2])
    assert box.failure is not None and box.count() == 0
    box.append([sample(3)])
    box.acknowledge_events([1])
    assert [(row.id, row.ts_ms) for row in box.pending()] == [(1, 3)]


def test_a_failure_under_a_transaction_another_method_began_moves_once_and_finishes_in_memory(
    tmp_path: Path,
) -> None:
    """The card fails in `used_bytes`, called inside the transaction `enforce_limits` began: the inner call
    moves the outbox to memory, and the outer one, whose transaction was on the card, runs again there."""
    box = Outbox(tmp_path / "outbox.db", OutboxLimits(max_bytes=100_000))
    box.append([sample(ts_ms) for ts_ms in range(2_000)])
    used_bytes = Outbox.used_bytes.__wrapped__  # type: ignore[attr-defined]

    def failing_inside_transactions(self: Outbox) -> int:
        if self.failure is None and self._db.in_transaction:
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = sqlite3.SQLITE_IOERR_READ  # type: ignore[attr-defined]
            raise error
        return int(used_bytes(self))

    box.used_bytes = MethodType(_falls_back(failing_inside_transactions), box)  # type: ignore[method-assign]
    assert not box.enforce_limits(now_ms=0), "nothing to drop in a new outbox in memory"
    assert box.failure is not None and box.count() == 0
    box.append([sample(1)])
    assert box.count() == 1 and box.stats()["samples"] == 1


def test_a_lock_another_process_holds_is_no_failure_of_the_card(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box._db.execute("PRAGMA busy_timeout = 50")
    technician = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    technician.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        box.append([sample(1)])
    technician.execute("ROLLBACK")
    assert box.failure is None and box.append([sample(2)]) == [1]


def test_an_outbox_that_cannot_be_opened_starts_in_memory(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    box = Outbox(tmp_path / "not-a-directory" / "outbox.db")
    assert box.failure is not None and not box.created and box.ended_cleanly
    assert box.append([sample(1)]) == [1] and box.count() == 1


def test_whether_the_last_run_stopped_cleanly_is_kept_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    assert box.ended_cleanly, "a new file has no unfinished run"
    box.close()
    box = Outbox(path)
    assert box.ended_cleanly
    box._db.close()  # as kill -9 or a power cut leaves it
    box = Outbox(path)
    assert not box.ended_cleanly
    refuse_writes(box)
    box.append([sample(1)])
    box.close()
    assert not Outbox(path).ended_cleanly, "a run whose card failed could not record its stop"


def test_on_a_real_card_gone_read_only_the_outbox_goes_on_in_memory_and_so_does_the_next_start(
    failing_card: FailingCard,
) -> None:
    """ext4 remounted read-only by the kernel, as a worn card is: SQLite's writes fail with "disk I/O
    error"; a new start on the same card (systemd restarting the agent) opens the file but cannot write."""
    path = failing_card.path / "outbox.db"
    box = Outbox(path)
    box.append([sample(1)])
    failing_card.fail()
    assert box.append([sample(2)]) == [1] and box.failure is not None and "SQLITE_IOERR" in str(box.failure)
    box.close()
    again = Outbox(path)
    assert again.failure is not None and not again.created and again.append([sample(3)]) == [1]
    again.close()
    failing_card.repair()
    repaired = Outbox(path)
    assert repaired.failure is None and not repaired.ended_cleanly
    assert [row.ts_ms for row in repaired.pending()] == [1], "what waited on the card is still there"
    repaired.close()


def damage(path: Path, offset: int, garbage: bytes) -> None:
    """Overwrite bytes of a closed outbox file, as a card that skipped a flush before a power cut does."""
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(garbage)


def test_a_file_that_is_not_a_database_any_more_is_set_aside_and_a_new_one_begins(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    box.append([sample(1)])
    box.close()
    damage(path, 0, b"not SQLite at all")
    damaged_bytes = path.read_bytes()
    box = Outbox(path)
    assert box.failure is None and box.created and box.set_aside is not None
    assert box.set_aside.name.startswith("outbox.db.damaged-") and box.set_aside.read_bytes() == damaged_bytes
    assert box.append([sample(2)]) == [1], "a new file on the card, durable again"
    box.close()


def test_pages_damaged_before_a_power_cut_are_found_at_the_next_start(tmp_path: Path) -> None:
    """A damaged page deep in the file is not seen by opening it; after an unclean stop the start checks the
    pages, and sets a damaged file aside."""
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    box.append([sample(ts_ms) for ts_ms in range(3_000)])
    box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    box._db.close()  # as a power cut leaves it: no clean stop recorded
    damage(path, 4096 * 5, b"\xde\xad" * 2048)
    box = Outbox(path)
    assert box.failure is None and box.set_aside is not None and box.created and box.count() == 0


def test_pages_damaged_under_a_clean_stop_move_the_outbox_to_memory_and_the_next_start_sets_it_aside(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    box.append([sample(ts_ms) for ts_ms in range(3_000)])
    box.close()
    damage(path, 4096 * 5, b"\xde\xad" * 2048 * 16)
    box = Outbox(path)
    assert box.failure is None, "not checked after a clean stop: a full outbox takes seconds to check"
    box.pending(limit=10_000)
    assert box.failure is not None and box.failure.file_damaged
    box.close()
    again = Outbox(path)
    assert again.failure is None and again.set_aside is not None


def test_a_damaged_file_on_a_card_gone_read_only_cannot_be_set_aside_and_the_outbox_goes_to_memory(
    failing_card: FailingCard,
) -> None:
    path = failing_card.path / "outbox.db"
    box = Outbox(path)
    box.close()
    damage(path, 0, b"not SQLite at all")
    failing_card.fail()
    box = Outbox(path)
    assert box.failure is not None and box.set_aside is None and path.exists()
