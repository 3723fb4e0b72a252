"""Shared fixtures: real servers started once per session, fresh databases per test."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

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
