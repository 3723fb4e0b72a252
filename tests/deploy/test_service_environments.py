"""The lokalnie containers run with the environment the compose file gives them, made from a `.env` written
the way deploy/README.md says: the API starts for real with it, the ingest is wired to the InfluxDB the
compose file runs, and every retention the platform has is run by a nightly job the README schedules.

Without Docker: the compose file's ``environment`` of a service is resolved against the `.env`, then the
service's command runs here with it, only the names of other containers (``postgres``) and the paths inside
the image replaced by local ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cloud.applications.config import ApplicationsConfig
from cloud.cli import EXIT_BAD_CONFIGURATION
from cloud.settings import Settings
from lokalnie.ports import free_port
from tests import servers
from tests.conftest import REPO, SITES_DIR
from tests.deploy.test_config import DEPLOY, ENV_EXAMPLE, PLACEHOLDER, resolve, services

README = DEPLOY / "README.md"
# Lines of the README's shell blocks that need a server or a person: skipped when the tests run a block.
NOT_RUN_HERE = re.compile(r"^\s*(cd /opt/|nano )")
# A nightly job in the README: "<minute> <hour> * * * root ... lokalnie <command> [options]".
CRON_LINE = re.compile(r"^\d+ \d+ \* \* \* root .*?\blokalnie ((?:[a-z][a-z-]* ?)+)", re.MULTILINE)
# The commands that delete what is kept longer than its retention: each must run every night.
RETENTION_COMMANDS = {"prune", "smog purge"}
START_TIMEOUT_S = 60.0


def readme_block(heading: str) -> str:
    """The first ``sh`` block after ``heading`` in deploy/README.md."""
    text = README.read_text()
    start = text.index(heading)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.DOTALL)
    assert block, f"no sh block after {heading!r}"
    return block.group(1)


@pytest.fixture
def dot_env(tmp_path: Path) -> dict[str, str]:
    """The `.env` that section 5 of the README writes from `.env.example` (its commands run for real)."""
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    script = "\n".join(
        line for line in readme_block("## 5. The settings").splitlines() if not NOT_RUN_HERE.match(line)
    )
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.stdout == "", f"the README's check found placeholders left:\n{done.stdout}"
    values = {}
    for line in (tmp_path / ".env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    assert PLACEHOLDER not in values.values()
    return values


def environment_of(service: str, values: dict[str, str]) -> dict[str, str]:
    """The variables compose sets in ``service``'s container (its ``environment``, anchors merged)."""
    environment = services()[service].get("environment", {})
    assert isinstance(environment, dict), f"{service}: environment is not a mapping"
    return {name: resolve(str(value), values) for name, value in environment.items()}


def start_api(environment: dict[str, str], port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``lokalnie api`` on ``port`` with ``environment``; the container's PostgreSQL and image paths are not
    here, so an SQLite file and the repository's site files stand for them. Output in ``api.log``."""
    local = {"DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}", "LOKALNIE_SITES_DIR": str(SITES_DIR)}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **environment, **local}
    command = [sys.executable, "-m", "lokalnie", "api", "--host", "127.0.0.1", "--port", str(port)]
    return servers.start(command, tmp_path / "api.log", env)


def test_the_api_starts_with_the_environment_compose_gives_it(
    dot_env: dict[str, str], tmp_path: Path
) -> None:
    environment = environment_of("api", dot_env)
    assert environment["LOKALNIE_ENV"] == "production"
    port = free_port()
    log = tmp_path / "api.log"
    process = start_api(environment, port, tmp_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"the API exited:\n{log.read_text()[-3000:]}"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"the API did not answer:\n{log.read_text()[-3000:]}"
                time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        # Production answers with its own safeguards on (HSTS is only sent outside development).
        assert "strict-transport-security" in answer.headers
    finally:
        servers.stop_process(process)


def test_without_the_applications_key_the_api_refuses_to_start_in_one_line(
    dot_env: dict[str, str], tmp_path: Path
) -> None:
    environment = environment_of("api", dot_env)
    del environment["LOKALNIE_APPLICATIONS_KEY"]
    process = start_api(environment, free_port(), tmp_path)
    try:
        assert process.wait(START_TIMEOUT_S) == EXIT_BAD_CONFIGURATION
    finally:
        servers.stop_process(process)
    said = (tmp_path / "api.log").read_text()
    assert "refusing to start: bad configuration: LOKALNIE_APPLICATIONS_KEY is not set" in said
    assert "Traceback" not in said


def test_the_applications_personal_data_is_encrypted_with_the_key_from_env(dot_env: dict[str, str]) -> None:
    config = ApplicationsConfig.from_environment(environment_of("api", dot_env))
    assert config.keys == (dot_env["LOKALNIE_APPLICATIONS_KEY"].encode(),)
    assert config.retention_days == int(dot_env["LOKALNIE_APPLICATIONS_RETENTION_DAYS"])
    # The purge runs in the API's container (section 9), so it reads the same retention.
    assert "docker compose exec -T api lokalnie smog purge" in README.read_text()


@pytest.mark.parametrize("service", ["ingest-1", "ingest-2"])
def test_the_ingest_writes_to_the_influxdb_the_compose_file_runs(
    dot_env: dict[str, str], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith(("LOKALNIE_", "INFLUX", "MQTT_", "DATABASE_")):
            monkeypatch.delenv(name)
    # The CA compose mounts from the secrets directory: any file stands for it here.
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("the city's CA\n")
    local = {"MQTT_CA_FILE": str(ca_file), "LOKALNIE_SITES_DIR": str(SITES_DIR)}
    for name, value in (environment_of(service, dot_env) | local).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    influxdb = environment_of("influxdb", dot_env)
    assert settings.env == "production"
    assert settings.influx_url == "http://influxdb:8086"
    assert settings.influx_org == influxdb["DOCKER_INFLUXDB_INIT_ORG"]
    assert settings.influx_bucket == influxdb["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert settings.influx_token.get_secret_value() == influxdb["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]


def test_every_retention_is_run_every_night_by_a_command_that_exists() -> None:
    scheduled = {match.strip() for match in CRON_LINE.findall(README.read_text())}
    assert scheduled >= RETENTION_COMMANDS, f"the README schedules {sorted(scheduled)}"
    for command in scheduled:
        done = subprocess.run(
            [sys.executable, "-m", "lokalnie", *command.split(), "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"lokalnie {command}: {done.stderr}"


def test_the_upgrade_names_the_settings_a_new_release_added(tmp_path: Path) -> None:
    """README section 10: after `git pull`, one line lists what `.env.example` has and the `.env` lacks."""
    (lister,) = [line for line in readme_block("## 10. Upgrading").splitlines() if line.startswith("comm ")]
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(ENV_EXAMPLE, deploy / ".env.example")
    old_env = [
        line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("LOKALNIE_ALERTS_")
    ]
    (deploy / ".env").write_text("\n".join(old_env) + "\n")
    done = subprocess.run(["bash", "-c", lister], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "LOKALNIE_ALERTS_FROM=",
        "LOKALNIE_ALERTS_SMTP=",
        "LOKALNIE_ALERTS_SMTP_PASSWORD=",
        "LOKALNIE_ALERTS_SMTP_USER=",
        "LOKALNIE_ALERTS_TO=",
    ]
