"""deploy/README.md's PostgreSQL backup and restore, run for real: the commands of section 9 (without
``docker compose exec -T postgres``, which only says where they run) against a PostgreSQL holding what the
ingest stored. A restore brings back exactly what the dump held — rows changed and added since are gone —
and the platform carries on over the restored database: migrations at their head, and the schools' messages
that the broker delivers again stored once. And the server keeps 30 days of backups, no more.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine, MetaData, select, text

from cloud.db.engine import make_engine
from cloud.db.register import prepare_database
from cloud.ingest.store import Message, StoreOptions, TelemetryStore
from cloud.settings import Settings
from tests import servers
from tests.cloud.conftest import pv_sample, write_sites
from tests.deploy.test_service_environments import readme_block
from tests.ingest.conftest import NOW_MS, SettableClock, telemetry, unique_id

# Where the README's commands run: in the PostgreSQL container; here, in this shell.
IN_CONTAINER = "docker compose exec -T postgres "
Q_MS = 15 * 60 * 1000


def readme_command(heading: str, pattern: str) -> str:
    """The command of the README's shell block after ``heading`` whose first line matches ``pattern``,
    continuation lines joined, to run here."""
    lines = readme_block(heading).replace("\\\n", " ").splitlines()
    (command,) = [line for line in lines if re.search(pattern, line)]
    return command.removeprefix(IN_CONTAINER)


def contents(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, in an order that does not depend on how they were stored."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        return {
            name: sorted(repr(tuple(row)) for row in connection.execute(select(table)))
            for name, table in tables.tables.items()
        }


def day(school: str, first_seq: int, quarters: int) -> list[Message]:
    return [
        telemetry(school, [pv_sample(seq, NOW_MS + seq * Q_MS, 1000.0 * seq)])
        for seq in range(first_seq, first_seq + quarters)
    ]


def test_a_restored_dump_is_the_database_as_it_was_and_the_platform_carries_on(
    postgres_server: servers.Postgres, tmp_path: Path
) -> None:
    database_url = postgres_server.new_database("backup")
    school = unique_id("s")
    prepare_database(Settings(database_url=database_url, sites_dir=write_sites(tmp_path / "sites", [school])))
    engine = make_engine(database_url)
    store = TelemetryStore(engine, SettableClock(NOW_MS + 40 * Q_MS), None, StoreOptions())
    env = {
        "PATH": f"{Path(servers.require('pg_dump')).parent}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres_server.port),
        "PGPASSWORD": "lokalnie",
        "POSTGRES_USER": "lokalnie",
        "POSTGRES_DB": database_url.rsplit("/", 1)[1],
    }
    try:
        store.store(day(school, 1, 20))
        backed_up = contents(engine)
        assert len(backed_up["samples"]) == 20 and backed_up["intervals"] and backed_up["alembic_version"]

        (tmp_path / "backups").mkdir()
        dump = subprocess.run(
            ["sh", "-c", readme_command("## 9. Backup and restore", r"pg_dump")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dump.returncode == 0, dump.stderr
        (dump_file,) = (tmp_path / "backups").glob("postgres-*.dump")

        # Life goes on after the backup: more readings, and a row lost by mistake.
        store.store(day(school, 21, 10))
        with engine.begin() as connection:
            connection.execute(
                text("DELETE FROM intervals WHERE start_ms = :start"), {"start": NOW_MS + Q_MS}
            )
        assert contents(engine) != backed_up

        restore = readme_command("Restore PostgreSQL", r"pg_restore")
        restore = restore.replace("backups/postgres-2026-06-15.dump", str(dump_file))
        restored = subprocess.run(
            ["sh", "-c", restore], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert restored.returncode == 0, restored.stderr
        engine.dispose()
        assert contents(engine) == backed_up

        # The API's start migrates: nothing to do. The broker delivers again what came after the backup,
        # and what came before: the later readings come back, the earlier ones are not doubled.
        prepare_database(Settings(database_url=database_url, sites_dir=tmp_path / "sites"))
        store.store(day(school, 1, 30))
        assert len(contents(engine)["samples"]) == 30
        with engine.connect() as connection:
            seqs = connection.execute(text("SELECT count(DISTINCT seq) FROM samples")).scalar_one()
        assert seqs == 30
    finally:
        engine.dispose()


def test_the_server_keeps_thirty_days_of_backups(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    old, recent = time.time() - 40 * 86400, time.time() - 5 * 86400
    kept: list[Path] = []
    deleted: list[Path] = []
    for relative, when in (
        ("postgres-2026-01-01.dump", old),
        ("postgres-2026-03-01.dump", recent),
        ("influxdb/2026-01-01", old),
        ("influxdb/2026-03-01", recent),
    ):
        path = backups / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative.startswith("influxdb/"):
            path.mkdir()
            (path / "20260101T023000Z.manifest").write_text("{}")
        else:
            path.write_bytes(b"PGDMP")
        os.utime(path, (when, when))
        (deleted if when == old else kept).append(path)
    os.utime(backups / "influxdb", (old, old))

    command = readme_command("## 9. Backup and restore", r"^find backups")
    done = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert [path for path in kept + deleted if path.exists()] == kept
    assert (backups / "influxdb").is_dir(), "the InfluxDB backups' directory itself stays"
