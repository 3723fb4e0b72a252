"""The durable outbox: every sample a poll obtains and every health event is committed here before anything is
published, and leaves only when the broker has acknowledged the message that carried it.

SQLite in WAL mode with ``synchronous=FULL``: a commit is on the storage when `append` returns, so a
``kill -9`` or a power cut loses nothing that was appended (docs/edge.md explains the choice). The row id
(AUTOINCREMENT, never reused) is the sample's sequence number on the wire, and acknowledgement is by row id,
never by timestamp; events have their own table and their own row ids, and the conditions they raised and
have not cleared are kept beside them, so that an agent restarted in the middle of a fault still clears it
when it is over. ``stream`` names this outbox file;
a new file (a new SD card) starts a new stream, so the cloud never mistakes new sequence numbers for old ones.

Samples taken before the clock was synchronised wait in a table of their own (`hold`) until `release_held`
stamps them and moves them here: only what is in the outbox proper is ever published.

The outbox is bounded in bytes and in days. When a bound is passed, the oldest samples go first; what was
dropped is counted (in the file, so the count survives restarts) and returned to the caller, which raises a
health event: nothing is ever dropped silently.

A card that stops taking writes (a worn SD card: the kernel remounts it read-only, SQLite says "disk I/O
error") must not stop the school's readings: at the first failure the outbox moves to a database in memory,
with a new stream, and carries on there (`failure` says why; the agent raises ``storage_failed``). Whatever
waited on the card stays there and is still read from it (`LeftOnCard`), to be sent under the card's stream;
the readings taken from then on live in memory, within `MEMORY_MAX_BYTES`, and a restart loses those not
yet sent. An outbox that cannot even be opened for writing starts in memory. A damaged file (a power cut on
a card that skipped a flush) is set aside at the start and a new one begun (`set_aside`); whether the last
run stopped cleanly is kept in the file (`ended_cleanly`), and after an unclean stop the pages are checked.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from common.wire import Severity

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    values_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT,
    code TEXT NOT NULL,
    severity TEXT NOT NULL,
    active INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    message_pl TEXT NOT NULL,
    details_json TEXT NOT NULL
);
-- Samples taken while the clock was not synchronised, not yet published: each with how far the clock stood
-- from the monotonic clock when it was taken, and the boot that monotonic clock counts from.
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    values_json TEXT NOT NULL,
    clock_minus_monotonic_ms REAL NOT NULL,
    boot TEXT NOT NULL
);
-- The conditions raised and not yet cleared, each as the event that raised it ('' for the agent's own), kept
-- in step with the events: a restarted agent still knows them, and clears them when they are over.
CREATE TABLE IF NOT EXISTS conditions (
    device TEXT NOT NULL,
    code TEXT NOT NULL,
    severity TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    message_pl TEXT NOT NULL,
    details_json TEXT NOT NULL,
    PRIMARY KEY (device, code)
);
"""
DAY_MS = 86_400_000
# Rows removed per statement while enforcing a bound: small enough to keep a poll's commit short.
_DROP_CHUNK = 500
# Once over its byte bound, the outbox is trimmed to this fraction of it, so that it is not trimmed again
# at every poll.
_TRIM_TO = 0.95


@dataclass(frozen=True)
class NewSample:
    device: str
    kind: str
    ts_ms: int
    values: dict[str, float | None]


@dataclass(frozen=True)
class StoredSample:
    id: int
    device: str
    kind: str
    ts_ms: int
    values: dict[str, float | None]


@dataclass(frozen=True)
class NewEvent:
    """A health condition raised (``active``) or cleared; see `common.wire.HealthEvent`."""

    device: str | None
    code: str
    severity: Severity
    active: bool
    ts_ms: int
    message_pl: str
    details: dict[str, float | str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent(NewEvent):
    id: int = 0


@dataclass(frozen=True)
class OutboxLimits:
    """How much the outbox may hold before the oldest samples are dropped."""

    max_bytes: int = 512 * 1024 * 1024
    max_age_days: float = 60.0
    # Events are few; a flapping device could still write many. The oldest go beyond this count.
    max_events: int = 20_000
    # Left free on the outbox's filesystem, for its journal and the system's logs: when the card has less
    # room than the bound, the outbox drops its oldest samples before the card is full, rather than stop.
    disk_reserve_bytes: int = 64 * 1024 * 1024


# However full the card, the outbox keeps room for this much (a few hours of a school's samples) [bytes].
MIN_BYTE_BOUND = 1024 * 1024
# The most an outbox moved to memory holds: about three and a half days of a school with two devices polled
# every 10 s (a sample of 13 quantities takes about 260 bytes); full, it adds 19 MB to the agent's 50 MB,
# within the 80 MB it may take beside the kiosk's browser (bench/bench_edge_memory.py) [bytes].
MEMORY_MAX_BYTES = 16 * 1024 * 1024


def disk_free_bytes(directory: Path) -> int:
    """The bytes free for an unprivileged process on the filesystem of ``directory``."""
    return shutil.disk_usage(directory).free


@dataclass(frozen=True)
class Dropped:
    """What one enforcement of the bounds removed."""

    samples: int = 0
    events: int = 0
    oldest_kept_ts_ms: int | None = None
    # Every sample dropped over the life of this outbox file.
    samples_total: int = 0

    def __bool__(self) -> bool:
        return bool(self.samples or self.events)


# SQLite's primary result codes that mean the storage under the file fails, not the program
# (https://www.sqlite.org/rescode.html): a lock another process holds (SQLITE_BUSY) or a broken constraint
# is no reason to leave the card.
_CARD_FAILURES = frozenset(
    {
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
    }
)


def _card_failed(error: sqlite3.Error) -> bool:
    """Whether SQLite's error says the storage fails (its primary result code, `_CARD_FAILURES`)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CARD_FAILURES


def _close_quietly(db: sqlite3.Connection) -> None:
    """Close a connection to a card that may be failing: what closing it says changes nothing."""
    with contextlib.suppress(sqlite3.Error):
        db.close()


class DamagedFile(sqlite3.DatabaseError):
    """SQLite's check of the file's pages found damage."""


def _damaged(error: sqlite3.Error | OSError) -> bool:
    """Whether the error says the file is damaged (or not SQLite's at all), rather than the card failing."""
    if isinstance(error, DamagedFile):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


@dataclass(frozen=True)
class StorageFailure:
    """Why the outbox left its file for memory."""

    # SQLite's result code ("SQLITE_IOERR_WRITE"), or the class of a system error ("FileNotFoundError").
    name: str
    message: str
    # The file is damaged (a restart sets it aside and begins a new one), rather than the card failing.
    file_damaged: bool

    @classmethod
    def of(cls, error: sqlite3.Error | OSError) -> StorageFailure:
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        return cls(name, str(error), _damaged(error))

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _falls_back(method: Callable[Concatenate[Outbox, _P], _R]) -> Callable[Concatenate[Outbox, _P], _R]:
    """Run an outbox method; if the card fails under it, move the outbox to memory and run it again there."""

    @functools.wraps(method)
    def run(self: Outbox, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        on_card = self.failure is None
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            _move_or_raise(self, on_card, error)
            return method(self, *args, **kwargs)

    return run


def _forgets_on_failure(
    method: Callable[Concatenate[Outbox, _P], None],
) -> Callable[Concatenate[Outbox, _P], None]:
    """As `_falls_back`, for acknowledgements: rows of the card mean nothing in memory, so they are not
    acknowledged there (they stay on the card, and are sent again from it)."""

    @functools.wraps(method)
    def run(self: Outbox, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        on_card = self.failure is None
        try:
            method(self, *args, **kwargs)
        except sqlite3.Error as error:
            _move_or_raise(self, on_card, error)

    return run


def _move_or_raise(box: Outbox, on_card: bool, error: sqlite3.Error) -> None:
    """After ``error`` in a call that began ``on_card``: move the outbox to memory if the card failed, or
    raise the error. A method the call made may have moved already, leaving the call's transaction on the
    card: that call is repeated in memory too."""
    moved_meanwhile = on_card and box.failure is not None
    if not (moved_meanwhile or (on_card and _card_failed(error))):
        raise error
    if box.failure is None:
        box._move_to_memory(error)


class Outbox:
    """One school's outbox file. Not thread-safe: one task owns it."""

    def __init__(
        self,
        path: Path,
        limits: OutboxLimits | None = None,
        disk_free: Callable[[Path], int] = disk_free_bytes,
    ) -> None:
        self.path = path
        self.limits = limits or OutboxLimits()
        self._disk_free = disk_free
        # Why the card was given up for memory; None while it works.
        self.failure: StorageFailure | None = None
        # Once moved to memory: what waited on the card, still to be sent from it.
        self.left_on_card: LeftOnCard | None = None
        # Where a damaged file found at the start was moved, a new one taking its place.
        self.set_aside: Path | None = None
        try:
            self._open_file()
        except (sqlite3.Error, OSError) as error:
            self._recover(error)
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])

    def _open_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open(str(self.path))
        stream = self._meta("stream")
        # A new file: no stream yet, and nothing known of the conditions raised before it.
        self.created = stream is None
        self.ended_cleanly = self._meta("run") != "running"
        # After a power cut or a crash (when files get damaged) the pages are checked, a few seconds for a
        # full outbox on a Pi; a damage found later moves the outbox to memory, and is found here next time.
        if not self.ended_cleanly:
            verdict = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if verdict != "ok":
                raise DamagedFile(f"the outbox's pages are damaged: {verdict}")
        self.stream = stream or self._new_stream()
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('run', 'running')")

    def _recover(self, error: sqlite3.Error | OSError) -> None:
        """After the file failed to open: a damaged file is set aside for a new one (once), and a card that
        fails leaves the outbox in memory; any other error is raised."""
        if isinstance(error, sqlite3.Error) and not (_card_failed(error) or _damaged(error)):
            raise error
        if _damaged(error) and self.set_aside is None and self._set_aside_damaged():
            try:
                self._open_file()
                return
            except (sqlite3.Error, OSError) as again:
                self._recover(again)
                return
        self.created, self.ended_cleanly = False, True
        self._move_to_memory(error)

    def _set_aside_damaged(self) -> bool:
        """Move the damaged file (and its journal) aside, named by the time; False if the card refuses."""
        card = getattr(self, "_db", None)
        if card is not None:
            _close_quietly(card)
            del self._db
        aside = self.path.with_name(
            f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        )
        try:
            for suffix in ("-wal", "-shm"):
                journal = self.path.with_name(self.path.name + suffix)
                if journal.exists():
                    journal.rename(aside.with_name(aside.name + suffix))
            self.path.rename(aside)
        except OSError as error:
            log.error("the damaged outbox %s cannot be set aside: %s", self.path, error)
            return False
        log.error("the outbox %s was damaged; it is kept as %s, and a new one begins", self.path, aside)
        self.set_aside = aside
        return True

    @staticmethod
    def _open(where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        return db

    def _move_to_memory(self, error: sqlite3.Error | OSError) -> None:
        """Go on in a new database in memory, with a new stream, bounded by `MEMORY_MAX_BYTES`."""
        self.failure = StorageFailure.of(error)
        log.error(
            "the outbox %s cannot be used (%s); samples and events are kept in memory from now on",
            self.path,
            self.failure,
        )
        self.left_on_card = self._card_to_read(getattr(self, "_db", None), getattr(self, "stream", None))
        self.limits = replace(self.limits, max_bytes=min(self.limits.max_bytes, MEMORY_MAX_BYTES))
        self._db = self._open(":memory:")
        self.stream = self._new_stream()

    def _card_to_read(self, card: sqlite3.Connection | None, stream: str | None) -> LeftOnCard | None:
        """The card, to read what waited on it: through the connection open on it, or else as a file that
        cannot change (a file closed cleanly on a card gone read-only: SQLite opens a database in WAL mode by
        writing its shared-memory file, which it cannot, unless told the file is immutable)."""
        if card is not None and stream is not None:
            # A failed write may have left its transaction open; the card is only read from now on.
            with contextlib.suppress(sqlite3.Error):
                if card.in_transaction:
                    card.execute("ROLLBACK")
            return LeftOnCard(card, stream)
        if card is not None:
            _close_quietly(card)
        try:
            card = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro&immutable=1", uri=True)
        except sqlite3.Error:
            return None
        try:
            row = card.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        except sqlite3.Error:
            row = None
        if row is None:
            card.close()
            return None
        return LeftOnCard(card, str(row[0]))

    def _new_stream(self) -> str:
        stream = secrets.token_hex(8)
        self._db.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", (stream,))
        return stream

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # Samples.

    @_falls_back
    def append(self, samples: Sequence[NewSample]) -> list[int]:
        """Commit samples durably in one transaction; return their row ids (their sequence numbers)."""
        ids = []
        with self._transaction():
            for sample in samples:
                cursor = self._db.execute(
                    "INSERT INTO outbox (device, kind, ts_ms, values_json) VALUES (?, ?, ?, ?)",
                    (sample.device, sample.kind, sample.ts_ms, json.dumps(sample.values, allow_nan=False)),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    @_falls_back
    def pending(self, after_id: int = 0, limit: int = 100, upto_id: int | None = None) -> list[StoredSample]:
        """Unacknowledged samples with a row id above ``after_id`` (and at most ``upto_id``), oldest first."""
        return _read_samples(self._db, after_id, limit, upto_id)

    @_falls_back
    def last_id_before(self, ts_ms: int) -> int:
        """The highest row id of a pending sample taken before ``ts_ms`` (0 if none): the backlog's end."""
        # Row ids grow with time; scanning back from the newest stops at the first old sample.
        row = self._db.execute(
            "SELECT id FROM outbox WHERE ts_ms < ? ORDER BY id DESC LIMIT 1", (ts_ms,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    @_forgets_on_failure
    def acknowledge(self, ids: Iterable[int]) -> None:
        """Remove samples the broker has acknowledged."""
        with self._transaction():
            self._db.executemany("DELETE FROM outbox WHERE id = ?", ((row_id,) for row_id in ids))

    @_falls_back
    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @_falls_back
    def last_sequence(self) -> int:
        """The highest row id ever given to a sample in this file (0 before the first)."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return 0 if row is None else int(row[0])

    # Samples held while the clock cannot be trusted.

    @_falls_back
    def hold(self, samples: Sequence[NewSample], clock_minus_monotonic_ms: float, boot: str) -> None:
        """Commit samples taken while the clock is not synchronised, with how far the clock stood from the
        monotonic clock of ``boot``; they are published only once `release_held` has stamped them."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO held (device, kind, ts_ms, values_json, clock_minus_monotonic_ms, boot) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        s.device,
                        s.kind,
                        s.ts_ms,
                        json.dumps(s.values, allow_nan=False),
                        clock_minus_monotonic_ms,
                        boot,
                    )
                    for s in samples
                ],
            )

    @_falls_back
    def count_held(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM held").fetchone()[0])

    @_falls_back
    def release_held(self, clock_minus_monotonic_ms: float | None, boot: str) -> tuple[int, int]:
        """Move the held samples into the outbox, oldest first, in one transaction. Those of ``boot`` are
        stamped at their monotonic time on the synchronised clock (``clock_minus_monotonic_ms`` now); those
        of another boot, whose monotonic clock is gone, or all when it is None, keep the time they were taken
        at. Returns how many were re-stamped and how many kept their time."""
        rows = self._db.execute(
            "SELECT device, kind, ts_ms, values_json, clock_minus_monotonic_ms, boot FROM held ORDER BY id"
        ).fetchall()
        restamped = 0
        with self._transaction():
            for device, kind, ts_ms, values_json, then_ms, taken_in in rows:
                if clock_minus_monotonic_ms is not None and taken_in == boot:
                    ts_ms = round(ts_ms - then_ms + clock_minus_monotonic_ms)
                    restamped += 1
                self._db.execute(
                    "INSERT INTO outbox (device, kind, ts_ms, values_json) VALUES (?, ?, ?, ?)",
                    (device, kind, ts_ms, values_json),
                )
            self._db.execute("DELETE FROM held")
        return restamped, len(rows) - restamped

    # Events.

    @_falls_back
    def append_events(self, events: Sequence[NewEvent]) -> list[int]:
        """Commit health events durably, and the conditions they raise or clear with them; return their row
        ids (their sequence numbers)."""
        ids = []
        with self._transaction():
            # Never dated before an event already stored: a clock set back (a Pi booting with the time it
            # saved before a power cut) would date a clear before its raise, and the cloud, which keeps each
            # condition's newest event, would ignore it.
            not_before_ms = int(self._meta("last_event_ms") or 0)
            for given in events:
                event = given if given.ts_ms >= not_before_ms else replace(given, ts_ms=not_before_ms)
                not_before_ms = event.ts_ms
                self._keep_condition(event)
                cursor = self._db.execute(
                    "INSERT INTO events (device, code, severity, active, ts_ms, message_pl, details_json) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.device,
                        event.code,
                        event.severity.value,
                        int(event.active),
                        event.ts_ms,
                        event.message_pl,
                        json.dumps(event.details, allow_nan=False),
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_event_ms', ?)", (str(not_before_ms),)
            )
        return ids

    def _keep_condition(self, event: NewEvent) -> None:
        if not event.active:
            self._db.execute(
                "DELETE FROM conditions WHERE device = ? AND code = ?", (event.device or "", event.code)
            )
            return
        self._db.execute(
            "INSERT OR REPLACE INTO conditions (device, code, severity, ts_ms, message_pl, details_json) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.device or "",
                event.code,
                event.severity.value,
                event.ts_ms,
                event.message_pl,
                json.dumps(event.details, allow_nan=False),
            ),
        )

    @_falls_back
    def raised_conditions(self) -> list[NewEvent]:
        """The events that raised the conditions not cleared since, oldest first."""
        rows = self._db.execute(
            "SELECT device, code, severity, ts_ms, message_pl, details_json FROM conditions ORDER BY ts_ms"
        ).fetchall()
        return [
            NewEvent(
                device=row[0] or None,
                code=row[1],
                severity=Severity(row[2]),
                active=True,
                ts_ms=row[3],
                message_pl=row[4],
                details=json.loads(row[5]),
            )
            for row in rows
        ]

    @_falls_back
    def pending_events(self, after_id: int = 0, limit: int = 100) -> list[StoredEvent]:
        return _read_events(self._db, after_id, limit)

    @_forgets_on_failure
    def acknowledge_events(self, ids: Iterable[int]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM events WHERE id = ?", ((row_id,) for row_id in ids))

    @_falls_back
    def count_events(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # Bounds.

    @_falls_back
    def used_bytes(self) -> int:
        """Bytes the outbox's pages hold (the file's pages less the free ones SQLite will reuse)."""
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    @_falls_back
    def byte_bound(self) -> int:
        """The bytes the outbox may fill: ``limits.max_bytes``, or less when the disk has less room
        (`room_bytes`), but not less than `MIN_BYTE_BOUND` for that."""
        return min(self.limits.max_bytes, max(self.room_bytes(), MIN_BYTE_BOUND))

    @_falls_back
    def room_bytes(self) -> int:
        """The bytes the disk leaves the outbox: its file's pages, free ones included, and the disk's free
        space, less ``limits.disk_reserve_bytes``."""
        if self.failure is not None:
            return self.limits.max_bytes
        file_bytes = int(self._db.execute("PRAGMA page_count").fetchone()[0]) * self._page_size
        return file_bytes + self._disk_free(self.path.parent) - self.limits.disk_reserve_bytes

    @_falls_back
    def usage(self) -> float:
        """The fraction of the byte bound (`byte_bound`) in use."""
        return self.used_bytes() / self.byte_bound()

    @_falls_back
    def dropped_total(self) -> int:
        return int(self._meta("dropped_samples") or 0)

    @_falls_back
    def enforce_limits(self, now_ms: int) -> Dropped:
        """Drop the oldest samples beyond the bounds in days and bytes, and the oldest events beyond their
        count; count what was dropped. Returns what this call dropped."""
        cutoff_ms = now_ms - round(self.limits.max_age_days * DAY_MS)
        oldest = self._db.execute("SELECT ts_ms FROM outbox ORDER BY id LIMIT 1").fetchone()
        too_old = oldest is not None and oldest[0] < cutoff_ms
        byte_bound = self.byte_bound()
        too_big = self.used_bytes() > byte_bound
        too_many_events = self.count_events() > self.limits.max_events
        if not (too_old or too_big or too_many_events):
            return Dropped(samples_total=self.dropped_total())
        with self._transaction():
            samples = self._drop_older_than(cutoff_ms) if too_old else 0
            if too_big:
                samples += self._drop_oldest_until(round(byte_bound * _TRIM_TO))
            events = self._drop_excess_events()
            total = self.dropped_total() + samples
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('dropped_samples', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(total),),
            )
        row = self._db.execute("SELECT ts_ms FROM outbox ORDER BY id LIMIT 1").fetchone()
        return Dropped(samples, events, None if row is None else int(row[0]), total)

    def _drop_older_than(self, cutoff_ms: int) -> int:
        """Drop from the head of the outbox (oldest first) while its samples are older than the cutoff."""
        dropped = 0
        while True:
            head = self._db.execute(
                "SELECT id, ts_ms FROM outbox ORDER BY id LIMIT ?", (_DROP_CHUNK,)
            ).fetchall()
            ids = []
            for row_id, ts_ms in head:
                if ts_ms >= cutoff_ms:
                    break
                ids.append(row_id)
            if ids:
                self._delete_samples(ids)
                dropped += len(ids)
            if len(ids) < _DROP_CHUNK:
                return dropped

    def _drop_oldest_until(self, target_bytes: int) -> int:
        dropped = 0
        while (used := self.used_bytes()) > target_bytes:
            count = self.count()
            if count == 0:
                break
            # As many of the oldest rows as the excess holds at their average size (pages free as they empty).
            wanted = min(_DROP_CHUNK, max(1, math.ceil((used - target_bytes) * count / used)))
            ids = [row[0] for row in self._db.execute("SELECT id FROM outbox ORDER BY id LIMIT ?", (wanted,))]
            self._delete_samples(ids)
            dropped += len(ids)
        return dropped

    def _delete_samples(self, ids: list[int]) -> None:
        self._db.execute("DELETE FROM outbox WHERE id >= ? AND id <= ?", (ids[0], ids[-1]))

    def _drop_excess_events(self) -> int:
        excess = self.count_events() - self.limits.max_events
        if excess <= 0:
            return 0
        self._db.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)", (excess,)
        )
        return excess

    @_falls_back
    def stats(self) -> dict[str, Any]:
        """What the outbox holds, for the status display and the logs."""
        oldest = self._db.execute("SELECT MIN(ts_ms) FROM outbox").fetchone()[0]
        return {
            "samples": self.count(),
            "events": self.count_events(),
            "bytes": self.used_bytes(),
            "oldest_ts_ms": oldest,
            "dropped_samples": self.dropped_total(),
            "held_samples": self.count_held(),
        }

    def close(self) -> None:
        """Record that this run stopped cleanly (on a card that works) and close."""
        if self.failure is None:
            try:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('run', 'stopped')")
            except sqlite3.Error as error:
                log.error("the outbox %s cannot record a clean stop: %s", self.path, error)
        if self.left_on_card is not None:
            self.left_on_card.close()
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class LeftOnCard:
    """What waited on the card when the outbox moved to memory, read from it as long as the card reads: the
    publisher sends it under the card's stream, and since nothing can be removed from the card, it is sent
    again after a restart (the cloud drops what it already has)."""

    def __init__(self, db: sqlite3.Connection, stream: str) -> None:
        self._db: sqlite3.Connection | None = db
        self.stream = stream

    def pending(self, after_id: int = 0, limit: int = 100) -> list[StoredSample]:
        """The card's samples with a row id above ``after_id``, oldest first; none once the card cannot be
        read."""
        return self._read(lambda db: _read_samples(db, after_id, limit, None))

    def pending_events(self, after_id: int = 0, limit: int = 100) -> list[StoredEvent]:
        return self._read(lambda db: _read_events(db, after_id, limit))

    def _read(self, read: Callable[[sqlite3.Connection], list[_Row]]) -> list[_Row]:
        if self._db is None:
            return []
        try:
            return read(self._db)
        except sqlite3.Error as error:
            log.error("the card no longer reads either (%s); what waited on it stays there", error)
            self.close()
            return []

    def close(self) -> None:
        if self._db is not None:
            _close_quietly(self._db)
            self._db = None


_Row = TypeVar("_Row", StoredSample, StoredEvent)


def _read_samples(
    db: sqlite3.Connection, after_id: int, limit: int, upto_id: int | None
) -> list[StoredSample]:
    rows = db.execute(
        "SELECT id, device, kind, ts_ms, values_json FROM outbox "
        "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
        (after_id, upto_id if upto_id is not None else 2**63 - 1, limit),
    ).fetchall()
    return [StoredSample(row[0], row[1], row[2], row[3], json.loads(row[4])) for row in rows]


def _read_events(db: sqlite3.Connection, after_id: int, limit: int) -> list[StoredEvent]:
    rows = db.execute(
        "SELECT id, device, code, severity, active, ts_ms, message_pl, details_json FROM events "
        "WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    ).fetchall()
    return [
        StoredEvent(
            id=row[0],
            device=row[1],
            code=row[2],
            severity=Severity(row[3]),
            active=bool(row[4]),
            ts_ms=row[5],
            message_pl=row[6],
            details=json.loads(row[7]),
        )
        for row in rows
    ]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
