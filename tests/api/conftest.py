"""Fixtures of the API's security tests: an app over a migrated database (SQLite and PostgreSQL) with two
schools, a real user of every role (two school administrators, two firm accounts), their real tokens, and a
clock for tokens and rate limits that the test moves.

Passwords are argon2id hashes as in production, with the cost lowered for the tests' speed (a production
hash costs about 0.2 s here); `test_auth.test_production_hashes_cost_what_rfc_9106_asks` checks the real
parameters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud.api.main import create_app
from cloud.auth import passwords
from cloud.auth.accounts import create_user
from cloud.auth.audit import Actor
from cloud.auth.roles import Role
from cloud.db.engine import make_engine
from cloud.db.register import prepare_database
from cloud.settings import Settings
from common.clock import ManualClock
from tests.cloud.conftest import NOW_MS, unique_id, write_sites
from tests.conftest import fill_from_template, migrate

PASSWORD = "Zdunska-Wola-2026!"
# For tests of logic that is the same on both databases: run them on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SETUP_ACTOR = Actor(kind="cli", name="cli:tests")


PRODUCTION_HASHER = passwords._hasher


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with a small cost: the same code paths, milliseconds instead of tenths of a second."""
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", _CHEAP_DUMMY)


_CHEAP_DUMMY = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("no user has this password")


class Now:
    """Real time as the tests want it: a millisecond count they move forward."""

    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@dataclass(frozen=True)
class Caller:
    """A signed-in user of the test database."""

    username: str
    role: Role
    school_id: str | None = None
    firm_id: str | None = None
    access_token: str = ""
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class SecuredApi:
    """The app, its test client, its database and its callers by name."""

    app: FastAPI
    client: TestClient
    engine: Engine
    settings: Settings
    now: Now
    school_ids: list[str]
    firm_ids: list[str]
    callers: dict[str, Caller] = field(default_factory=dict)

    def session(self) -> Session:
        return Session(self.engine)

    def add_user(
        self, username: str, role: Role, school_id: str | None = None, firm_id: str | None = None
    ) -> None:
        with self.session() as session:
            create_user(
                session,
                SETUP_ACTOR,
                username=username,
                display_name=username.title(),
                role=role,
                password=PASSWORD,
                now_ms=self.now(),
                school_id=school_id,
                firm_id=firm_id,
            )
            session.commit()

    def sign_in(self, username: str, password: str = PASSWORD) -> dict[str, object]:
        response = self.client.post("/api/v1/auth/token", data={"username": username, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


def make_settings(database_url: str, sites_dir: Path, **overrides: object) -> Settings:
    return Settings(database_url=database_url, sites_dir=sites_dir, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def registered(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[Settings, list[str]]:
    """Settings of a migrated database with two schools registered."""
    school_ids = [unique_id("s"), unique_id("s")]
    settings = make_settings(database_url, write_sites(tmp_path / "sites", school_ids))
    fill_from_template(database_url, request, "migrated", migrate)
    prepare_database(settings)
    return settings, school_ids


def open_api(settings: Settings, school_ids: list[str], now: Now | None = None) -> Iterator[SecuredApi]:
    now = now or Now(NOW_MS)
    engine = make_engine(settings.database_url)
    app = create_app(settings, ManualClock(NOW_MS), real_now_ms=now)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield SecuredApi(app, client, engine, settings, now, school_ids, ["firm-a", "firm-b"])
    finally:
        engine.dispose()


# Every role once, the bound roles twice (another school, another firm).
CALLERS: dict[str, tuple[Role, int | None, int | None]] = {
    "school_admin": (Role.SCHOOL_ADMIN, 0, None),
    "other_school_admin": (Role.SCHOOL_ADMIN, 1, None),
    "energy_officer": (Role.ENERGY_OFFICER, None, None),
    "smog_officer": (Role.SMOG_OFFICER, None, None),
    "hub_admin": (Role.HUB_ADMIN, None, None),
    "firm": (Role.FIRM, None, 0),
    "other_firm": (Role.FIRM, None, 1),
    "monitoring": (Role.MONITORING, None, None),
}


def sign_in_everyone(api: SecuredApi) -> None:
    """A real user of every caller of `CALLERS`, signed in through the API."""
    for username, (role, school, firm) in CALLERS.items():
        school_id = api.school_ids[school] if school is not None else None
        firm_id = api.firm_ids[firm] if firm is not None else None
        api.add_user(username.replace("_", "-"), role, school_id, firm_id)
    for username, (role, school, firm) in CALLERS.items():
        tokens = api.sign_in(username.replace("_", "-"))
        api.callers[username] = Caller(
            username=username.replace("_", "-"),
            role=role,
            school_id=api.school_ids[school] if school is not None else None,
            firm_id=api.firm_ids[firm] if firm is not None else None,
            access_token=str(tokens["access_token"]),
            refresh_token=str(tokens["refresh_token"]),
        )


@pytest.fixture
def api(registered: tuple[Settings, list[str]]) -> Iterator[SecuredApi]:
    """The app over the registered database, no users yet."""
    settings, school_ids = registered
    yield from open_api(settings, school_ids)


@pytest.fixture
def signed_in(api: SecuredApi) -> SecuredApi:
    """The app with a signed-in user of every role."""
    sign_in_everyone(api)
    return api
