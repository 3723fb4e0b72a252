"""Settings from the environment, and the database: migrations that match the models, SQLite's pragmas and
the register of schools mirrored from the site files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import select, text

from cloud.db.engine import make_engine, normalised_url
from cloud.db.migrate import alembic_config, upgrade_database
from cloud.db.models import Device, School
from cloud.db.register import sync_register
from cloud.db.schema import all_tables
from cloud.settings import DEFAULT_DATABASE_URL, Settings
from common.broker import DEFAULT_BROKER_URL
from tests.cloud.conftest import CloudDb, make_site


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "MQTT_URL",
        "LOKALNIE_SITES_DIR",
        "LOKALNIE_INGEST_GROUP",
        "LOKALNIE_API_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///var/lokalnie.db"
    assert settings.mqtt_url == DEFAULT_BROKER_URL
    assert settings.sites_dir == Path("firmware-config/sites")
    assert settings.ingest_group == "ingest"
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db:5432/lokalnie")
    monkeypatch.setenv("MQTT_URL", "mqtts://ingest:pw@broker.example")
    monkeypatch.setenv("LOKALNIE_SITES_DIR", "/etc/lokalnie/sites")
    monkeypatch.setenv("LOKALNIE_INGEST_GROUP", "ingest-b")
    monkeypatch.setenv("LOKALNIE_INGEST_CLIENT_ID", "ingest-7")
    monkeypatch.setenv("LOKALNIE_API_PORT", "9001")
    settings = Settings()
    assert settings.database_url.startswith("postgresql://")
    assert settings.sites_dir == Path("/etc/lokalnie/sites")
    assert (settings.ingest_group, settings.ingest_client_id, settings.api_port) == (
        "ingest-b",
        "ingest-7",
        9001,
    )
    # Secrets stay out of the representation that may be logged.
    assert "secret" not in repr(settings) and "pw@" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://db/x"),
        ("MQTT_URL", "http://broker"),
        ("LOKALNIE_INGEST_GROUP", "a/+"),
        ("LOKALNIE_INGEST_CLIENT_ID", ""),
        ("LOKALNIE_API_PORT", "70000"),
        ("MQTT_CA_FILE", "/nonexistent/ca.crt"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_postgres_urls_use_psycopg_3() -> None:
    assert normalised_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert normalised_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalised_url("sqlite:///x.db").drivername == "sqlite"


def test_an_sqlite_file_gets_its_directory_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'deep' / 'lokalnie.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
    assert (tmp_path / "var" / "deep" / "lokalnie.db").exists()


def test_the_migrations_build_exactly_the_models_and_run_twice(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), all_tables())
            revisions = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
    assert differences == []
    assert revisions == set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def _samples(url: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(text("SELECT school_id, stream, seq, kind FROM samples ORDER BY seq"))
            )
    finally:
        engine.dispose()


def test_samples_keyed_by_their_edge_row_keep_their_rows_both_ways(database_url: str) -> None:
    """0005 makes (school, stream, seq) a sample's key instead of a number, over a table holding rows."""
    _migrate(database_url, "0004")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO schools VALUES ('sp1', 'SP 1', 'school', 'ul. 1', 51.6, 18.9, 50, 400)")
            )
            for seq in (1, 2):
                connection.execute(
                    text(
                        "INSERT INTO samples (school_id, stream, seq, device_id, kind, ts_ms, backfill, "
                        "received_ms, \"values\") VALUES ('sp1', 'a', :seq, 'inverter', 'pv_inverter', 0, "
                        "false, 0, '{}')"
                    ),
                    {"seq": seq},
                )
    finally:
        engine.dispose()
    rows = _samples(database_url)
    _migrate(database_url, "heads")
    assert _samples(database_url) == rows
    _migrate(database_url, "0004", down=True)
    assert _samples(database_url) == rows
    _migrate(database_url, "heads")
    assert _samples(database_url) == rows


def test_processes_starting_together_migrate_one_after_the_other(database_url: str) -> None:
    """The API and the ingest start at once against a new database (the demo, compose): both must start."""
    # Each process says when it has imported, then waits for the word: they migrate at the same moment.
    script = (
        "import sys; from cloud.db.migrate import upgrade_database; "
        "print('ready', flush=True); sys.stdin.readline(); upgrade_database(sys.argv[1])"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outcomes = [
            (process.wait(60), process.stderr.read() if process.stderr else "") for process in processes
        ]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert all(code == 0 for code, _ in outcomes), outcomes
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            revisions = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
    assert revisions == set(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_the_register_follows_the_site_files(cloud_db: CloudDb) -> None:
    school_id = cloud_db.school_ids[0]
    site = make_site(school_id)
    renamed = site.model_copy(update={"name": "Nowa nazwa", "pupils": 321, "devices": site.devices[:1]})
    with cloud_db.engine.begin() as connection:
        sync_register(connection, [renamed])
    with cloud_db.engine.connect() as connection:
        school = connection.execute(select(School.name, School.pupils).where(School.id == school_id)).one()
        devices = (
            connection.execute(select(Device.device_id).where(Device.school_id == school_id)).scalars().all()
        )
        others = connection.execute(select(School.id).where(School.id != school_id)).scalars().all()
    assert tuple(school) == ("Nowa nazwa", 321)
    assert devices == ["inverter"]
    assert others == [cloud_db.school_ids[1]]
