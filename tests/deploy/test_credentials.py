"""Users, passwords, Mosquitto's password file and the ACL, as generated from the 16 schools' site files."""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
from pathlib import Path

import pytest

from cloud.broker import pki
from cloud.broker.acl import render_acl
from cloud.broker.credentials import (
    PBKDF2_ITERATIONS,
    CredentialsError,
    CredentialStore,
    ensure_credentials,
    hash_password,
    parse_password_file,
    rotate_password,
    verify_password,
    write_acl,
)
from cloud.broker.files import SecretsLayout
from cloud.broker.users import Role, expected_users
from common.sites import load_sites
from tests import servers
from tests.conftest import SITES_DIR

SCHOOLS = [site.id for site in load_sites(SITES_DIR)]
URL = "mqtts://mqtt.zdunskawola.example:8883"


@pytest.fixture
def layout(tmp_path: Path) -> SecretsLayout:
    made = SecretsLayout(tmp_path / "secrets")
    pki.create_ca(made)
    return made


def test_the_password_hash_is_mosquittos_own_format() -> None:
    hashed = hash_password("correct horse")
    assert re.fullmatch(rf"\$7\${PBKDF2_ITERATIONS}\$[A-Za-z0-9+/]{{16}}\$[A-Za-z0-9+/]{{86}}==", hashed)
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct horse ", hashed)
    assert hash_password("same") != hash_password("same")  # a new salt each time


def test_hashes_made_by_mosquitto_passwd_are_understood(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(
        [servers.require("mosquitto_passwd"), "-c", "-b", str(path), "edge-sp5", "Pa55word"],
        check=True,
        capture_output=True,
    )
    hashed = parse_password_file(path.read_text())["edge-sp5"]
    assert hashed.startswith("$7$101$")
    assert verify_password("Pa55word", hashed)
    assert not verify_password("pa55word", hashed)


def test_every_school_and_service_gets_a_user_and_the_files_it_needs(layout: SecretsLayout) -> None:
    outcome = ensure_credentials(layout, SCHOOLS, broker_url=URL)
    store = CredentialStore.load(layout.credentials)
    assert len(SCHOOLS) == 16
    assert (
        sorted(outcome.created) == sorted(store.users) == sorted(u.username for u in expected_users(SCHOOLS))
    )
    assert {user.role for user in store.users.values()} == set(Role)
    passwords = [user.password for user in store.users.values()]
    assert len(set(passwords)) == len(passwords)
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", password) for password in passwords)
    hashes = parse_password_file(layout.password_file.read_text())
    assert hashes.keys() == store.users.keys()
    assert all(verify_password(store.users[name].password, hashed) for name, hashed in hashes.items())
    for path in (layout.credentials, layout.password_file, layout.school_dir("sp5") / "edge.env"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    env = (layout.school_dir("sp5") / "edge.env").read_text()
    assert (
        f"MQTT_URL=mqtts://edge-sp5:{store.users['edge-sp5'].password}@mqtt.zdunskawola.example:8883\n" in env
    )
    assert "MQTT_CA_FILE=/etc/lokalnie/ca.crt\n" in env
    assert (layout.school_dir("sp5") / "ca.crt").read_bytes() == layout.ca_cert.read_bytes()
    ingest = layout.service_env("lokalnie-ingest-2").read_text()
    assert "@mosquitto:8883\n" in ingest and "LOKALNIE_INGEST_CLIENT_ID=lokalnie-ingest-2\n" in ingest


def test_a_second_run_keeps_everything_and_writes_nothing(layout: SecretsLayout) -> None:
    ensure_credentials(layout, SCHOOLS, broker_url=URL)
    before = {path: path.read_bytes() for path in layout.root.rglob("*") if path.is_file()}
    outcome = ensure_credentials(layout, SCHOOLS)  # the broker URL is remembered
    assert (outcome.created, outcome.removed, outcome.written) == ([], [], [])
    assert {path: path.read_bytes() for path in layout.root.rglob("*") if path.is_file()} == before


def test_a_new_school_is_added_and_a_school_gone_from_the_site_files_loses_its_user(
    layout: SecretsLayout,
) -> None:
    ensure_credentials(layout, SCHOOLS, broker_url=URL)
    kept = CredentialStore.load(layout.credentials).users["edge-sp6"].password
    outcome = ensure_credentials(layout, [*[s for s in SCHOOLS if s != "sp5"], "sp99"], ingest_workers=3)
    assert sorted(outcome.created) == ["edge-sp99", "lokalnie-ingest-3"]
    assert outcome.removed == ["edge-sp5"]
    users = CredentialStore.load(layout.credentials).users
    assert users["edge-sp6"].password == kept
    assert "edge-sp5" not in parse_password_file(layout.password_file.read_text())
    acl = layout.acl_file.read_text()
    assert "user edge-sp5\n" not in acl and "user edge-sp99\n" in acl and "user lokalnie-ingest-3\n" in acl


def test_rotating_changes_one_user_only(layout: SecretsLayout) -> None:
    ensure_credentials(layout, SCHOOLS, broker_url=URL)
    before = parse_password_file(layout.password_file.read_text())
    other_env = (layout.school_dir("sp6") / "edge.env").read_bytes()
    old = CredentialStore.load(layout.credentials).users["edge-sp5"].password
    outcome = rotate_password(layout, "sp5")
    new = CredentialStore.load(layout.credentials).users["edge-sp5"].password
    after = parse_password_file(layout.password_file.read_text())
    assert new != old
    assert [name for name in before if before[name] != after[name]] == ["edge-sp5"]
    assert verify_password(new, after["edge-sp5"])
    assert (layout.school_dir("sp6") / "edge.env").read_bytes() == other_env
    assert layout.school_dir("sp5") / "edge.env" in outcome.written
    assert layout.acl_file not in outcome.written
    # A service is rotated by its user name.
    rotate_password(layout, "lokalnie-ingest-1")
    assert f":{CredentialStore.load(layout.credentials).users['lokalnie-ingest-1'].password}@" in (
        layout.service_env("lokalnie-ingest-1").read_text()
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_rewritten_broker_file_keeps_its_owner(layout: SecretsLayout) -> None:
    ensure_credentials(layout, SCHOOLS, broker_url=URL)
    nobody = pwd.getpwnam("nobody")
    os.chown(layout.password_file, nobody.pw_uid, nobody.pw_gid)
    rotate_password(layout, "sp5")
    assert (layout.password_file.stat().st_uid, layout.password_file.stat().st_gid) == (
        nobody.pw_uid,
        nobody.pw_gid,
    )


def test_bad_input_is_refused(tmp_path: Path, layout: SecretsLayout) -> None:
    with pytest.raises(CredentialsError, match="--broker-url"):
        ensure_credentials(layout, SCHOOLS)
    with pytest.raises(CredentialsError, match="TLS only"):
        ensure_credentials(layout, SCHOOLS, broker_url="mqtt://mqtt.example:1883")
    with pytest.raises(CredentialsError, match="without a user name"):
        ensure_credentials(layout, SCHOOLS, broker_url="mqtts://me:secret@mqtt.example:8883")
    with pytest.raises(pki.PkiError, match="pki-init"):
        ensure_credentials(SecretsLayout(tmp_path / "no-ca"), SCHOOLS, broker_url=URL)
    ensure_credentials(layout, SCHOOLS, broker_url=URL)
    with pytest.raises(CredentialsError, match="unknown school or user 'sp77'"):
        rotate_password(layout, "sp77")


def test_the_acl_gives_each_school_its_own_topics_and_the_services_theirs() -> None:
    acl = render_acl(expected_users(SCHOOLS))
    rules = [line for line in acl.splitlines() if line and not line.startswith("#")]
    # Nothing for anonymous clients: the first rule is a user line.
    assert rules[0].startswith("user ")
    blocks: dict[str, list[str]] = {}
    for line in rules:
        if line.startswith("user "):
            current = blocks.setdefault(line.removeprefix("user "), [])
        else:
            current.append(line)
    assert blocks["edge-sp5"] == [
        "topic write lokalnie/v1/sp5/telemetry",
        "topic write lokalnie/v1/sp5/status",
        "topic write lokalnie/v1/sp5/events",
        "topic read lokalnie/v1/sp5/config",
    ]
    assert blocks["lokalnie-ingest-1"] == [
        "topic read lokalnie/v1/+/telemetry",
        "topic read lokalnie/v1/+/status",
        "topic read lokalnie/v1/+/events",
    ]
    # No school can write anywhere but under its own id, and nobody but the operators writes config.
    for user, lines in blocks.items():
        writes = [line.split()[2] for line in lines if line.split()[1] != "read"]
        if user.startswith("edge-"):
            assert all(topic.split("/")[2] == user.removeprefix("edge-") for topic in writes)
        elif user != "lokalnie-ops":
            assert writes == []
    assert len([user for user in blocks if user.startswith("edge-")]) == 16


def test_the_acl_command_needs_no_credentials(tmp_path: Path) -> None:
    layout = SecretsLayout(tmp_path / "fresh")
    outcome = write_acl(layout, SCHOOLS)
    assert outcome.written == [layout.acl_file]
    assert layout.acl_file.read_text() == render_acl(expected_users(SCHOOLS))
