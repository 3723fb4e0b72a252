"""``lokalnie users`` on a real database: each command does what it says, writes the audit log as
``cli:<os user>``, and refuses what it cannot do with a message and exit code 1."""

from __future__ import annotations

import getpass

import pytest
from typer.testing import CliRunner

from cloud.auth.cli import app
from tests.api.conftest import PASSWORD, SecuredApi, sqlite_only

runner = CliRunner()


def users(api: SecuredApi, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--database-url", api.settings.database_url], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_the_commands_manage_users_and_keys_and_are_audited(api: SecuredApi) -> None:
    school = api.school_ids[0]
    code, out, err = users(
        api,
        "add",
        "Dyrektor.SP5",
        "--role",
        "school_admin",
        "--school",
        school,
        "--name",
        "Jan Dyrektor",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    assert out == f"added dyrektor.sp5 (school_admin, school:{school})\n"
    assert (
        api.client.post(
            "/api/v1/auth/token", data={"username": "dyrektor.sp5", "password": PASSWORD}
        ).status_code
        == 200
    )

    code, out, _ = users(api, "list")
    assert code == 0 and f"dyrektor.sp5\tschool_admin\tschool:{school}\tyes" in out

    assert users(api, "set-role", "dyrektor.sp5", "energy_officer")[0] == 0
    assert users(api, "disable", "dyrektor.sp5")[0] == 0
    assert (
        api.client.post(
            "/api/v1/auth/token", data={"username": "dyrektor.sp5", "password": PASSWORD}
        ).status_code
        == 401
    )
    assert users(api, "enable", "dyrektor.sp5")[0] == 0
    new_password = "another long password"
    assert users(api, "set-password", "dyrektor.sp5", "--password-stdin", stdin=new_password + "\n")[0] == 0
    token = api.client.post("/api/v1/auth/token", data={"username": "dyrektor.sp5", "password": new_password})
    assert token.status_code == 200

    code, key, err = users(
        api, "create-key", "kiosk hall", "--role", "energy_officer", "--expires-days", "30"
    )
    assert code == 0 and key.startswith("lk_") and "not shown again" in err
    prefix = key.split("_")[1]
    assert (
        api.client.get("/api/v1/ingest/dead-letters", headers={"X-API-Key": key.strip()}).status_code == 200
    )
    code, out, _ = users(api, "keys")
    assert prefix in out and "kiosk hall" in out and key.strip() not in out
    assert users(api, "revoke-key", prefix)[0] == 0
    assert (
        api.client.get("/api/v1/ingest/dead-letters", headers={"X-API-Key": key.strip()}).status_code == 401
    )

    code, out, _ = users(api, "audit", "--area", "auth")
    entries = [line.split("\t") for line in out.splitlines()]
    by_cli = [fields[3] for fields in entries if fields[1] == f"cli:{getpass.getuser()}"]
    assert by_cli == [
        "auth.user_created",
        "auth.role_changed",
        "auth.user_disabled",
        "auth.user_enabled",
        "auth.password_set",
        "auth.key_created",
        "auth.key_revoked",
    ]
    by_api = [(fields[1], fields[3]) for fields in entries if fields[1] != f"cli:{getpass.getuser()}"]
    assert by_api == [
        ("user:dyrektor.sp5", "auth.login"),
        ("anonymous:anonymous", "auth.login_failed"),
        ("user:dyrektor.sp5", "auth.login"),
    ]


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (
            ["add", "ola", "--role", "hub_admin", "--name", "Ola", "--password-stdin"],
            "short\n",
            "at least 12",
        ),
        (
            ["add", "ola", "--role", "school_admin", "--name", "Ola", "--password-stdin"],
            PASSWORD + "\n",
            "needs a school",
        ),
        (["disable", "nobody"], None, "no user 'nobody'"),
        (["revoke-key", "000000000000"], None, "no key with prefix"),
        (["set-role", "nobody", "firm", "--firm", "f1"], None, "no user 'nobody'"),
    ],
)
@sqlite_only
def test_what_cannot_be_done_is_refused_with_a_reason(
    api: SecuredApi, args: list[str], stdin: str | None, words: str
) -> None:
    code, out, err = users(api, *args, stdin=stdin)
    assert code == 1 and out == "" and words in err and "Traceback" not in err


def test_a_bad_database_url_is_a_configuration_error() -> None:
    result = runner.invoke(app, ["list", "--database-url", "mysql://db/x"])
    assert result.exit_code == 2 and "DATABASE_URL" in result.stderr
