"""The production broker over time: a password rotated and a certificate revoked take effect when the broker
reloads (SIGHUP), and the ingest's session with its queued messages survives a restart. Each test has its own
broker and secrets."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.broker import pki
from cloud.broker.credentials import parse_password_file, rotate_password
from cloud.broker.files import SecretsLayout
from cloud.broker.users import edge_username, ingest_username
from common.wire import Channel, all_schools_filter, school_topic
from tests.deploy.conftest import make_secrets, password_of, run_broker
from tests.deploy.mqtt import CONNECTED, Client, connected, try_connect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

A, B = "sp5", "sp6"


@pytest.fixture
def root() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="lokalnie-broker-"))
    directory.chmod(0o711)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def layout(root: Path) -> SecretsLayout:
    made = make_secrets(root)
    made.root.chmod(0o711)
    return made


def as_user(layout: SecretsLayout, username: str, password: str | None = None) -> dict[str, Any]:
    return {
        "username": username,
        "password": password if password is not None else password_of(layout, username),
        "ca_file": layout.ca_cert,
        "client_id": username,
    }


def test_a_rotated_password_replaces_the_old_one_when_the_broker_reloads(
    root: Path, layout: SecretsLayout
) -> None:
    school = edge_username(A)
    old = password_of(layout, school)
    before = parse_password_file(layout.password_file.read_text())
    with run_broker(root, layout) as broker:
        owner = layout.password_file.stat().st_uid
        assert try_connect(broker.tls_port, **as_user(layout, school)) == CONNECTED
        rotate_password(layout, A)
        new = password_of(layout, school)
        assert new != old
        after = parse_password_file(layout.password_file.read_text())
        # Only the school's line changed, and the file still belongs to the broker's user.
        assert {name for name in before if before[name] != after[name]} == {school}
        assert before.keys() == after.keys()
        assert layout.password_file.stat().st_uid == owner
        assert f":{new}@" in (layout.school_dir(A) / "edge.env").read_text()
        # Until the broker reloads, the old password still works.
        assert try_connect(broker.tls_port, **as_user(layout, school, old)) == CONNECTED
        broker.reload()
        assert try_connect(broker.tls_port, **as_user(layout, school, old)).startswith("refused")
        assert try_connect(broker.tls_port, **as_user(layout, school, new)) == CONNECTED
        assert try_connect(broker.tls_port, **as_user(layout, edge_username(B))) == CONNECTED


def test_a_revoked_certificate_is_refused_after_a_reload(root: Path, layout: SecretsLayout) -> None:
    school = edge_username(A)

    def certificate_login() -> dict[str, Any]:
        files = {path.name: path for path in pki.issue_client_cert(layout, school)}
        kept = root / f"{files['client.crt'].stat().st_ino}"
        kept.mkdir()
        for name in ("client.crt", "client.key"):
            shutil.copy(files[name], kept / name)
        return {"ca_file": layout.ca_cert, "cert_file": kept / "client.crt", "key_file": kept / "client.key"}

    with run_broker(root, layout) as broker:
        old = certificate_login()
        assert try_connect(broker.cert_port, **old) == CONNECTED
        pki.revoke_client_certs(layout, school)
        new = certificate_login()
        broker.reload()
        assert try_connect(broker.cert_port, **old) != CONNECTED
        assert try_connect(broker.cert_port, **new) == CONNECTED


def test_the_ingest_session_and_retained_status_survive_a_broker_restart(
    root: Path, layout: SecretsLayout
) -> None:
    worker = as_user(layout, ingest_username(1))
    telemetry, status = school_topic(A, Channel.TELEMETRY), school_topic(A, Channel.STATUS)
    with run_broker(root, layout) as broker:
        away = Client(broker.tls_port, **worker, clean_start=False, session_expiry_s=3600)
        assert away.connect() == CONNECTED
        assert away.subscribe(f"$share/ingest/{all_schools_filter(Channel.TELEMETRY)}") == ["Granted QoS 1"]
        away.close()
        with connected(broker.tls_port, **as_user(layout, edge_username(A))) as school:
            for number in range(3):
                assert school.publish(telemetry, f"while-away-{number}".encode()) == "Success"
            # Nobody subscribes to the status now (a success code in MQTT 5): it is kept as retained.
            assert school.publish(status, b"online", retain=True) == "No matching subscribers"
    # The broker stopped (saving its state) and starts again from the same data directory.
    with run_broker(root, layout) as broker:
        back = Client(broker.tls_port, **worker, clean_start=False, session_expiry_s=3600)
        assert back.connect() == CONNECTED
        try:
            arrived = back.receive(5.0, until=(telemetry, b"while-away-2"))
            assert [message.payload for message in arrived] == [f"while-away-{n}".encode() for n in range(3)]
            back.subscribe(status)
            assert back.wait_for(status, b"online")
        finally:
            back.close()
