"""``GET /api/v1/audit``: the audit log of the caller's area, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from cloud.api.deps import SessionDep
from cloud.api.models.audit import ActorPublic, AuditEntryPublic
from cloud.api.security import Allow
from cloud.auth.audit import recent_entries
from cloud.auth.principals import Principal
from cloud.auth.roles import AUDIT_READERS, AuditArea, Role
from common.clock import datetime_from_ms

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

MAX_ENTRIES = 500
# The largest id either database stores.
MAX_ID = 2**63 - 1


@router.get("")
def read_audit(
    session: SessionDep,
    principal: Annotated[Principal, Allow(Role.ENERGY_OFFICER, Role.SMOG_OFFICER, Role.HUB_ADMIN)],
    area: Annotated[
        AuditArea | None,
        Query(description="Only this area (one the caller may read); all of theirs if omitted."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Entries older than this one.")
    ] = None,
) -> list[AuditEntryPublic]:
    """The newest entries of the areas the caller's role reads: the energy officer ``energy``, the Stop
    Smog officer ``smog``, the hub team ``hub``. 403 for another area."""
    readable: frozenset[AuditArea] = AUDIT_READERS.get(principal.role, frozenset())
    if area is not None and area not in readable:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"{principal.role} may not read the {area} audit"
        )
    areas = {area.value} if area is not None else {readable_area.value for readable_area in readable}
    return [
        AuditEntryPublic(
            id=entry.id,
            at=datetime_from_ms(entry.at_ms),
            actor=ActorPublic(kind=entry.actor_kind, id=entry.actor_id, name=entry.actor_name),  # type: ignore[arg-type]
            area=entry.area,
            action=entry.action,
            target=entry.target,
            details=entry.details,
            client_ip=entry.client_ip,
        )
        for entry in recent_entries(session, areas, limit, before_id)
    ]
