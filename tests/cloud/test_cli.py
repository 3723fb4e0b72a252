"""The two commands as processes: they refuse bad configuration in one line, serve over real HTTP, ingest from
a real broker, and stop cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from cloud.db.models import Sample as SampleRow
from common.clock import iso_from_ms
from common.wire import Channel, encode, school_topic
from tests import servers
from tests.cloud.conftest import NOW_MS, CloudDb, Publish, make_batch, pv_sample, wait_until

REPO = Path(__file__).resolve().parents[2]
# Runs one of the commands the way `lokalnie` registers it.
RUNNER = "import sys, typer; from cloud import cli; typer.run(getattr(cli, sys.argv.pop(1)))"
CLOCK = f"scaled:start={iso_from_ms(NOW_MS)},speed=1"


def command(name: str, *args: str) -> list[str]:
    return [sys.executable, "-c", RUNNER, name, *args]


def environment(**values: str) -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "MQTT_URL")}
    return {**clean, "LOKALNIE_CLOCK": CLOCK, "LOKALNIE_LOG_LEVEL": "INFO", **values}


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = servers.start(args, log, env=env)
    try:
        yield process
    finally:
        servers.stop_process(process)


def stop_cleanly(process: subprocess.Popen[bytes], log: Path) -> str:
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0, log.read_text()
    output = log.read_text()
    assert "Traceback" not in output
    return output


@pytest.mark.parametrize(
    ("name", "env", "args", "words"),
    [
        ("ingest_command", {"DATABASE_URL": "mysql://db/x"}, [], "DATABASE_URL"),
        ("ingest_command", {"MQTT_URL": "http://broker"}, [], "MQTT_URL"),
        ("ingest_command", {"LOKALNIE_CLOCK": "lunar"}, [], "LOKALNIE_CLOCK"),
        ("ingest_command", {}, ["--group", "a/b"], "LOKALNIE_INGEST_GROUP"),
        ("api_command", {"LOKALNIE_SITES_DIR": "/nonexistent"}, [], "no site files"),
        ("api_command", {}, ["--port", "0"], "LOKALNIE_API_PORT"),
    ],
)
def test_bad_configuration_is_refused_in_one_line_with_exit_code_2(
    tmp_path: Path, name: str, env: dict[str, str], args: list[str], words: str
) -> None:
    base = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "LOKALNIE_SITES_DIR": str(REPO / "firmware-config/sites"),
    }
    done = subprocess.run(
        command(name, *args),
        env=environment(**{**base, **env}),
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr.decode()
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "refusing to start" in lines[0] and words in lines[0], lines


@pytest.mark.integration
def test_the_api_serves_over_http_and_stops_on_sigterm(cloud_db: CloudDb, tmp_path: Path) -> None:
    port = servers.free_port()
    env = environment(
        DATABASE_URL=cloud_db.settings.database_url, LOKALNIE_SITES_DIR=str(cloud_db.settings.sites_dir)
    )
    log = tmp_path / "api.log"
    with started(command("api_command", "--port", str(port)), env, log) as process:
        servers.wait_for_port(port, timeout_s=30, process=process)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json()["database"] == "ok"
        schools = httpx.get(f"{base}/api/v1/schools").json()
        assert {school["id"] for school in schools} == set(cloud_db.school_ids)
        live = httpx.get(f"{base}/api/v1/schools/{cloud_db.school_ids[0]}/live").json()
        assert live["link"]["state"] == "unknown"
        # The clock came from LOKALNIE_CLOCK.
        assert live["now"].startswith("2026-03-02T10:00")
        assert httpx.get(f"{base}/api/v1/schools/nope/live").status_code == 404
        stop_cleanly(process, log)


@pytest.mark.integration
def test_the_ingest_stores_what_is_published_and_stops_on_sigterm(
    cloud_db: CloudDb, broker: servers.Broker, publish: Publish, tmp_path: Path
) -> None:
    school = cloud_db.school_ids[0]
    settings = cloud_db.settings
    env = environment(
        DATABASE_URL=settings.database_url,
        LOKALNIE_SITES_DIR=str(settings.sites_dir),
        MQTT_URL=broker.url,
        LOKALNIE_INGEST_SESSION_EXPIRY_S="60",
    )
    args = ["--group", settings.ingest_group, "--client-id", settings.ingest_client_id]
    log = tmp_path / "ingest.log"

    def stored() -> int:
        with cloud_db.engine.connect() as connection:
            query = select(func.count()).select_from(SampleRow).where(SampleRow.school_id == school)
            return int(connection.execute(query).scalar_one())

    with started(command("ingest_command", *args), env, log) as process:
        wait_until(lambda: "subscribed to" in log.read_text(), timeout_s=30, what="the ingest subscribing")
        publish(
            school_topic(school, Channel.TELEMETRY), encode(make_batch(school, [pv_sample(1, NOW_MS, 1.0)]))
        )
        wait_until(lambda: stored() == 1, what="the sample stored")
        output = stop_cleanly(process, log)
    assert "SIGTERM received: stopping" in output
    # Counted by samples: the shared test broker may still hold other tests' retained status messages.
    assert re.search(r"stopped: \d+ messages, 1 samples stored", output), output
