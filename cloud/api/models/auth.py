"""What the sign-in routes take and answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cloud.auth.roles import Role


class TokenPublic(BaseModel):
    """A signed-in session: send ``access_token`` as ``Authorization: Bearer ...``; before it expires, trade
    ``refresh_token`` for a new pair at POST /api/v1/auth/refresh (each refresh token works once)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires if not used.")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class PrincipalPublic(BaseModel):
    """Who the caller is: a user or an API key, its role and the school or firm it is bound to."""

    kind: Literal["user", "api_key"]
    id: int
    name: str = Field(description="The username, or the key's name.")
    display_name: str
    role: Role
    school_id: str | None = None
    firm_id: str | None = None
