"""Who is who in the API: the roles, the scope a role is bound to, and which part of the audit log each
role may read. The one place the role model lives; the routes declare which roles they admit
(`cloud.api.security`)."""

from __future__ import annotations

import enum
from types import MappingProxyType


class Role(enum.StrEnum):
    """What a signed-in person or a machine's key may do."""

    #: Administers one school (its pupils under pseudonyms, its enrolments); bound to a ``school_id``.
    SCHOOL_ADMIN = "school_admin"
    #: The city's energy officer: every school's energy data and the ingest's dead letters.
    ENERGY_OFFICER = "energy_officer"
    #: The Stop Smog officer: residents' subsidy applications.
    SMOG_OFFICER = "smog_officer"
    #: The microfirm hub's team.
    HUB_ADMIN = "hub_admin"
    #: A microfirm's own account; bound to a ``firm_id``.
    FIRM = "firm"
    #: A monitor's key (VictoriaMetrics scraping ``/metrics``): the platform's own figures, nothing else.
    MONITORING = "monitoring"


class Binding(enum.StrEnum):
    """What a role's principal is bound to."""

    NONE = "none"
    SCHOOL = "school"
    FIRM = "firm"


#: The scope each role is bound to.
ROLE_BINDING: MappingProxyType[Role, Binding] = MappingProxyType(
    {
        Role.SCHOOL_ADMIN: Binding.SCHOOL,
        Role.ENERGY_OFFICER: Binding.NONE,
        Role.SMOG_OFFICER: Binding.NONE,
        Role.HUB_ADMIN: Binding.NONE,
        Role.FIRM: Binding.FIRM,
        Role.MONITORING: Binding.NONE,
    }
)


class AuditArea(enum.StrEnum):
    """An audit entry's area: its action's first dotted part (``smog.application.approve`` is in ``smog``)."""

    #: Sign-ins, users and keys.
    AUTH = "auth"
    #: The schools' energy data and the ingest.
    ENERGY = "energy"
    #: The Stop Smog calculator and subsidy applications.
    SMOG = "smog"
    #: The microfirm hub.
    HUB = "hub"
    #: Pupils, classes, enrolments and certificates.
    SCHOOLS = "schools"


AUDIT_AREAS = frozenset(area.value for area in AuditArea)

#: Which areas of the audit log a role reads at ``GET /api/v1/audit``: each officer the area they are
#: responsible for. ``auth`` and ``schools`` are read by the city's IT with ``lokalnie users audit``; schools
#: and firms read none (they would see each other's actions).
AUDIT_READERS: MappingProxyType[Role, frozenset[AuditArea]] = MappingProxyType(
    {
        Role.ENERGY_OFFICER: frozenset({AuditArea.ENERGY}),
        Role.SMOG_OFFICER: frozenset({AuditArea.SMOG}),
        Role.HUB_ADMIN: frozenset({AuditArea.HUB}),
    }
)


def check_binding(role: Role, school_id: str | None, firm_id: str | None) -> None:
    """ValueError unless the scope fits the role: a school for a school administrator, a firm for a firm
    account, neither for anyone else."""
    binding = ROLE_BINDING[role]
    if binding is Binding.SCHOOL and (school_id is None or firm_id is not None):
        raise ValueError(f"a {role} needs a school (and no firm)")
    if binding is Binding.FIRM and (firm_id is None or school_id is not None):
        raise ValueError(f"a {role} needs a firm (and no school)")
    if binding is Binding.NONE and (school_id is not None or firm_id is not None):
        raise ValueError(f"a {role} is not bound to a school or a firm")
