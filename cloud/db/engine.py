"""Engines and sessions for the two databases the cloud runs on: SQLite (WAL, foreign keys enforced) by
default and PostgreSQL through psycopg 3 in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 5.0


def normalised_url(url: str) -> URL:
    """The URL with the driver lokalnie uses: ``postgresql://`` and ``postgres://`` mean psycopg 3."""
    parsed = make_url(
        url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
    )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, *, sqlite_busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Engine:
    """An engine for ``url``; for an SQLite file, its directory is created and WAL is switched on.

    Statement parameters are kept out of error messages: they hold what schools sent, which is not logged.
    """
    parsed = normalised_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": sqlite_busy_timeout_s}, hide_parameters=True)
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` that keep their objects readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
