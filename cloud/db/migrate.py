"""Bringing a database to the schema this code expects: Alembic's ``upgrade head``, run from Python."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from cloud.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration for the cloud's migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Revision files are modules; their names must not start with a digit.
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    return config


def upgrade_database(url: str) -> None:
    """Create or migrate the database at ``url`` to the newest revision; safe to call at every start."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
    finally:
        engine.dispose()
