"""The deployment's configuration, checked without Docker: the compose file parses and pins every image, every
setting it uses is in .env.example and no secret is committed, the files it mounts are those the tests run and
the broker commands write, and the broker's health check works against the real broker."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.broker.cli import app as broker_app
from cloud.broker.files import SecretsLayout
from cloud.broker.users import HEALTH_USER, ingest_username
from tests import servers
from tests.conftest import REPO
from tests.deploy.conftest import CERT_PORT, PRODUCTION_CONFIG, TLS_PORT, Broker

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
# ${NAME}, ${NAME:-default}, ${NAME:?message}; not $${...}, which compose passes on as ${...}.
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")
PLACEHOLDER = "change-me"
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|_KEY$")


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def env_example() -> dict[str, str]:
    settings = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, equals, value = line.partition("=")
            assert equals, f".env.example: {line!r} is not NAME=value"
            assert name not in settings, f".env.example sets {name} twice"
            settings[name] = value
    return settings


def resolve(text: str, values: dict[str, str]) -> str:
    return COMPOSE_VARIABLE.sub(lambda match: values[match.group(1)], text)


def test_the_compose_file_parses_and_has_the_services_of_a_single_server() -> None:
    assert set(services()) == {
        "mosquitto",
        "postgres",
        "influxdb",
        "grafana",
        "api",
        "ingest-1",
        "ingest-2",
        "caddy",
        "victoriametrics",
        "vmalert",
        "alertmanager",
    }
    for name, service in services().items():
        assert service.get("restart") == "unless-stopped", name
        if not name.startswith("ingest"):
            assert "test" in service.get("healthcheck", {}), f"{name} has no health check"
    # Data lives in named volumes, which survive 'docker compose down' and new images.
    for name, target in [
        ("mosquitto", "/mosquitto/data"),
        ("postgres", "/var/lib/postgresql/data"),
        ("influxdb", "/var/lib/influxdb2"),
        ("grafana", "/var/lib/grafana"),
        ("caddy", "/data"),
        ("victoriametrics", "/storage"),
        ("alertmanager", "/alertmanager"),
    ]:
        volumes = [volume.split(":") for volume in services()[name]["volumes"]]
        assert any(v[1] == target and v[0] in compose()["volumes"] for v in volumes), (name, target)


def test_every_image_has_a_pinned_version() -> None:
    values = env_example()
    images = [resolve(service["image"], values) for service in services().values()]
    base_images = re.findall(r"^FROM\s+(\S+)", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert base_images, "the Dockerfile has no FROM"
    for image in images + base_images:
        name, _, digest = image.partition("@")
        repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
        assert tag or digest, f"{image} names no version"
        assert tag != "latest", f"{image} is not pinned"
        assert digest or re.search(r"\d+\.\d+", tag), f"{image}: {tag!r} is not a version"
        assert repository


def test_every_variable_of_the_compose_file_is_in_the_env_example_and_no_other() -> None:
    used = set(COMPOSE_VARIABLE.findall(COMPOSE.read_text()))
    listed = set(env_example())
    assert used - listed == set(), "used in compose.yaml but not in .env.example"
    assert listed - used == set(), "in .env.example but used nowhere"


def test_no_secret_value_is_committed() -> None:
    for name, value in env_example().items():
        if SECRET_NAME.search(name):
            # Empty: a secret the city may not have (a mail server that asks for no login).
            assert value in (PLACEHOLDER, ""), f".env.example: {name} must be {PLACEHOLDER} or empty"
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for relative in tracked:
        text = (REPO / relative).read_text(errors="replace")
        assert "PRIVATE KEY" not in text, relative
        assert not re.search(r"\$7\$\d+\$", text), relative
    ignored = subprocess.run(
        ["git", "check-ignore", "deploy/secrets/broker/passwd", "deploy/.env", "deploy/backups/x"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert ignored == ["deploy/secrets/broker/passwd", "deploy/.env", "deploy/backups/x"]


def test_the_broker_container_runs_the_tested_config_with_the_generated_files(tmp_path: Path) -> None:
    mosquitto = services()["mosquitto"]
    secrets = SecretsLayout(tmp_path)
    mounts = {}
    for volume in mosquitto["volumes"]:
        source, target, *_mode = resolve(volume, {"LOKALNIE_SECRETS_DIR": str(secrets.root)}).split(":")
        mounts[target] = source
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./mosquitto/mosquitto.conf"
    assert (DEPLOY / mounts["/mosquitto/config/mosquitto.conf"]).resolve() == PRODUCTION_CONFIG
    assert Path(mounts["/mosquitto/secrets"]) == secrets.broker_dir
    # Every file the configuration names is in a mounted directory; the secrets are those the commands write.
    written_by_commands = {
        path.name
        for path in (
            secrets.broker_ca,
            secrets.broker_crl,
            secrets.server_cert,
            secrets.server_key,
            secrets.password_file,
            secrets.acl_file,
        )
    }
    for line in PRODUCTION_CONFIG.read_text().splitlines():
        if line.startswith("#"):
            continue
        for path in re.findall(r"\s(/mosquitto/\S+)", line):
            if path.startswith("/mosquitto/secrets/"):
                assert path.removeprefix("/mosquitto/secrets/") in written_by_commands, path
            else:
                assert path.rstrip("/") in mounts, path
    listeners = re.findall(r"^listener (\d+)$", PRODUCTION_CONFIG.read_text(), re.MULTILINE)
    assert [int(port) for port in listeners] == [TLS_PORT, CERT_PORT]
    assert mosquitto["ports"] == [f"{TLS_PORT}:{TLS_PORT}", f"{CERT_PORT}:{CERT_PORT}"]


def test_the_broker_config_keeps_its_safeguards() -> None:
    """Some safeguards overlap (a client without a user name is refused by both allow_anonymous and
    use_username_as_clientid), so the runtime tests cannot tell each of them is there: this does."""
    lines = PRODUCTION_CONFIG.read_text().splitlines()
    settings = [line for line in lines if line and not line.startswith("#")]
    for required in (
        "per_listener_settings false",
        "allow_anonymous false",
        "password_file /mosquitto/secrets/passwd",
        "acl_file /mosquitto/secrets/acl",
        "persistence true",
        "check_retain_source true",
    ):
        assert required in settings, required
    listeners = "\n".join(settings).split("listener ")[1:]
    assert len(listeners) == 2
    for listener in listeners:
        assert "tls_version tlsv1.2" in listener and "use_username_as_clientid true" in listener
        assert "certfile /mosquitto/secrets/server.crt" in listener
    assert "require_certificate true" in listeners[1] and "crlfile /mosquitto/secrets/crl.pem" in listeners[1]
    assert not any(line.startswith(("allow_anonymous true", "listener 1883")) for line in settings)


def test_the_services_env_files_are_those_the_broker_commands_write(tmp_path: Path) -> None:
    secrets = SecretsLayout(tmp_path)
    values = {"LOKALNIE_SECRETS_DIR": str(secrets.root)}
    expected = {
        "mosquitto": secrets.service_env(HEALTH_USER),
        "ingest-1": secrets.service_env(ingest_username(1)),
        "ingest-2": secrets.service_env(ingest_username(2)),
    }
    for name, path in expected.items():
        assert [Path(resolve(item, values)) for item in services()[name]["env_file"]] == [path]
    for name in ("ingest-1", "ingest-2"):
        environment = services()[name]["environment"]
        assert COMPOSE_VARIABLE.findall(environment["LOKALNIE_INGEST_GROUP"]) == ["LOKALNIE_INGEST_GROUP"]
        mounts = [resolve(volume, values).split(":") for volume in services()[name]["volumes"]]
        assert [Path(source) for source, target, _mode in mounts if target == "/run/lokalnie/ca.crt"] == [
            secrets.broker_ca
        ]
        assert environment["MQTT_CA_FILE"] == "/run/lokalnie/ca.crt"


def test_the_broker_health_check_works_against_the_real_broker(broker: Broker) -> None:
    command = services()["mosquitto"]["healthcheck"]["test"]
    assert command[0] == "CMD-SHELL"
    # Compose turns $$ into $; the container's paths and port become the test broker's.
    shell = command[1].replace("$$", "$").replace("/mosquitto/", f"{broker.root}/")
    shell = shell.replace(f"-p {TLS_PORT}", f"-p {broker.tls_port}")
    assert shell.startswith("mosquitto_sub ")
    shell = servers.require("mosquitto_sub") + shell.removeprefix("mosquitto_sub")
    health_env = dict(
        line.split("=", 1)
        for line in broker.layout.service_env(HEALTH_USER).read_text().splitlines()
        if line and not line.startswith("#")
    )
    done = subprocess.run(
        shell, shell=True, env={**os.environ, **health_env}, capture_output=True, text=True, timeout=15
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\d+ seconds\n", done.stdout)
    # With a wrong password the same check fails.
    bad = subprocess.run(
        shell,
        shell=True,
        env={**os.environ, **health_env, "MQTT_HEALTH_PASSWORD": "wrong"},
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert bad.returncode != 0


def test_the_provisioning_and_init_files_read_only_what_compose_gives_them() -> None:
    grafana_env = set(services()["grafana"]["environment"])
    for path in (DEPLOY / "grafana" / "provisioning").rglob("*.yaml"):
        text = path.read_text()
        yaml.safe_load(text)
        assert set(re.findall(r"\$\{(\w+)\}", text)) <= grafana_env, path
    caddy_env = set(services()["caddy"]["environment"])
    assert set(re.findall(r"\{\$(\w+)\}", (DEPLOY / "caddy" / "Caddyfile").read_text())) <= caddy_env
    influx_env = set(services()["influxdb"]["environment"])
    # Set by the InfluxDB image's entry point after its setup.
    influx_env |= {f"DOCKER_INFLUXDB_INIT_{name}_ID" for name in ("BUCKET", "ORG", "USER")}
    scripts = sorted((DEPLOY / "influxdb" / "init").glob("*.sh"))
    assert scripts
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} must be executable (the image runs only those)"
        assert set(re.findall(r"\$\{(\w+)\}", script.read_text())) <= influx_env, script
        subprocess.run(["bash", "-n", str(script)], check=True)
    git = ["git", "ls-files", "-s", "deploy/influxdb/init"]
    modes = subprocess.run(git, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert all(line.startswith("100755") for line in modes.splitlines()), modes


def test_the_image_runs_as_an_unprivileged_user_and_installs_the_cloud_extra() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert 'pip install -c constraints.txt ".[cloud]"' in dockerfile
    assert "deploy" not in re.findall(r"^COPY\s+(\S+)", dockerfile, re.MULTILINE)


@pytest.mark.parametrize("document", ["README.md"])
def test_the_readme_names_only_broker_commands_that_exist(document: str) -> None:
    commands = {command.name for command in broker_app.registered_commands}
    text = (DEPLOY / document).read_text()
    named = set(re.findall(r"lokalnie broker ([a-z-]+)", text))
    assert named, "the README names no broker command"
    assert named <= commands, named - commands
