"""The durable outbox: every sample a poll obtains is committed here before anything is published, and
leaves only when the broker has acknowledged the message that carried it.

SQLite in WAL mode with ``synchronous=FULL``: a commit is on the storage when `append` returns, so a
``kill -9`` or a power cut loses nothing that was appended (docs/edge.md explains the choice). The row id
(AUTOINCREMENT, never reused) is the sample's sequence number on the wire, and acknowledgement is by row id,
never by timestamp. ``stream`` names this outbox file; a new file (a new SD card) starts a new stream, so
the cloud never mistakes new sequence numbers for old ones.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    values_json TEXT NOT NULL
);
"""


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


class Outbox:
    """One school's outbox file. Not thread-safe: one task owns it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.stream = self._stream_id()

    def _stream_id(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        if row is not None:
            return str(row[0])
        stream = secrets.token_hex(8)
        self._db.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", (stream,))
        return stream

    def append(self, samples: Sequence[NewSample]) -> list[int]:
        """Commit samples durably; return their row ids (their sequence numbers)."""
        ids = []
        with self._transaction():
            for sample in samples:
                cursor = self._db.execute(
                    "INSERT INTO outbox (device, kind, ts_ms, values_json) VALUES (?, ?, ?, ?)",
                    (sample.device, sample.kind, sample.ts_ms, json.dumps(sample.values, allow_nan=False)),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def pending(self, after_id: int = 0, limit: int = 100) -> list[StoredSample]:
        """Unacknowledged samples with a row id above ``after_id``, oldest first."""
        rows = self._db.execute(
            "SELECT id, device, kind, ts_ms, values_json FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [StoredSample(row[0], row[1], row[2], row[3], json.loads(row[4])) for row in rows]

    def acknowledge(self, ids: Iterable[int]) -> None:
        """Remove samples the broker has acknowledged."""
        with self._transaction():
            self._db.executemany("DELETE FROM outbox WHERE id = ?", ((row_id,) for row_id in ids))

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
