"""The ingest's statements, each one round trip for a whole batch of messages whatever the number of schools.

Rows travel as parameters: on PostgreSQL as one array per column, unpacked with ``unnest`` (one statement,
one round trip), each array sent as the text of an array literal (`array_literal`); on SQLite as ``VALUES``
lists and ``executemany`` (in-process, where a round trip costs little but statement building in Python
does). The statements are plain SQL run
through SQLAlchemy's ``exec_driver_sql``, so errors and lost connections are reported as SQLAlchemy's.

Times are epoch milliseconds, energies Wh, as in `cloud.db.models`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

Row = tuple[Any, ...]
# The readings on either side of a time: (before_ts_ms, before_wh, after_ts_ms, after_wh), None where none.
Bracket = tuple[int | None, float | None, int | None, float | None]
# SQLite's default limit of bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
_SQLITE_MAX_PARAMETERS = 32_766
# PostgreSQL's error code for a row whose key is already stored.
_UNIQUE_VIOLATION = "23505"

_SAMPLE_COLUMNS = 'school_id, stream, seq, device_id, kind, ts_ms, backfill, received_ms, "values"'
_READING_COLUMNS = "school_id, device_id, quantity, ts_ms, kind, value_wh"
_CORRECTION_COLUMNS = (
    "school_id, device_id, quantity, ts_ms, kind, correction, previous_ts_ms, previous_wh, value_wh, "
    "counted_wh, detected_ms"
)
_INTERVAL_COLUMNS = "school_id, start_ms, pv_wh, import_wh, export_wh, consumption_wh, complete, updated_ms"
# A window of a school's time: (school, start, end) [ms].
_WINDOW_COLUMNS = (("s", "text"), ("lo", "bigint"), ("hi", "bigint"))
_EVENT_COLUMNS = (
    "school_id, stream, seq, device_id, code, severity, active, ts_ms, message_pl, details, received_ms"
)


@functools.lru_cache(maxsize=65_536)
def lock_key(school_id: str) -> int:
    """A stable signed 64-bit number for a school's advisory lock."""
    digest = hashlib.blake2b(f"lokalnie-readings:{school_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Bulk:
    """The ingest's statements on one connection, inside the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        if not self.postgres and connection.dialect.name != "sqlite":
            raise ValueError(f"the ingest runs on PostgreSQL or SQLite, not {connection.dialect.name!r}")

    # plumbing

    def _rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        # Straight from the driver's cursor: both drivers return tuples of plain values, and SQLAlchemy's
        # Row objects (made, then turned back into tuples) cost a seventh of a busy worker's time.
        result = self.connection.exec_driver_sql(sql, tuple(parameters))
        try:
            return list(result.cursor.fetchall())
        finally:
            result.close()

    def _many(self, sql: str, rows: Sequence[Row]) -> None:
        if rows:
            self.connection.exec_driver_sql(sql, list(rows))

    def _source(
        self, name: str, columns: Sequence[tuple[str, str]], rows: Sequence[Row]
    ) -> tuple[str, list[Any]]:
        """A common table expression ``name(columns)`` holding ``rows``, and its parameters.

        ``columns`` are (name, PostgreSQL type) pairs.
        """
        names = ", ".join(column for column, _type in columns)
        if self.postgres:
            arrays = ", ".join(f"%s::{sql_type}[]" for _name, sql_type in columns)
            types = [sql_type for _name, sql_type in columns]
            return f"{name}({names}) AS (SELECT * FROM unnest({arrays}))", _arrays(rows, types)
        one = "(" + ", ".join("?" * len(columns)) + ")"
        return f"{name}({names}) AS (VALUES {', '.join([one] * len(rows))})", [v for row in rows for v in row]

    def _select_with(
        self, name: str, columns: Sequence[tuple[str, str]], rows: Sequence[Row], select: str
    ) -> list[Row]:
        """``WITH name(columns) AS (rows) select``, in pieces within SQLite's limit: the rows found."""
        found: list[Row] = []
        for chunk in self._chunks(rows, len(columns)):
            if chunk:
                source, parameters = self._source(name, columns, chunk)
                found.extend(self._rows(f"WITH {source} {select}", parameters))
        return found

    def _chunks(self, rows: Sequence[Row], width: int) -> Iterator[Sequence[Row]]:
        """The rows in pieces that stay within SQLite's parameter limit (PostgreSQL: all at once)."""
        if self.postgres:
            yield rows
            return
        size = max(1, _SQLITE_MAX_PARAMETERS // width)
        for start in range(0, len(rows), size):
            yield rows[start : start + size]

    def _insert(
        self,
        table: str,
        columns: str,
        types: Sequence[str],
        rows: Sequence[Row],
        tail: str,
        *,
        returning: bool,
    ) -> list[Row]:
        """``INSERT INTO table (columns) <rows> tail``; the returned rows if ``returning``."""
        found: list[Row] = []
        for chunk in self._chunks(rows, len(types)):
            if not chunk:
                continue
            if self.postgres:
                aliases = [f"c{index}" for index in range(len(types))]
                selected = ", ".join(
                    f"{alias}::json" if sql_type == "json" else alias
                    for alias, sql_type in zip(aliases, types, strict=True)
                )
                arrays = ", ".join(
                    f"%s::{'text' if sql_type == 'json' else sql_type}[]" for sql_type in types
                )
                sql = (
                    f"INSERT INTO {table} ({columns}) SELECT {selected} "
                    f"FROM unnest({arrays}) AS u({', '.join(aliases)}) {tail}"
                )
                parameters: list[Any] = _arrays(chunk, types)
            else:
                one = "(" + ", ".join("?" * len(types)) + ")"
                sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))} {tail}"
                parameters = [value for row in chunk for value in row]
            if returning:
                found.extend(self._rows(sql, parameters))
            else:
                self.connection.exec_driver_sql(sql, tuple(parameters))
        return found

    # statements

    def lock_schools(self, school_ids: Sequence[str]) -> None:
        """Make concurrent transactions on a school's readings take turns (PostgreSQL; SQLite has one writer).

        Locks are taken in one order, so two transactions never wait for each other.
        """
        if self.postgres and school_ids:
            keys = sorted({lock_key(school_id) for school_id in school_ids})
            self._rows(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k",
                [array_literal(keys, "bigint")],
            )

    def _insert_new(
        self, table: str, columns: str, types: Sequence[str], rows: Sequence[Row], key: str
    ) -> set[Row]:
        """Insert the rows whose ``key`` (their leading columns, unique in ``table``) is not stored yet; the
        keys of those inserted.

        On PostgreSQL a plain ``INSERT`` is tried first, in a savepoint: live readings are new, and the
        speculative insertion of ``ON CONFLICT DO NOTHING`` costs the server about a third more a row
        (docs/ingest.md). Only when a key is already stored (a message delivered again, a replay) is the
        savepoint rolled back and the rows inserted with ``ON CONFLICT DO NOTHING RETURNING`` the new keys.
        """
        width = len(key.split(","))
        if self.postgres and rows:
            try:
                with self.connection.begin_nested():
                    self._insert(table, columns, types, rows, "", returning=False)
            except IntegrityError as error:
                if getattr(error.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
                    raise
            else:
                return {tuple(row[:width]) for row in rows}
        tail = f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
        return set(self._insert(table, columns, types, rows, tail, returning=True))

    def insert_samples(self, rows: Sequence[Row]) -> set[tuple[str, str, int]]:
        """Insert samples (school, stream, seq, device, kind, ts, backfill, received, values as JSON text);
        the keys of those that were not stored yet."""
        types = ("text", "text", "bigint", "text", "text", "bigint", "boolean", "bigint", "json")
        inserted = self._insert_new("samples", _SAMPLE_COLUMNS, types, rows, "school_id, stream, seq")
        # Both drivers return these columns as str and int, and rows as tuples.
        return cast("set[tuple[str, str, int]]", inserted)

    def insert_readings(self, rows: Sequence[Row]) -> set[tuple[str, str, str, int]]:
        """Insert counter readings (school, device, quantity, ts, kind, value), one per time (the first
        stored); the keys (school, device, quantity, ts) of those inserted."""
        types = ("text", "text", "text", "bigint", "text", "double precision")
        inserted = self._insert_new(
            "counter_readings", _READING_COLUMNS, types, rows, "school_id, device_id, quantity, ts_ms"
        )
        return cast("set[tuple[str, str, str, int]]", inserted)

    def brackets(self, probes: Sequence[Row], *, strict: bool) -> list[Bracket]:
        """For each probe (school, device, quantity, ts): the counter's reading just before ts and just after
        it, as (before_ts, before_wh, after_ts, after_wh), None where there is none. ``strict`` leaves out a
        reading at ts itself; otherwise it is both the one before and the one after."""
        before, after = ("<", ">") if strict else ("<=", ">=")
        found: list[Bracket] = [(None, None, None, None)] * len(probes)
        columns = (("i", "integer"), ("s", "text"), ("d", "text"), ("q", "text"), ("t", "bigint"))
        numbered = [(index, *probe) for index, probe in enumerate(probes)]
        match = "r.school_id = p.s AND r.device_id = p.d AND r.quantity = p.q"
        for chunk in self._chunks(numbered, len(columns)):
            if not chunk:
                continue
            source, parameters = self._source("p", columns, chunk)
            if self.postgres:
                sql = (
                    f"WITH {source} SELECT p.i, a.ts_ms, a.value_wh, b.ts_ms, b.value_wh FROM p "
                    f"LEFT JOIN LATERAL (SELECT r.ts_ms, r.value_wh FROM counter_readings r WHERE {match} "
                    f"AND r.ts_ms {before} p.t ORDER BY r.ts_ms DESC LIMIT 1) a ON true "
                    f"LEFT JOIN LATERAL (SELECT r.ts_ms, r.value_wh FROM counter_readings r WHERE {match} "
                    f"AND r.ts_ms {after} p.t ORDER BY r.ts_ms ASC LIMIT 1) b ON true"
                )
            else:
                parts = [
                    f"(SELECT r.{column} FROM counter_readings r WHERE {match} AND r.ts_ms {operator} p.t "
                    f"ORDER BY r.ts_ms {order} LIMIT 1)"
                    for operator, order in ((before, "DESC"), (after, "ASC"))
                    for column in ("ts_ms", "value_wh")
                ]
                sql = f"WITH {source} SELECT p.i, {', '.join(parts)} FROM p"
            for index, before_ts, before_wh, after_ts, after_wh in self._rows(sql, parameters):
                found[int(index)] = (
                    None if before_ts is None else int(before_ts),
                    None if before_wh is None else float(before_wh),
                    None if after_ts is None else int(after_ts),
                    None if after_wh is None else float(after_wh),
                )
        return found

    def corrections_at(self, keys: Sequence[Row]) -> list[Row]:
        """The stored corrections of the steps ending at (school, device, quantity, ts):
        rows of (school, device, quantity, ts, correction, counted_wh)."""
        columns = (("s", "text"), ("d", "text"), ("q", "text"), ("t", "bigint"))
        return self._select_with(
            "k",
            columns,
            keys,
            "SELECT c.school_id, c.device_id, c.quantity, c.ts_ms, c.correction, c.counted_wh FROM k "
            "JOIN counter_corrections c ON c.school_id = k.s AND c.device_id = k.d AND c.quantity = k.q "
            "AND c.ts_ms = k.t",
        )

    def delete_corrections(self, keys: Sequence[Row]) -> None:
        """Delete the corrections of the steps ending at (school, device, quantity, ts)."""
        if not keys:
            return
        if self.postgres:
            self.connection.exec_driver_sql(
                "DELETE FROM counter_corrections c USING unnest(%s::text[], %s::text[], %s::text[], "
                "%s::bigint[]) AS k(s, d, q, t) WHERE c.school_id = k.s AND c.device_id = k.d "
                "AND c.quantity = k.q AND c.ts_ms = k.t",
                tuple(_arrays(keys, ("text", "text", "text", "bigint"))),
            )
        else:
            self._many(
                "DELETE FROM counter_corrections WHERE school_id = ? AND device_id = ? AND quantity = ? "
                "AND ts_ms = ?",
                keys,
            )

    def insert_corrections(self, rows: Sequence[Row]) -> None:
        """Insert corrections (school, device, quantity, ts, kind, correction, previous_ts, previous_wh,
        value_wh, counted_wh, detected_ms)."""
        types = (
            "text",
            "text",
            "text",
            "bigint",
            "text",
            "text",
            "bigint",
            "double precision",
            "double precision",
            "double precision",
            "bigint",
        )
        self._insert("counter_corrections", _CORRECTION_COLUMNS, types, rows, "", returning=False)

    def corrections_within(self, windows: Sequence[Row]) -> list[Row]:
        """The corrected steps that overlap each window (school, start, end): rows of (school, device,
        quantity, previous_ts, ts, counted_wh - (value_wh - previous_wh))."""
        return self._select_with(
            "w",
            _WINDOW_COLUMNS,
            windows,
            "SELECT DISTINCT c.school_id, c.device_id, c.quantity, c.previous_ts_ms, c.ts_ms, "
            "c.counted_wh - (c.value_wh - c.previous_wh) FROM w JOIN counter_corrections c "
            "ON c.school_id = w.s AND c.ts_ms > w.lo AND c.previous_ts_ms < w.hi",
        )

    def intervals_within(self, windows: Sequence[Row]) -> list[Row]:
        """The stored intervals starting in each window (school, start, end): rows of (school, start, pv,
        import, export, consumption, complete)."""
        return self._select_with(
            "w",
            _WINDOW_COLUMNS,
            windows,
            "SELECT i.school_id, i.start_ms, i.pv_wh, i.import_wh, i.export_wh, i.consumption_wh, i.complete "
            "FROM w JOIN intervals i ON i.school_id = w.s AND i.start_ms >= w.lo AND i.start_ms < w.hi",
        )

    def intervals_at(self, keys: Sequence[Row]) -> set[tuple[str, int]]:
        """Which of the intervals (school, start) are stored."""
        found = self._select_with(
            "k",
            (("s", "text"), ("t", "bigint")),
            keys,
            "SELECT i.school_id, i.start_ms FROM k "
            "JOIN intervals i ON i.school_id = k.s AND i.start_ms = k.t",
        )
        return {(str(school_id), int(start_ms)) for school_id, start_ms in found}

    def upsert_intervals(self, rows: Sequence[Row]) -> None:
        """Insert or overwrite intervals (school, start, pv, import, export, consumption, complete,
        updated)."""
        tail = (
            "ON CONFLICT (school_id, start_ms) DO UPDATE SET pv_wh = excluded.pv_wh, "
            "import_wh = excluded.import_wh, export_wh = excluded.export_wh, "
            "consumption_wh = excluded.consumption_wh, complete = excluded.complete, "
            "updated_ms = excluded.updated_ms"
        )
        if self.postgres:
            types = (
                "text",
                "bigint",
                "double precision",
                "double precision",
                "double precision",
                "double precision",
                "boolean",
                "bigint",
            )
            self._insert("intervals", _INTERVAL_COLUMNS, types, rows, tail, returning=False)
        else:
            self._many(
                f"INSERT INTO intervals ({_INTERVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) {tail}", rows
            )

    def insert_dead_letters(self, rows: Sequence[Row]) -> None:
        """Insert dead letters (received, topic, reason, payload, payload_bytes)."""
        placeholder = "%s" if self.postgres else "?"
        values = ", ".join([placeholder] * 5)
        self._many(
            "INSERT INTO dead_letters (received_ms, topic, reason, payload, payload_bytes) "
            f"VALUES ({values})",
            rows,
        )

    def upsert_links(self, rows: Sequence[Row]) -> None:
        """Record link states (school, state, since, updated) unless the stored one is newer."""
        placeholder = "%s" if self.postgres else "?"
        values = ", ".join([placeholder] * 4)
        self._many(
            f"INSERT INTO links (school_id, state, since_ms, updated_ms) VALUES ({values}) "
            "ON CONFLICT (school_id) DO UPDATE SET state = excluded.state, since_ms = excluded.since_ms, "
            "updated_ms = excluded.updated_ms WHERE links.since_ms <= excluded.since_ms",
            rows,
        )

    def insert_events(self, rows: Sequence[Row]) -> set[tuple[str, str, int]]:
        """Insert health events (school, stream, seq, device, code, severity, active, ts, message, details as
        JSON text, received); the keys of those not stored yet."""
        types = (
            "text",
            "text",
            "bigint",
            "text",
            "text",
            "text",
            "boolean",
            "bigint",
            "text",
            "json",
            "bigint",
        )
        inserted = self._insert_new("events", _EVENT_COLUMNS, types, rows, "school_id, stream, seq")
        # Both drivers return these columns as str and int, and rows as tuples.
        return cast("set[tuple[str, str, int]]", inserted)

    def upsert_event_states(self, rows: Sequence[Row]) -> None:
        """Apply events (school, device, code, active, severity, ts, message) to the conditions' states, in
        the order given; an event older than the state's newest changes nothing."""
        placeholder = "%s" if self.postgres else "?"
        values = ", ".join([placeholder] * 8)
        self._many(
            "INSERT INTO event_states (school_id, device_id, code, active, severity, since_ms, ts_ms, "
            f"message_pl) VALUES ({values}) ON CONFLICT (school_id, device_id, code) DO UPDATE SET "
            "since_ms = CASE WHEN event_states.active = excluded.active THEN event_states.since_ms "
            "ELSE excluded.since_ms END, active = excluded.active, severity = excluded.severity, "
            "ts_ms = excluded.ts_ms, message_pl = excluded.message_pl "
            "WHERE event_states.ts_ms <= excluded.ts_ms",
            [
                (school, device, code, active, severity, ts, ts, message)
                for school, device, code, active, severity, ts, message in rows
            ],
        )

    def clear_conditions_before(self, school: str, ts_ms: int, message_pl: str) -> None:
        """Clear the conditions of a school raised before ``ts_ms``, as of ``ts_ms``: an event older than that
        arriving later changes nothing."""
        sql = (
            "UPDATE event_states SET active = ?, since_ms = ?, ts_ms = ?, message_pl = ? "
            "WHERE school_id = ? AND active = ? AND ts_ms < ?"
        )
        self.connection.exec_driver_sql(
            sql.replace("?", "%s") if self.postgres else sql,
            (False, ts_ms, ts_ms, message_pl, school, True, ts_ms),
        )


def _arrays(rows: Sequence[Row], types: Sequence[str]) -> list[str]:
    """Rows turned into one array literal per column, of the columns' PostgreSQL types."""
    if not rows:
        return ["{}"] * len(types)
    return [
        array_literal(column, sql_type)
        for column, sql_type in zip(zip(*rows, strict=True), types, strict=True)
    ]


def array_literal(values: Sequence[Any], sql_type: str) -> str:
    """The text of a PostgreSQL array literal holding ``values`` (``None`` as NULL), for ``%s::type[]``.

    psycopg's array dumper handles each element in Python, which took a fifth of a busy ingest worker's
    time; here each column is one ``join`` and a few ``str`` methods, all in C, and the server parses the
    text. ``sql_type`` is one of text, json, bigint, integer, double precision, boolean.
    """
    if not values:
        return "{}"
    has_null = None in values
    if sql_type in ("text", "json"):
        if has_null:
            return "{" + ",".join("NULL" if v is None else _quoted([v]) for v in values) + "}"
        return "{" + _quoted(values) + "}"
    if sql_type == "boolean":
        return "{" + ",".join("NULL" if v is None else "t" if v else "f" for v in values) + "}"
    if sql_type == "double precision":
        if has_null:
            return "{" + ",".join("NULL" if v is None else repr(float(v)) for v in values) + "}"
        return "{" + ",".join(map(repr, map(float, values))) + "}"
    if sql_type in ("bigint", "integer"):
        if has_null:
            return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"
        return "{" + ",".join(map(str, map(int, values))) + "}"
    raise ValueError(f"no array literal for {sql_type!r}")


def _quoted(texts: Sequence[str]) -> str:
    """The texts as double-quoted array elements separated by commas, backslashes and quotes escaped.

    They are joined with NUL, which PostgreSQL's text cannot hold, so that the escaping runs once over the
    whole column; a text holding NUL is refused rather than split into two elements.
    """
    joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1:
        raise ValueError("a text holds a NUL character, which PostgreSQL cannot store")
    escaped = joined.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\x00", '","') + '"'
