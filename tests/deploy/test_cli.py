"""`lokalnie broker ...` as the city's IT runs it: the README's sequence of commands, each saying what it
wrote, and bad input refused in one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.broker.credentials import CredentialStore
from cloud.broker.files import SecretsLayout
from lokalnie.cli import app
from tests.conftest import SITES_DIR

runner = CliRunner()


def broker(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["broker", *args], env={"LOKALNIE_SECRETS_DIR": None, "LOKALNIE_SITES_DIR": None}
    )
    return result.exit_code, result.stdout, result.stderr


def wrote(stdout: str) -> set[Path]:
    return {Path(line.removeprefix("wrote ")) for line in stdout.splitlines() if line.startswith("wrote ")}


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    return tmp_path / "secrets"


def test_the_readme_sequence_writes_and_names_every_file(secrets: Path) -> None:
    layout = SecretsLayout(secrets)
    code, out, _ = broker("pki-init", "--secrets", str(secrets))
    assert code == 0
    assert {layout.ca_key, layout.ca_cert, layout.broker_ca, layout.broker_crl} <= wrote(out)
    assert "offline" in out
    code, out, _ = broker("server-cert", "--secrets", str(secrets), "--host", "mqtt.example.pl")
    assert code == 0 and {layout.server_cert, layout.server_key} <= wrote(out)
    assert "kill -s HUP mosquitto" in out
    args = ["--sites", str(SITES_DIR), "--out", str(secrets), "--broker-url", "mqtts://mqtt.example.pl:8883"]
    code, out, _ = broker("credentials", *args)
    assert code == 0
    assert {
        layout.password_file,
        layout.acl_file,
        layout.credentials,
        layout.school_dir("sp5") / "edge.env",
    } <= (wrote(out))
    assert out.count("new user edge-") == 16
    assert all(path.exists() for path in wrote(out))
    # Again: nothing new, nothing rewritten.
    code, out, _ = broker("credentials", "--sites", str(SITES_DIR), "--secrets", str(secrets))
    assert (code, wrote(out)) == (0, set())
    assert "files unchanged" in out
    code, out, _ = broker("rotate", "sp5", "--secrets", str(secrets))
    assert code == 0
    assert wrote(out) == {layout.credentials, layout.password_file, layout.school_dir("sp5") / "edge.env"}
    code, out, _ = broker("client-cert", "sp5", "--secrets", str(secrets))
    assert code == 0 and layout.client_dir("edge-sp5") / "client.crt" in wrote(out)
    code, out, _ = broker("revoke-cert", "edge-sp5", "--secrets", str(secrets))
    assert code == 0 and layout.broker_crl in wrote(out)
    code, out, _ = broker("acl", "--sites", str(SITES_DIR), "--secrets", str(secrets))
    assert code == 0 and "files unchanged" in out
    assert len(CredentialStore.load(layout.credentials).users) == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["server-cert", "--host", "mqtt.example.pl"], "no CA in"),
        (["client-cert", "edge-sp5"], "unknown school or user"),
        (["rotate", "sp5"], "unknown school or user 'sp5'"),
        (["credentials", "--sites", str(SITES_DIR)], "give --broker-url"),
        (["credentials", "--sites", str(SITES_DIR), "--broker-url", "mqtts://mqtt.example.pl"], "no CA in"),
        (["credentials", "--sites", "/nonexistent"], "no site files"),
    ],
)
def test_bad_input_is_refused_in_one_line(secrets: Path, args: list[str], message: str) -> None:
    code, out, err = broker(*args, "--secrets", str(secrets))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert out == ""


def test_an_existing_ca_is_not_overwritten(secrets: Path) -> None:
    assert broker("pki-init", "--secrets", str(secrets))[0] == 0
    key = (secrets / "pki" / "ca.key").read_bytes()
    code, out, err = broker("pki-init", "--secrets", str(secrets))
    assert (code, out) == (2, "")
    assert "--force" in err and err.count("\n") == 1
    assert (secrets / "pki" / "ca.key").read_bytes() == key
    code, _out, _err = broker("pki-init", "--secrets", str(secrets), "--force")
    assert code == 0 and (secrets / "pki" / "ca.key").read_bytes() != key


def test_a_bad_host_or_a_plain_broker_url_is_refused(secrets: Path) -> None:
    broker("pki-init", "--secrets", str(secrets))
    code, _out, err = broker("server-cert", "--secrets", str(secrets), "--host", "bad host")
    assert code == 2 and "neither a host name" in err
    code, _out, err = broker(
        "credentials",
        "--sites",
        str(SITES_DIR),
        "--secrets",
        str(secrets),
        "--broker-url",
        "mqtt://plain:1883",
    )
    assert code == 2 and "TLS only" in err
