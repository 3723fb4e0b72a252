"""The permission table in docs/permissions.md against the app's routes and their real behaviour.

Derived from the app: every route must have a row and every row a route, with the same rule; every
protected route refuses anonymous callers (401) and every caller of a role it does not admit (403), lets the
right role through, and for a rule bound to a school or a firm refuses the right role of another one (403).
Real users, real tokens, a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI

from cloud.api import permissions, routes
from cloud.api.main import create_app
from cloud.api.security import (
    Allow,
    Authenticated,
    ProtectedRule,
    Public,
    RoutePermission,
    UndeclaredAccess,
    install_rules,
    route_permissions,
)
from cloud.auth.roles import ROLE_BINDING, Binding, Role
from cloud.settings import Settings
from common.clock import SystemClock
from tests.api.conftest import Caller, SecuredApi, open_api, sign_in_everyone

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "docs" / "permissions.md"
REGENERATE = "python -m cloud.api.permissions --write docs/permissions.md"


def table_differences(documented: list[permissions.Row], actual: list[permissions.Row]) -> list[str]:
    """What a reader of the table would get wrong about the app, one line per problem."""
    problems = []
    documented_by_key = {row.key: row for row in documented}
    actual_by_key = {row.key: row for row in actual}
    if len(documented_by_key) != len(documented):
        problems.append("the table lists some method and path twice")
    for key, row in actual_by_key.items():
        if key not in documented_by_key:
            problems.append(f"{' '.join(key)} is a route the table does not list (rule: {row.who})")
        elif documented_by_key[key] != row:
            problems.append(f"{' '.join(key)}: the table says {documented_by_key[key]}, the app {row}")
    for key in documented_by_key.keys() - actual_by_key.keys():
        problems.append(f"{' '.join(key)} is in the table but the app has no such route")
    return problems


def make_app() -> FastAPI:
    return create_app(Settings(database_url="sqlite:///:memory:"), SystemClock())


def test_the_table_lists_every_route_with_its_rule_and_nothing_else() -> None:
    documented = permissions.parse(TABLE.read_text(encoding="utf-8"))
    problems = table_differences(documented, permissions.rows_of(make_app()))
    assert not problems, (
        "docs/permissions.md disagrees with the app; run " + REGENERATE + ":\n" + "\n".join(problems)
    )


def test_the_table_check_notices_a_missing_row_an_extra_row_and_a_changed_rule() -> None:
    actual = permissions.rows_of(make_app())
    documented = permissions.parse(TABLE.read_text(encoding="utf-8"))
    dead_letters = next(row for row in documented if row.path == "/api/v1/ingest/dead-letters")
    changed = [row for row in documented if row is not dead_letters and row.path != "/healthz"]
    changed.append(permissions.Row("GET", "/api/v1/ingest/dead-letters", "public", "—", "—"))
    changed.append(permissions.Row("DELETE", "/api/v1/nothing", "public", "—", "—"))
    problems = table_differences(changed, actual)
    assert len(problems) == 3
    assert any(p.startswith("GET /healthz is a route the table does not list") for p in problems)
    assert any(p.startswith("GET /api/v1/ingest/dead-letters: the table says") for p in problems)
    assert any(p.startswith("DELETE /api/v1/nothing is in the table") for p in problems)


def test_the_table_round_trips() -> None:
    rows = permissions.rows_of(make_app())
    assert permissions.parse(permissions.render(rows)) == rows


def _bare_app(router: APIRouter) -> FastAPI:
    app = FastAPI(openapi_url=None)
    app.include_router(router)
    return app


def test_an_app_with_a_route_without_a_rule_does_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another area's router joining the API with a route that declares no rule."""
    router = APIRouter()

    @router.get("/api/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    combined = APIRouter()
    combined.include_router(routes.api_router)
    combined.include_router(router)
    monkeypatch.setattr("cloud.api.main.api_router", combined)
    with pytest.raises(UndeclaredAccess, match=r"\['GET'\] /api/v1/forgotten has no access rule"):
        make_app()


def test_a_route_with_two_rules_does_not_start() -> None:
    router = APIRouter(dependencies=[Public()])

    @router.get("/api/v1/twice", dependencies=[Allow(Role.HUB_ADMIN)])
    def twice() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredAccess, match="2 access rules"):
        install_rules(_bare_app(router), {})


def test_rules_that_cannot_be_checked_are_refused() -> None:
    with pytest.raises(ValueError, match="school="):
        Allow(Role.SCHOOL_ADMIN)
    with pytest.raises(ValueError, match="firm="):
        Allow(Role.FIRM, Role.HUB_ADMIN)
    router = APIRouter()

    @router.get("/api/v1/pupils", dependencies=[Allow(Role.SCHOOL_ADMIN, school="school_id")])
    def pupils() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredAccess, match="no path parameter 'school_id'"):
        install_rules(_bare_app(router), {})
    unknown = APIRouter()

    @unknown.post("/api/v1/things", dependencies=[Public(rate_limit="no-such-limit")])
    def things() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredAccess, match="no rate limit called 'no-such-limit'"):
        install_rules(_bare_app(unknown), {"login": object()})


# -- behaviour


def _admitted(rule: ProtectedRule, role: Role) -> bool:
    return rule.roles is None or role in rule.roles


def _path(permission: RoutePermission, school_id: str, firm_id: str) -> str:
    path = permission.path.replace("{school_id}", school_id).replace("{firm_id}", firm_id)
    return re.sub(r"\{[^}]+\}", "1", path)


def _call(api: SecuredApi, permission: RoutePermission, path: str, headers: dict[str, str]) -> int:
    body = {"json": {}} if permission.method in ("POST", "PUT", "PATCH") else {}
    response = api.client.request(permission.method, path, headers=headers, **body)  # type: ignore[arg-type]
    if response.status_code == 401:
        assert response.headers.get("www-authenticate") == "Bearer", (
            f"{permission.path}: 401 without WWW-Authenticate"
        )
    if response.status_code in (401, 403):
        assert response.json().keys() == {"detail"}, f"{permission.path}: a refusal that is not JSON detail"
    return response.status_code


def _own_school_and_firm(api: SecuredApi, caller: Caller) -> tuple[str, str]:
    return caller.school_id or api.school_ids[0], caller.firm_id or api.firm_ids[0]


def walk(api: SecuredApi) -> tuple[list[str], int]:
    """Call every route as the rule's table row promises: the problems found, and how many protected
    method-and-paths were checked."""
    problems: list[str] = []
    checked_protected = 0
    for permission in route_permissions(api.app):
        rule = permission.rule
        label = f"{permission.method} {permission.path}"
        anonymous = _call(api, permission, _path(permission, api.school_ids[0], api.firm_ids[0]), {})
        if not isinstance(rule, ProtectedRule):
            if anonymous in (401, 403):
                problems.append(f"{label} is public but refused an anonymous caller with {anonymous}")
            continue
        checked_protected += 1
        if anonymous != 401:
            problems.append(f"{label} answered an anonymous caller {anonymous}, not 401")
        for name, caller in api.callers.items():
            problems += _check_caller(api, permission, rule, name, caller)
    return problems, checked_protected


def _check_caller(
    api: SecuredApi, permission: RoutePermission, rule: ProtectedRule, name: str, caller: Caller
) -> list[str]:
    label = f"{permission.method} {permission.path}"
    school_id, firm_id = _own_school_and_firm(api, caller)
    status = _call(api, permission, _path(permission, school_id, firm_id), caller.headers)
    if not _admitted(rule, caller.role):
        return [] if status == 403 else [f"{label} answered {name} (not admitted) {status}, not 403"]
    if status in (401, 403):
        return [f"{label} refused {name}, whom it admits, with {status}"]
    binding = ROLE_BINDING[caller.role]
    bound = {Binding.SCHOOL: rule.school_param, Binding.FIRM: rule.firm_param}.get(binding)
    if bound is None:
        return []
    if binding is Binding.SCHOOL:
        school_id = next(school for school in api.school_ids if school != caller.school_id)
    else:
        firm_id = next(firm for firm in api.firm_ids if firm != caller.firm_id)
    status = _call(api, permission, _path(permission, school_id, firm_id), caller.headers)
    return (
        [] if status == 403 else [f"{label} answered {name} about another school or firm {status}, not 403"]
    )


def test_every_route_behaves_as_its_rule_says(signed_in: SecuredApi) -> None:
    problems, checked_protected = walk(signed_in)
    assert not problems, "\n".join(problems)
    assert checked_protected >= 3
    # What the walk relies on, seen once: the dead letters admit the energy officer only.
    refused = signed_in.client.get(
        "/api/v1/ingest/dead-letters", headers=signed_in.callers["smog_officer"].headers
    )
    assert refused.status_code == 403 and refused.json() == {"detail": "not allowed for this caller"}
    allowed = signed_in.client.get(
        "/api/v1/ingest/dead-letters", headers=signed_in.callers["energy_officer"].headers
    )
    assert allowed.status_code == 200 and allowed.json() == []


# Routes bound to a school and to a firm, as the coming school and hub routes will be.
probe_router = APIRouter(prefix="/api/v1/probe")


@probe_router.get("/schools/{school_id}/pupils")
def probe_pupils(
    school_id: str,
    _caller: Annotated[object, Allow(Role.SCHOOL_ADMIN, Role.ENERGY_OFFICER, school="school_id")],
) -> dict[str, str]:
    return {"school": school_id}


@probe_router.patch("/firms/{firm_id}", dependencies=[Allow(Role.FIRM, Role.HUB_ADMIN, firm="firm_id")])
def probe_firm(firm_id: str, body: dict[str, str]) -> dict[str, str]:
    return {"firm": firm_id, **body}


@pytest.fixture
def probed(registered: tuple[Settings, list[str]], monkeypatch: pytest.MonkeyPatch) -> Iterator[SecuredApi]:
    """The app with the probe routes, and a signed-in user of every role."""
    combined = APIRouter()
    combined.include_router(routes.api_router)
    combined.include_router(probe_router)
    monkeypatch.setattr("cloud.api.main.api_router", combined)
    settings, school_ids = registered
    for api in open_api(settings, school_ids):
        sign_in_everyone(api)
        yield api


def test_own_school_and_own_firm_rules_refuse_the_others(
    probed: SecuredApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems, checked_protected = walk(probed)
    assert not problems, "\n".join(problems)
    assert checked_protected >= 5
    own = probed.callers["school_admin"]
    response = probed.client.get(f"/api/v1/probe/schools/{own.school_id}/pupils", headers=own.headers)
    assert response.status_code == 200 and response.json() == {"school": own.school_id}
    other = probed.school_ids[1]
    response = probed.client.get(f"/api/v1/probe/schools/{other}/pupils", headers=own.headers)
    assert response.status_code == 403

    # Break the school and firm binding, and the walk reports it: this test can fail.
    monkeypatch.setattr(
        ProtectedRule,
        "admits",
        lambda self, principal, params: self.roles is None or principal.role in self.roles,
    )
    problems, _ = walk(probed)
    pupils = "GET /api/v1/probe/schools/{school_id}/pupils"
    assert f"{pupils} answered school_admin about another school or firm 200, not 403" in problems
    assert any(
        problem.startswith("PATCH /api/v1/probe/firms/{firm_id} answered firm about another")
        for problem in problems
    )


def test_authenticated_and_allow_rules_word_themselves_for_the_table() -> None:
    rule = Allow(
        Role.FIRM, Role.ENERGY_OFFICER, Role.SCHOOL_ADMIN, school="school_id", firm="firm_id"
    ).dependency
    assert rule.who() == "school_admin (own school), energy_officer, firm (own firm)"
    assert Authenticated().dependency.who() == "authenticated"
    assert Public(rate_limit="estimates").dependency.who() == "public"
