"""Authentication and authorisation of the API: users with roles bound to a school or a firm, argon2id
passwords, short-lived access tokens with rotating refresh tokens, API keys for machines, login throttling
and the audit log. Framework-free; `cloud.api.security` turns it into FastAPI dependencies."""

from cloud.auth.audit import Actor, area_of, audit, cli_actor, recent_entries
from cloud.auth.errors import AuthError, InvalidCredentials, LoginThrottled, UserError
from cloud.auth.principals import Principal
from cloud.auth.roles import AUDIT_AREAS, AUDIT_READERS, ROLE_BINDING, AuditArea, Binding, Role
from cloud.auth.sessions import Authenticator, SessionPolicy, TokenPair

__all__ = [
    "AUDIT_AREAS",
    "AUDIT_READERS",
    "ROLE_BINDING",
    "Actor",
    "AuditArea",
    "AuthError",
    "Authenticator",
    "Binding",
    "InvalidCredentials",
    "LoginThrottled",
    "Principal",
    "Role",
    "SessionPolicy",
    "TokenPair",
    "UserError",
    "area_of",
    "audit",
    "cli_actor",
    "recent_entries",
]
