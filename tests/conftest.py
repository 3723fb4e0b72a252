"""Shared fixtures: real servers started once per session, fresh databases per test."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url

from cloud.db.engine import make_engine
from tests import servers

REPO = Path(__file__).resolve().parent.parent
SITES_DIR = REPO / "firmware-config" / "sites"
PROFILES_DIR = REPO / "firmware-config" / "profiles"


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in the test process sets up logging to the stderr pytest captured for that test; later
    tests would log to the closed stream ("I/O operation on closed file")."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Broker]:
    """One real Mosquitto for the session; tests keep apart by their own client ids and school ids."""
    with servers.mosquitto(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Postgres]:
    with servers.postgres(tmp_path_factory.mktemp("postgres")) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty database for one test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lokalnie.db'}"
    server: servers.Postgres = request.getfixturevalue("postgres_server")
    return server.new_database("test")


@pytest.fixture(scope="session")
def database_templates() -> dict[tuple[str, str], str]:
    """Databases prepared once a session, by (what fills them, kind of database); see `fill_from_template`."""
    return {}


def fill_from_template(
    database_url: str, request: pytest.FixtureRequest, name: str, fill: Callable[[Engine], None]
) -> None:
    """Make the new database at ``database_url`` a copy of one ``fill`` prepared once a session under
    ``name`` (SQLite's backup, PostgreSQL's template): far quicker than migrating and filling each."""
    templates: dict[tuple[str, str], str] = request.getfixturevalue("database_templates")
    kind = make_url(database_url).get_backend_name()
    if (name, kind) not in templates:
        if kind == "sqlite":
            directory = request.getfixturevalue("tmp_path_factory").mktemp("template")
            template_url = f"sqlite:///{directory / 'template.db'}"
        else:
            template_url = request.getfixturevalue("postgres_server").new_database("template")
        engine = make_engine(template_url)
        try:
            fill(engine)
        finally:
            engine.dispose()
        templates[(name, kind)] = template_url
    template_url = templates[(name, kind)]
    if kind == "sqlite":
        with (
            contextlib.closing(sqlite3.connect(make_url(template_url).database or "")) as source,
            contextlib.closing(sqlite3.connect(make_url(database_url).database or "")) as copy,
        ):
            source.backup(copy)
    else:
        request.getfixturevalue("postgres_server").copy_database(template_url, database_url)


def migrate(engine: Engine) -> None:
    """Give the database the schema production has: every table, through the migrations."""
    from cloud.db.migrate import upgrade_database

    upgrade_database(engine.url.render_as_string(hide_password=False))
