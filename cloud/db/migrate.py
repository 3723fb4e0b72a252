"""Bringing a database to the schema this code expects: Alembic's ``upgrade head``, run from Python."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config

from cloud.db.engine import make_engine, normalised_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration for the cloud's migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Revision files are modules; their names must not start with a digit.
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    return config


def upgrade_database(url: str) -> None:
    """Create or migrate the database at ``url`` to the newest revision; safe to call at every start, from
    several processes at once (the API and the ingest start together)."""
    engine = make_engine(url)
    try:
        with _sqlite_file_lock(url), engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """For an SQLite file, an exclusive lock on a file beside it while migrating.

    PostgreSQL's migrations take an advisory lock (migrations/env.py); SQLite runs DDL outside the
    transaction SQLAlchemy opens, so two processes would both find no ``alembic_version`` and both create it.
    """
    parsed = normalised_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        yield
        return
    lock_path = Path(f"{parsed.database}.migrate-lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
