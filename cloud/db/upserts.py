"""``INSERT ... ON CONFLICT`` for both databases: SQLite and PostgreSQL spell it the same way, but SQLAlchemy
builds it from each dialect's own `insert`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import KeyedColumnElement


def _dialect_insert(table: Table, dialect_name: str) -> postgresql.Insert | sqlite.Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"no INSERT ... ON CONFLICT for the {dialect_name!r} database")


def insert_ignoring_conflicts(table: Table, dialect_name: str, key: Sequence[str]) -> Insert:
    """An insert that silently skips rows whose ``key`` columns are already stored."""
    return _dialect_insert(table, dialect_name).on_conflict_do_nothing(index_elements=list(key))


def upsert(
    table: Table,
    dialect_name: str,
    key: Sequence[str],
    update: Sequence[str],
    where: Callable[[ReadOnlyColumnCollection[str, KeyedColumnElement[Any]]], ColumnElement[bool]]
    | None = None,
) -> Insert:
    """An insert that, for a row whose ``key`` is already stored, overwrites the ``update`` columns.

    ``where``, given the proposed row's columns (``excluded``), limits the update to the stored rows for
    which it holds.
    """
    statement = _dialect_insert(table, dialect_name)
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: statement.excluded[name] for name in update},
        where=where(statement.excluded) if where is not None else None,
    )
