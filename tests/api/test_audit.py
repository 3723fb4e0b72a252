"""The audit log: the one-call helper other areas use, and reading it at GET /api/v1/audit, where each
officer sees the area they are responsible for."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.auth.audit import Actor, audit, recent_entries
from cloud.db.models import AuditEntry
from tests.api.conftest import SecuredApi

AUDIT = "/api/v1/audit"
OFFICER = Actor(kind="user", name="ewa", id=7, client_ip="192.0.2.10")


def test_the_helper_writes_with_the_callers_transaction(api: SecuredApi) -> None:
    with api.session() as session:
        entry = audit(
            session, OFFICER, "smog.application.approve", "application:SS-2026-000042", {"to": "approved"}
        )
        assert entry.area == "smog"
        session.rollback()
        assert session.scalars(select(AuditEntry)).all() == []
        audit(session, OFFICER, "smog.application.approve", "application:SS-2026-000042", {"to": "approved"})
        session.commit()
    with api.session() as session:
        (stored,) = session.scalars(select(AuditEntry)).all()
    assert (stored.actor_kind, stored.actor_id, stored.actor_name, stored.client_ip) == (
        "user",
        7,
        "ewa",
        "192.0.2.10",
    )
    assert (stored.action, stored.target, stored.details) == (
        "smog.application.approve",
        "application:SS-2026-000042",
        {"to": "approved"},
    )
    assert stored.at_ms > 1_700_000_000_000


@pytest.mark.parametrize("action", ["approve", "parking.ticket", "smog", "energy." + "x" * 70])
def test_actions_need_a_known_area(action: str) -> None:
    with Session() as session, pytest.raises(ValueError, match="audit action"):
        audit(session, OFFICER, action, "x", {})


def _seed(api: SecuredApi) -> None:
    with api.session() as session:
        for k in range(3):
            audit(session, OFFICER, "energy.report.export", f"report:{k}", {"k": k}, at_ms=1000 + k)
        audit(session, OFFICER, "smog.application.view", "application:1", {}, at_ms=2000)
        audit(session, OFFICER, "auth.user_created", "user:ola", {}, at_ms=3000)
        session.commit()


def test_each_officer_reads_their_own_area(signed_in: SecuredApi) -> None:
    api = signed_in
    _seed(api)
    energy = api.client.get(AUDIT, headers=api.callers["energy_officer"].headers)
    assert energy.status_code == 200
    assert [entry["target"] for entry in energy.json()] == ["report:2", "report:1", "report:0"]
    first = energy.json()[0]
    assert first["actor"] == {"kind": "user", "id": 7, "name": "ewa"}
    assert first["at"] == "1970-01-01T00:00:01.002000Z" and first["client_ip"] == "192.0.2.10"
    smog = api.client.get(AUDIT, headers=api.callers["smog_officer"].headers).json()
    assert [entry["action"] for entry in smog] == ["smog.application.view"]
    assert api.client.get(AUDIT, headers=api.callers["hub_admin"].headers).json() == []
    # Paging back, and areas the role does not read.
    older = api.client.get(
        AUDIT, params={"before_id": first["id"], "limit": 1}, headers=api.callers["energy_officer"].headers
    )
    assert [entry["target"] for entry in older.json()] == ["report:1"]
    for area in ("smog", "auth"):
        refused = api.client.get(AUDIT, params={"area": area}, headers=api.callers["energy_officer"].headers)
        assert refused.status_code == 403
    assert (
        api.client.get(
            AUDIT, params={"area": "parking"}, headers=api.callers["energy_officer"].headers
        ).status_code
        == 422
    )
    assert api.client.get(AUDIT, headers=api.callers["school_admin"].headers).status_code == 403


def test_recent_entries_of_all_areas_for_the_command_line(api: SecuredApi) -> None:
    _seed(api)
    with api.session() as session:
        everything = recent_entries(session, None, 10)
    assert [entry.area for entry in everything] == ["auth", "smog", "energy", "energy", "energy"]
