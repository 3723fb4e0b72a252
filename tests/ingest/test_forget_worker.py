"""``lokalnie forget-ingest-worker``: a worker retired on purpose leaves /metrics (and the alert that it is
down, deploy/monitoring/alerts.yaml); one that lives, or that never was, is refused in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from cloud.db.engine import make_engine
from cloud.db.migrate import upgrade_database
from cloud.ingest import stats


def forget(database_url: str, client_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lokalnie", "forget-ingest-worker", client_id],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
    )


def test_a_retired_worker_is_forgotten_and_a_live_or_unknown_one_refused(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'lokalnie.db'}"
    upgrade_database(database_url)
    engine = make_engine(database_url)
    now_ms = time.time_ns() // 1_000_000
    try:
        with engine.begin() as connection:
            stats.register_worker(connection, "ingest-3", "ingest", now_ms - 3_600_000)
            stats.register_worker(connection, "ingest-1", "ingest", now_ms)

        done = forget(database_url, "ingest-3")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Forgot ingest worker 'ingest-3'."
        for client_id in ("ingest-1", "ingest-3", "nosuch"):
            refused = forget(database_url, client_id)
            assert refused.returncode == 2, client_id
            assert (
                f"no retired ingest worker '{client_id}': unknown, or alive within a minute" in refused.stderr
            )
            assert "Traceback" not in refused.stderr
        with engine.connect() as connection:
            left = connection.execute(text("SELECT client_id FROM ingest_workers")).scalars().all()
        assert left == ["ingest-1"]
    finally:
        engine.dispose()
