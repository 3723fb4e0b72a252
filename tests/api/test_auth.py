"""Signing in and staying signed in, against a real database: the password grant, access token expiry and
tampering, refresh rotation and reuse detection, sign-out, disabled users, login throttling and API keys."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from argon2 import Type, extract_parameters
from sqlalchemy import select

from cloud.auth import accounts, passwords
from cloud.auth.roles import Role
from cloud.db.models import AuditEntry, RefreshToken, User
from tests.api.conftest import PASSWORD, PRODUCTION_HASHER, SETUP_ACTOR, SecuredApi, sqlite_only

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def actions(api: SecuredApi) -> list[tuple[str, str, dict[str, object]]]:
    with api.session() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(entry.action, entry.target, entry.details) for entry in entries]


@pytest.fixture
def anna(api: SecuredApi) -> SecuredApi:
    api.add_user("anna", Role.ENERGY_OFFICER)
    return api


def test_a_sign_in_gives_a_short_lived_access_token_and_a_refresh_token(anna: SecuredApi) -> None:
    response = anna.client.post(TOKEN, data={"username": "Anna", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    assert body["refresh_expires_in"] == 12 * 3600
    assert response.headers["cache-control"] == "no-store"
    me = anna.client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {
        "kind": "user",
        "id": me.json()["id"],
        "name": "anna",
        "display_name": "Anna",
        "role": "energy_officer",
        "school_id": None,
        "firm_id": None,
    }
    assert ("auth.login", "user:anna", {}) in actions(anna)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900 and claims["typ"] == "access" and "role" not in claims


@sqlite_only
def test_a_wrong_password_an_unknown_user_and_a_disabled_account_look_the_same(anna: SecuredApi) -> None:
    anna.add_user("bogdan", Role.SMOG_OFFICER)
    with anna.session() as session:
        accounts.set_active(session, SETUP_ACTOR, "bogdan", False, anna.now())
        session.commit()
    answers = [
        anna.client.post(TOKEN, data={"username": username, "password": password})
        for username, password in [("anna", "not the password"), ("nobody", PASSWORD), ("bogdan", PASSWORD)]
    ]
    assert {(answer.status_code, answer.text, answer.headers["www-authenticate"]) for answer in answers} == {
        (401, '{"detail":"incorrect username or password"}', "Bearer")
    }
    failures = [
        (target, details["reason"])
        for action, target, details in actions(anna)
        if action == "auth.login_failed"
    ]
    assert failures == [
        ("user:anna", "wrong password"),
        ("user:nobody", "unknown user"),
        ("user:bogdan", "disabled"),
    ]


@sqlite_only
def test_an_unknown_user_costs_a_password_check_too(
    anna: SecuredApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = passwords._hasher

    class Counting:
        def verify(self, hash_: str, password: str) -> bool:
            checked.append(hash_)
            return real.verify(hash_, password)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    anna.client.post(TOKEN, data={"username": "nobody", "password": PASSWORD})
    assert checked == [passwords._DUMMY_HASH]


def test_production_hashes_cost_what_rfc_9106_asks() -> None:
    parameters = extract_parameters(PRODUCTION_HASHER.hash(PASSWORD))
    assert parameters.type is Type.ID
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (3, 65536, 4)


@sqlite_only
def test_passwords_are_stored_as_argon2id(anna: SecuredApi) -> None:
    with anna.session() as session:
        stored = session.scalars(select(User.password_hash).where(User.username == "anna")).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


@sqlite_only
def test_an_access_token_expires(anna: SecuredApi) -> None:
    token = anna.sign_in("anna")["access_token"]
    anna.now.advance(15 * 60 - 1)
    assert anna.client.get(ME, headers=bearer(token)).status_code == 200
    anna.now.advance(1)
    expired = anna.client.get(ME, headers=bearer(token))
    assert expired.status_code == 401
    assert expired.json() == {"detail": "invalid or expired credentials"}
    assert expired.headers["www-authenticate"] == "Bearer"


def _segments(token: str) -> list[str]:
    return token.split(".")


def _encode(part: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


@sqlite_only
def test_forged_and_tampered_tokens_are_refused(anna: SecuredApi) -> None:
    tokens = anna.sign_in("anna")
    access = str(tokens["access_token"])
    header, payload, signature = _segments(access)
    claims = jwt.decode(access, options={"verify_signature": False})
    forged = [
        # Another user's id under the same signature.
        f"{header}.{_encode({**claims, 'sub': '999'})}.{signature}",
        # No signature at all.
        f"{_encode({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        # Signed with a key that is not the API's.
        jwt.encode(claims, "a" * 64, algorithm="HS256"),
        # A refresh token is not an access token.
        str(tokens["refresh_token"]),
        "",
        "lk_000000000000_" + "A" * 43,
    ]
    for token in forged:
        response = anna.client.get(ME, headers=bearer(token))
        assert response.status_code == 401, token


def test_a_refresh_token_works_once_and_its_reuse_ends_the_session(anna: SecuredApi) -> None:
    first = anna.sign_in("anna")
    second = anna.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert anna.client.get(ME, headers=bearer(second.json()["access_token"])).status_code == 200
    # The first token again: stolen or replayed. The whole family goes.
    reused = anna.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.headers["www-authenticate"] == "Bearer"
    assert (
        anna.client.post(REFRESH, json={"refresh_token": second.json()["refresh_token"]}).status_code == 401
    )
    reuse = [details for action, _target, details in actions(anna) if action == "auth.refresh_reuse"]
    assert len(reuse) == 1 and reuse[0]["tokens_revoked"] == 2
    # A new sign-in is unaffected.
    assert (
        anna.client.post(REFRESH, json={"refresh_token": anna.sign_in("anna")["refresh_token"]}).status_code
        == 200
    )


def test_refresh_tokens_expire_and_a_session_ends_after_its_maximum(anna: SecuredApi) -> None:
    idle = anna.sign_in("anna")
    anna.now.advance(12 * 3600)
    assert anna.client.post(REFRESH, json={"refresh_token": idle["refresh_token"]}).status_code == 401
    token = anna.sign_in("anna")["refresh_token"]
    refreshed = 0
    while True:
        anna.now.advance(11 * 3600)
        response = anna.client.post(REFRESH, json={"refresh_token": token})
        if response.status_code != 200:
            break
        token = response.json()["refresh_token"]
        refreshed += 1
        assert response.json()["refresh_expires_in"] <= 12 * 3600
    # Seven days of sign-in, refreshed every 11 hours: 15 refreshes, the 16th is past the end.
    assert refreshed == 15 and response.status_code == 401


def test_sign_out_ends_the_session(anna: SecuredApi) -> None:
    tokens = anna.sign_in("anna")
    assert anna.client.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert anna.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    # Unknown tokens get the same answer.
    assert anna.client.post(LOGOUT, json={"refresh_token": "x" * 43}).status_code == 204
    assert [action for action, _t, _d in actions(anna)].count("auth.logout") == 1


def test_disabling_a_user_cuts_them_off_at_once(anna: SecuredApi) -> None:
    tokens = anna.sign_in("anna")
    with anna.session() as session:
        accounts.set_active(session, SETUP_ACTOR, "anna", False, anna.now())
        session.commit()
    assert anna.client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401
    assert anna.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    with anna.session() as session:
        revoked = session.scalars(select(RefreshToken.revoked_ms)).all()
    assert revoked and all(when is not None for when in revoked)


def test_a_role_change_applies_to_the_next_call(anna: SecuredApi) -> None:
    token = anna.sign_in("anna")["access_token"]
    assert anna.client.get("/api/v1/ingest/dead-letters", headers=bearer(token)).status_code == 200
    with anna.session() as session:
        accounts.set_role(session, SETUP_ACTOR, "anna", Role.HUB_ADMIN, anna.now())
        session.commit()
    assert anna.client.get("/api/v1/ingest/dead-letters", headers=bearer(token)).status_code == 403
    assert anna.client.get(ME, headers=bearer(token)).json()["role"] == "hub_admin"


@sqlite_only
def test_repeated_failures_throttle_that_username_from_that_address(anna: SecuredApi) -> None:
    anna.add_user("celina", Role.HUB_ADMIN)
    for _ in range(5):
        assert (
            anna.client.post(TOKEN, data={"username": "anna", "password": "guess guess guess"}).status_code
            == 401
        )
    throttled = anna.client.post(TOKEN, data={"username": "anna", "password": PASSWORD})
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 15 * 60
    assert throttled.json() == {"detail": "too many failed sign-ins; try again later"}
    # Another username from the same address is not affected.
    assert anna.client.post(TOKEN, data={"username": "celina", "password": PASSWORD}).status_code == 200
    anna.now.advance(15 * 60)
    assert anna.client.post(TOKEN, data={"username": "anna", "password": PASSWORD}).status_code == 200
    assert any(
        details.get("throttled") for action, _t, details in actions(anna) if action == "auth.login_failed"
    )


@sqlite_only
def test_sign_ins_from_one_address_are_rate_limited(anna: SecuredApi) -> None:
    answers = [
        anna.client.post(TOKEN, data={"username": f"nobody{i}", "password": "x" * 12}).status_code
        for i in range(11)
    ]
    assert answers == [401] * 10 + [429]
    limited = anna.client.post(TOKEN, data={"username": "anna", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    anna.now.advance(int(limited.headers["retry-after"]))
    assert anna.client.post(TOKEN, data={"username": "anna", "password": PASSWORD}).status_code == 200


def test_api_keys_admit_a_machine_until_revoked_or_expired(api: SecuredApi) -> None:
    with api.session() as session:
        _key, kiosk = accounts.create_api_key(
            session, SETUP_ACTOR, name="kiosk", role=Role.ENERGY_OFFICER, now_ms=api.now()
        )
        _key, school = accounts.create_api_key(
            session,
            SETUP_ACTOR,
            name="sp integration",
            role=Role.SCHOOL_ADMIN,
            school_id=api.school_ids[0],
            now_ms=api.now(),
            expires_ms=api.now() + 3600_000,
        )
        session.commit()
    dead_letters = "/api/v1/ingest/dead-letters"
    assert api.client.get(dead_letters, headers={"X-API-Key": kiosk}).status_code == 200
    assert api.client.get(dead_letters, headers=bearer(kiosk)).status_code == 200
    me = api.client.get(ME, headers={"X-API-Key": school}).json()
    assert (me["kind"], me["role"], me["school_id"]) == ("api_key", "school_admin", api.school_ids[0])
    assert api.client.get(dead_letters, headers={"X-API-Key": school}).status_code == 403
    # The right prefix with another secret.
    assert api.client.get(ME, headers={"X-API-Key": kiosk[:-4] + "AAAA"}).status_code == 401
    api.now.advance(3600)
    assert api.client.get(ME, headers={"X-API-Key": school}).status_code == 401
    with api.session() as session:
        accounts.revoke_api_key(session, SETUP_ACTOR, kiosk.split("_")[1], api.now())
        session.commit()
    assert api.client.get(dead_letters, headers={"X-API-Key": kiosk}).status_code == 401
    assert [action for action, _t, _d in actions(api)] == [
        "auth.key_created",
        "auth.key_created",
        "auth.key_revoked",
    ]


def test_scopes_must_fit_roles_and_schools_must_exist(api: SecuredApi) -> None:
    with api.session() as session:
        for role, school, firm, words in [
            (Role.SCHOOL_ADMIN, None, None, "needs a school"),
            (Role.FIRM, api.school_ids[0], None, "needs a firm"),
            (Role.SMOG_OFFICER, api.school_ids[0], None, "not bound"),
            (Role.SCHOOL_ADMIN, "nosuchschool", None, "no school 'nosuchschool' in the register"),
            (Role.FIRM, None, "bad firm/id", "not a firm id"),
        ]:
            with pytest.raises(accounts.UserError, match=words):
                accounts.create_user(
                    session,
                    SETUP_ACTOR,
                    username="x1",
                    display_name="X",
                    role=role,
                    password=PASSWORD,
                    now_ms=api.now(),
                    school_id=school,
                    firm_id=firm,
                )
        for username in ("a", "Ola Nowak", "ola@example.pl", "-ola"):
            with pytest.raises(accounts.UserError, match="not a username"):
                accounts.create_user(
                    session,
                    SETUP_ACTOR,
                    username=username,
                    display_name="X",
                    role=Role.HUB_ADMIN,
                    password=PASSWORD,
                    now_ms=api.now(),
                )
        with pytest.raises(accounts.UserError, match="at least 12"):
            accounts.create_user(
                session,
                SETUP_ACTOR,
                username="ola",
                display_name="Ola",
                role=Role.HUB_ADMIN,
                password="short",
                now_ms=api.now(),
            )
