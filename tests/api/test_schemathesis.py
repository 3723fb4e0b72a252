"""Fuzzing the API against its own OpenAPI document with schemathesis: on a seeded database (SQLite and
PostgreSQL), every operation is called with generated data, once with a token of a role it admits and once
anonymously, and every answer must be no 5xx and must match the document (status code, content type,
headers, body). Derandomized and bounded: the same examples every run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.orm import Session

from cloud.api.main import create_app
from cloud.api.security import ProtectedRule, RoutePermission, route_permissions
from cloud.auth.audit import Actor, audit
from cloud.auth.roles import Role
from cloud.db.models import CounterReading, DeadLetter, Interval, Link, Sample
from cloud.db.register import prepare_database
from cloud.settings import Settings
from common.clock import SystemClock
from tests import servers
from tests.api.conftest import SecuredApi, make_settings, open_api, sign_in_everyone
from tests.cloud.conftest import NOW_MS, Q, unique_id, write_sites

EXAMPLES_PER_OPERATION = 30


def seed(api: SecuredApi) -> None:
    """Rows straight into the store (not through the ingest): one school's latest samples, counter readings,
    intervals and link, a dead letter, and audit entries of two areas."""
    school = api.school_ids[0]
    with Session(api.engine) as session:
        for seq, (device, kind, values) in enumerate(
            [
                ("inverter", "pv_inverter", {"power_w": 12_000.0, "energy_wh": 5000.0}),
                ("meter", "grid_meter", {"power_w": -4000.0, "import_wh": 300.0, "export_wh": 50.0}),
            ]
        ):
            session.add(
                Sample(
                    school_id=school,
                    stream="a1b2c3d4",
                    seq=seq + 1,
                    device_id=device,
                    kind=kind,
                    ts_ms=NOW_MS - 30_000,
                    backfill=False,
                    received_ms=NOW_MS,
                    values=values,
                )
            )
        for k in range(4):
            session.add(
                CounterReading(
                    school_id=school,
                    device_id="inverter",
                    quantity="energy_wh",
                    ts_ms=NOW_MS - (4 - k) * Q,
                    kind="pv_inverter",
                    value_wh=1000.0 + 100.0 * k,
                )
            )
            session.add(
                Interval(
                    school_id=school,
                    start_ms=NOW_MS - (4 - k) * Q,
                    pv_wh=100.0,
                    import_wh=10.0,
                    export_wh=1.0,
                    consumption_wh=109.0,
                    complete=k < 3,
                    updated_ms=NOW_MS,
                )
            )
        session.add(Link(school_id=school, state="online", since_ms=NOW_MS - 3600_000, updated_ms=NOW_MS))
        session.add(
            DeadLetter(
                received_ms=NOW_MS,
                topic="lokalnie/v1/x/telemetry",
                reason="not JSON",
                payload=b"\xff{",
                payload_bytes=9000,
            )
        )
        officer = Actor(kind="user", name="energy-officer", id=1, client_ip="192.0.2.1")
        audit(session, officer, "energy.report.export", f"school:{school}", {"rows": 12})
        audit(session, officer, "smog.application.view", "application:SS-2026-000001", {})
        session.commit()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A new database for this module's run, once on SQLite and once on PostgreSQL (the examples share it,
    so the app is set up once per database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'lokalnie.db'}"
    server: servers.Postgres = request.getfixturevalue("postgres_server")
    return server.new_database("fuzz")


@pytest.fixture(scope="module")
def fuzzed(fuzz_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    """The app over a seeded database with a signed-in user of every role."""
    school_ids = [unique_id("f"), unique_id("f")]
    settings_ = make_settings(fuzz_database_url, write_sites(tmp_path_factory.mktemp("sites"), school_ids))
    prepare_database(settings_)
    for api in open_api(settings_, school_ids):
        sign_in_everyone(api)
        seed(api)
        yield api


def _document() -> dict[str, Any]:
    """The OpenAPI document; it is the same for every database."""
    return create_app(Settings(database_url="sqlite:///:memory:"), SystemClock()).openapi()


schema = schemathesis.openapi.from_dict(_document())


def _permission(api: SecuredApi, case: Case) -> RoutePermission:
    method, path = case.operation.method.upper(), case.operation.path
    return next(p for p in route_permissions(api.app) if (p.method, p.path) == (method, path))


def _admitted_headers(api: SecuredApi, permission: RoutePermission) -> dict[str, str] | None:
    """A token of a caller the route admits, or None for a public route."""
    rule = permission.rule
    if not isinstance(rule, ProtectedRule):
        return None
    for caller in api.callers.values():
        if rule.roles is None or (caller.role in rule.roles and caller.role is not Role.SCHOOL_ADMIN):
            return caller.headers
    return next(iter(api.callers.values())).headers


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_openapi_document(case: Case, fuzzed: SecuredApi) -> None:
    permission = _permission(fuzzed, case)
    headers = _admitted_headers(fuzzed, permission)
    app = {"app": fuzzed.app}
    excluded = _checks_beyond_the_schema(case)
    if headers is not None:
        signed = case.call(headers=headers, **app)
        case.validate_response(signed, headers=headers, transport_kwargs=app, excluded_checks=excluded)
    # Without our token (the case may carry credentials it made up: they must be refused too).
    anonymous = case.call(**app)
    case.validate_response(anonymous, transport_kwargs=app, excluded_checks=excluded)


# Multipart forms whose rules JSON Schema cannot state (a PESEL's checksum, a proof that must really be a
# JPEG, PNG or PDF, consent that must be given): a schema-valid form may rightly get 422 there. Every other
# check (no 5xx, answers as documented) still applies to them.
_FORMS_VALIDATED_BEYOND_THE_SCHEMA = {("POST", "/api/v1/smog/applications")}


def _checks_beyond_the_schema(case: Case) -> list[CheckFunction]:
    operation = (case.operation.method.upper(), case.operation.path)
    return [positive_data_acceptance] if operation in _FORMS_VALIDATED_BEYOND_THE_SCHEMA else []
