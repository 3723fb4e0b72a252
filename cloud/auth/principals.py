"""Who is calling: a signed-in user or a machine's key, with its role and the school or firm it is bound
to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cloud.auth.audit import Actor
from cloud.auth.roles import Role


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``id`` is the user's or the key's; ``name`` the username or the key's name."""

    kind: Literal["user", "api_key"]
    id: int
    name: str
    display_name: str
    role: Role
    school_id: str | None = None
    firm_id: str | None = None
    client_ip: str | None = None

    @property
    def actor(self) -> Actor:
        """This caller as the actor of an audit entry."""
        return Actor(kind=self.kind, id=self.id, name=self.name, client_ip=self.client_ip)

    def is_of_school(self, school_id: str) -> bool:
        return self.role is Role.SCHOOL_ADMIN and self.school_id == school_id

    def is_of_firm(self, firm_id: str) -> bool:
        return self.role is Role.FIRM and self.firm_id == firm_id
