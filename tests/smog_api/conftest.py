"""A small app of the smog routers over a fresh database (SQLite and PostgreSQL) with the sample addresses
and networks, a manual clock and a throw-away encryption key; the officer dependency overridden on demand."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud.api.limits import Rate, RateLimiter, parse_networks
from cloud.api.routes import smog, smog_applications
from cloud.api.security import install_rules
from cloud.applications.config import ApplicationsConfig
from cloud.auth.principals import Principal
from cloud.auth.roles import Role
from cloud.auth.sessions import Authenticator, SessionPolicy
from cloud.auth.throttle import LoginThrottle
from cloud.db.engine import make_engine, make_session_factory
from cloud.settings import Settings
from cloud.smog import import_sample
from cloud.smog.sites import AddressSites
from cloud.web import mount_web
from common.clock import Clock, ManualClock, parse_iso_ms
from tests.conftest import fill_from_template, migrate

NOW_MS = parse_iso_ms("2026-03-02T10:00:00Z")
OFFICER = "officer-7"


def load_sample(engine: Engine) -> None:
    migrate(engine)
    with Session(engine) as session, session.begin():
        import_sample(session)


# Generous limits: the tests file many applications from one address; one test sets its own.
TEST_RATE_LIMITS = {"estimates": "10000/minute", "search": "10000/minute", "applications": "10000/minute"}


def build_app(
    engine: Engine,
    clock: Clock,
    config: ApplicationsConfig,
    rate_limits: dict[str, str] | None = None,
    with_page: bool = False,
) -> FastAPI:
    """The smog routers with what their access rules need on ``app.state``, as `create_app` sets it."""
    settings = Settings(
        database_url=str(engine.url),
        rate_limits=rate_limits or TEST_RATE_LIMITS,  # type: ignore[call-arg]
    )
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sessions = make_session_factory(engine)
    app.state.smog_sites = AddressSites()
    app.state.clock = clock
    app.state.smog_applications = config
    app.state.authenticator = Authenticator(
        SessionPolicy(
            signing_key=settings.signing_key(),
            access_token_ttl_s=settings.access_token_ttl_s,
            refresh_token_ttl_s=settings.refresh_token_ttl_s,
            session_max_s=settings.session_max_s,
        ),
        clock.now_ms,
        LoginThrottle(),
    )
    rates = {name: Rate(count, period_s) for name, (count, period_s) in settings.rates().items()}
    app.state.rate_limiter = RateLimiter(rates, clock.now_ms)
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    app.include_router(smog.router)
    app.include_router(smog_applications.router)
    if with_page:
        mount_web(app)
    app.state.permissions = install_rules(app, rates)
    return app


@dataclass
class SmogApi:
    client: TestClient
    app: FastAPI
    engine: Engine
    clock: ManualClock
    config: ApplicationsConfig

    def as_officer(self) -> None:
        principal = Principal(
            kind="user", id=7, name=OFFICER, display_name="Urzędniczka", role=Role.SMOG_OFFICER
        )
        self.app.dependency_overrides[smog_applications.SMOG_OFFICER.dependency] = lambda: principal

    def as_anonymous(self) -> None:
        self.app.dependency_overrides.pop(smog_applications.SMOG_OFFICER.dependency, None)


@pytest.fixture
def api(database_url: str, request: pytest.FixtureRequest) -> Iterator[SmogApi]:
    fill_from_template(database_url, request, "smog-sample", load_sample)
    engine = make_engine(database_url)
    clock = ManualClock(NOW_MS)
    config = ApplicationsConfig.for_tests(max_proof_bytes=64 * 1024)
    app = build_app(engine, clock, config)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield SmogApi(client, app, engine, clock, config)
    engine.dispose()


# A 1×1 PNG and a minimal PDF: real magic bytes.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def proof_file(
    content: bytes = PNG, name: str = "piec.png", declared: str = "image/png"
) -> dict[str, object]:
    return {"proof": (name, io.BytesIO(content), declared)}
