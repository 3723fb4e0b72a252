"""The production Mosquitto configuration (deploy/mosquitto/mosquitto.conf) run for real, with the CA,
certificates, password file and ACL that `lokalnie broker` generates from the 16 schools' site files.

The configuration is rendered with only its listeners' ports and its ``/mosquitto/`` paths replaced; the
broker runs as an unprivileged user, as it does in its container.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud.broker import pki
from cloud.broker.credentials import CredentialStore, ensure_credentials
from cloud.broker.files import SecretsLayout
from common.sites import load_sites
from lokalnie.ports import free_port
from tests import servers
from tests.conftest import REPO, SITES_DIR

PRODUCTION_CONFIG = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
# Where the compose file mounts things in the Mosquitto container; the tests put them elsewhere.
CONTAINER_ROOT = "/mosquitto/"
PATH_DIRECTIVES = {
    "password_file",
    "acl_file",
    "persistence_location",
    "cafile",
    "certfile",
    "keyfile",
    "crlfile",
}
TLS_PORT = 8883
CERT_PORT = 8884
BROKER_URL = "mqtts://mqtt.example.invalid:8883"


def render_config(text: str, root: Path, ports: dict[int, int]) -> str:
    """The production configuration with ``/mosquitto/...`` paths moved under ``root`` and the listeners'
    ports replaced; every other line is kept as it is."""
    lines = []
    for line in text.splitlines():
        directive, _, value = line.partition(" ")
        if directive == "listener":
            port, _, rest = value.partition(" ")
            line = " ".join(part for part in ("listener", str(ports[int(port)]), rest) if part)
        elif directive in PATH_DIRECTIVES:
            assert value.startswith(CONTAINER_ROOT), f"{directive} {value} is not under {CONTAINER_ROOT}"
            line = f"{directive} {root / value.removeprefix(CONTAINER_ROOT)}"
            if value.endswith("/"):
                line += "/"
        elif not line.startswith("#"):
            assert CONTAINER_ROOT not in line, f"a path the tests would not move: {line}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _broker_user() -> tuple[int, int] | None:
    """The unprivileged user the broker runs as when the tests run as root (as Mosquitto's container does)."""
    if os.geteuid() != 0:
        return None
    for name in ("mosquitto", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("no unprivileged user (mosquitto or nobody) to run the broker as")


@dataclass
class Broker:
    """A running Mosquitto with the production configuration."""

    root: Path  # stands for /mosquitto/ in the container
    layout: SecretsLayout
    tls_port: int
    cert_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def reload(self, timeout_s: float = 10.0) -> None:
        """SIGHUP, as `docker compose kill -s HUP mosquitto`; returns once the broker has reloaded."""
        before = self._count("Reloading config")
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while self._count("Reloading config") <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker did not reload within {timeout_s} s")
            time.sleep(0.02)
        # The reload happens in the broker's main loop right after it logs the line.
        time.sleep(0.2)

    def _count(self, text: str) -> int:
        return self.log.read_text(errors="replace").count(text) if self.log.exists() else 0


def make_secrets(root: Path) -> SecretsLayout:
    """The CA, the broker's certificate and every user of the 16 schools, as the README has IT create them."""
    layout = SecretsLayout(root / "secrets")
    pki.create_ca(layout)
    pki.issue_server_cert(layout, ["mqtt.example.invalid"])
    schools = [site.id for site in load_sites(SITES_DIR)]
    ensure_credentials(layout, schools, broker_url=BROKER_URL)
    return layout


def give_to_broker(path: Path) -> None:
    """Make the broker's files the broker user's, as deploy/README.md has IT do (chown 1883:1883)."""
    owner = _broker_user()
    if owner is None:
        return
    for item in [path, *path.rglob("*")]:
        os.chown(item, *owner)


@contextlib.contextmanager
def run_broker(root: Path, layout: SecretsLayout) -> Iterator[Broker]:
    """Mosquitto with the production configuration; the broker's files are those of ``layout``."""
    mount = root / "mosquitto"
    (mount / "data").mkdir(parents=True, exist_ok=True)
    # What compose mounts at /mosquitto/secrets: the broker directory of the secrets.
    secrets_link = mount / "secrets"
    if not secrets_link.exists():
        secrets_link.symlink_to(layout.broker_dir)
    give_to_broker(mount / "data")
    give_to_broker(layout.broker_dir)
    ports = {TLS_PORT: free_port(), CERT_PORT: free_port()}
    config = mount / "mosquitto.conf"
    config.write_text(render_config(PRODUCTION_CONFIG.read_text(), mount, ports))
    log = mount / "mosquitto.log"
    command = [servers.require("mosquitto"), "-c", str(config)]
    owner = _broker_user()
    if owner is not None:
        uid, gid = owner
        command = [
            servers.require("setpriv"),
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--pdeathsig=keep",
            *command,
        ]
    process = servers.start(command, log)
    try:
        servers.wait_for_port(ports[TLS_PORT], process=process)
        servers.wait_for_port(ports[CERT_PORT], process=process)
        yield Broker(mount, layout, ports[TLS_PORT], ports[CERT_PORT], process, log)
    finally:
        servers.stop_process(process)


@pytest.fixture(scope="module")
def broker_root() -> Iterator[Path]:
    """A directory the unprivileged broker user can reach (pytest's own temporary directories are private)."""
    root = Path(tempfile.mkdtemp(prefix="lokalnie-broker-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def secrets_layout(broker_root: Path) -> SecretsLayout:
    layout = make_secrets(broker_root)
    layout.root.chmod(0o711)  # the secrets stay 0700 below it; the broker needs to reach its own directory
    return layout


@pytest.fixture(scope="module")
def broker(broker_root: Path, secrets_layout: SecretsLayout) -> Iterator[Broker]:
    with run_broker(broker_root, secrets_layout) as running:
        yield running


def password_of(layout: SecretsLayout, username: str) -> str:
    return CredentialStore.load(layout.credentials).users[username].password


def log_mentions(broker: Broker, pattern: str) -> bool:
    return re.search(pattern, broker.log.read_text(errors="replace")) is not None
