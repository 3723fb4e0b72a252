"""The audit log: who did what to what, when and from where. One call, `audit`, for every administrative
action; the entry joins the caller's transaction, so it is written exactly when the action is."""

from __future__ import annotations

import getpass
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.auth.roles import AUDIT_AREAS
from cloud.db.models import AUDIT_ACTION_CHARS, AUDIT_ACTOR_CHARS, AUDIT_TARGET_CHARS, AuditEntry
from common.clock import SystemClock

ActorKind = Literal["user", "api_key", "cli", "anonymous"]
_clock = SystemClock()


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, a machine's key, the command line (``cli:<os user>``) or nobody yet (a
    failed sign-in), and from which address."""

    kind: ActorKind
    name: str
    id: int | None = None
    client_ip: str | None = None


def cli_actor() -> Actor:
    """The person at the command line, by their operating-system user name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(kind="cli", name=f"cli:{user}")


def area_of(action: str) -> str:
    """An action's area: its first dotted part."""
    return action.split(".", 1)[0]


def audit(
    session: Session,
    actor: Actor,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
    *,
    at_ms: int | None = None,
) -> AuditEntry:
    """Add an audit entry to ``session``; it is written when the session commits, with the action.

    ``action`` is ``<area>.<what>`` (``smog.application.approve``) with a known area
    (`cloud.auth.roles.AUDIT_AREAS`); ``target`` names what was acted on (``application:123``,
    ``user:anna``); ``details`` is JSON and never holds a password, a token or a PESEL.
    """
    area = area_of(action)
    if area not in AUDIT_AREAS or "." not in action:
        raise ValueError(
            f"audit action {action!r} is not <area>.<what> with an area of {sorted(AUDIT_AREAS)}"
        )
    if len(action) > AUDIT_ACTION_CHARS:
        raise ValueError(f"audit action {action!r} is longer than {AUDIT_ACTION_CHARS} characters")
    entry = AuditEntry(
        at_ms=at_ms if at_ms is not None else _clock.now_ms(),
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_name=actor.name[:AUDIT_ACTOR_CHARS],
        area=area,
        action=action,
        target=target[:AUDIT_TARGET_CHARS],
        details=dict(details or {}),
        client_ip=actor.client_ip,
    )
    session.add(entry)
    return entry


def recent_entries(
    session: Session, areas: Collection[str] | None, limit: int, before_id: int | None = None
) -> Sequence[AuditEntry]:
    """The newest ``limit`` entries of ``areas`` (all areas with None), newest first, older than
    ``before_id`` if given (to page back)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if areas is not None:
        query = query.where(AuditEntry.area.in_(sorted(areas)))
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return session.scalars(query).all()
