"""Managing users and API keys: create, disable and enable, change a password or a role, make and revoke
keys. Every change is audited in the caller's transaction; the caller commits."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.auth.audit import Actor, audit
from cloud.auth.errors import UserError
from cloud.auth.passwords import hash_password
from cloud.auth.roles import Role, check_binding
from cloud.auth.tokens import digest, new_api_key
from cloud.db.models import (
    API_KEY_NAME_CHARS,
    DISPLAY_NAME_CHARS,
    FIRM_ID_CHARS,
    ApiKey,
    RefreshToken,
    School,
    User,
)

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_FIRM_ID_PATTERN = re.compile(rf"^[A-Za-z0-9._-]{{1,{FIRM_ID_CHARS}}}$")


def normalise_username(username: str) -> str:
    """The stored form of a username: trimmed, lower case; UserError if it is not 2 to 64 of a-z 0-9 . _ -
    starting with a letter or digit."""
    name = username.strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise UserError(
            f"{username!r} is not a username: 2 to 64 characters a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def _check_scope(session: Session, role: Role, school_id: str | None, firm_id: str | None) -> None:
    try:
        check_binding(role, school_id, firm_id)
    except ValueError as error:
        raise UserError(str(error)) from None
    if school_id is not None and session.get(School, school_id) is None:
        raise UserError(
            f"no school {school_id!r} in the register (the API or the ingest loads it from the site files)"
        )
    if firm_id is not None and not _FIRM_ID_PATTERN.match(firm_id):
        raise UserError(f"{firm_id!r} is not a firm id: 1 to {FIRM_ID_CHARS} of A-Z a-z 0-9 . _ -")


def _check_display_name(display_name: str) -> str:
    name = display_name.strip()
    if not name or len(name) > DISPLAY_NAME_CHARS:
        raise UserError(f"a display name has 1 to {DISPLAY_NAME_CHARS} characters")
    return name


def _scope_details(role: Role, school_id: str | None, firm_id: str | None) -> dict[str, str]:
    details = {"role": role.value}
    if school_id is not None:
        details["school_id"] = school_id
    if firm_id is not None:
        details["firm_id"] = firm_id
    return details


def find_user(session: Session, username: str) -> User:
    """The user called ``username``; UserError if there is none."""
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.username)).all()


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    now_ms: int,
    school_id: str | None = None,
    firm_id: str | None = None,
) -> User:
    """A new active user; UserError for a taken or bad username, a weak password or a scope that does not
    fit the role."""
    name = normalise_username(username)
    _check_scope(session, role, school_id, firm_id)
    if session.scalars(select(User.id).where(User.username == name)).first() is not None:
        raise UserError(f"the username {name!r} is taken")
    user = User(
        username=name,
        display_name=_check_display_name(display_name),
        role=role.value,
        school_id=school_id,
        firm_id=firm_id,
        active=True,
        password_hash=hash_password(password),
        created_ms=now_ms,
        updated_ms=now_ms,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        raise UserError(f"the username {name!r} is taken") from None
    audit(
        session,
        actor,
        "auth.user_created",
        f"user:{name}",
        _scope_details(role, school_id, firm_id),
        at_ms=now_ms,
    )
    return user


def revoke_sessions(session: Session, user_id: int, now_ms: int) -> int:
    """Revoke every refresh token of the user still usable; how many were."""
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_ms.is_(None))
        .values(revoked_ms=now_ms)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_active(session: Session, actor: Actor, username: str, active: bool, now_ms: int) -> User:
    """Enable or disable a user; disabling ends their sessions (their access tokens stop at the next call)."""
    user = find_user(session, username)
    user.active = active
    user.updated_ms = now_ms
    ended = 0 if active else revoke_sessions(session, user.id, now_ms)
    action = "auth.user_enabled" if active else "auth.user_disabled"
    audit(session, actor, action, f"user:{user.username}", {"sessions_ended": ended}, at_ms=now_ms)
    return user


def set_password(session: Session, actor: Actor, username: str, password: str, now_ms: int) -> User:
    """A new password; ends the user's sessions."""
    user = find_user(session, username)
    user.password_hash = hash_password(password)
    user.updated_ms = now_ms
    ended = revoke_sessions(session, user.id, now_ms)
    audit(
        session, actor, "auth.password_set", f"user:{user.username}", {"sessions_ended": ended}, at_ms=now_ms
    )
    return user


def set_role(
    session: Session,
    actor: Actor,
    username: str,
    role: Role,
    now_ms: int,
    school_id: str | None = None,
    firm_id: str | None = None,
) -> User:
    """A new role and scope; ends the user's sessions."""
    user = find_user(session, username)
    _check_scope(session, role, school_id, firm_id)
    before = _scope_details(Role(user.role), user.school_id, user.firm_id)
    user.role, user.school_id, user.firm_id = role.value, school_id, firm_id
    user.updated_ms = now_ms
    revoke_sessions(session, user.id, now_ms)
    details = {"before": before, "after": _scope_details(role, school_id, firm_id)}
    audit(session, actor, "auth.role_changed", f"user:{user.username}", details, at_ms=now_ms)
    return user


def create_api_key(
    session: Session,
    actor: Actor,
    *,
    name: str,
    role: Role,
    now_ms: int,
    school_id: str | None = None,
    firm_id: str | None = None,
    expires_ms: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its text, which is shown once: only its digest is kept."""
    key_name = name.strip()
    if not key_name or len(key_name) > API_KEY_NAME_CHARS:
        raise UserError(f"a key's name has 1 to {API_KEY_NAME_CHARS} characters")
    _check_scope(session, role, school_id, firm_id)
    if expires_ms is not None and expires_ms <= now_ms:
        raise UserError("a key must expire in the future")
    made = new_api_key()
    key = ApiKey(
        prefix=made.prefix,
        secret_hash=digest(made.text),
        name=key_name,
        role=role.value,
        school_id=school_id,
        firm_id=firm_id,
        created_ms=now_ms,
        created_by=actor.name,
        expires_ms=expires_ms,
    )
    session.add(key)
    session.flush()
    details: dict[str, object] = {"name": key_name, **_scope_details(role, school_id, firm_id)}
    if expires_ms is not None:
        details["expires_ms"] = expires_ms
    audit(session, actor, "auth.key_created", f"key:{made.prefix}", details, at_ms=now_ms)
    return key, made.text


def revoke_api_key(session: Session, actor: Actor, prefix: str, now_ms: int) -> ApiKey:
    """Revoke the key with ``prefix`` (the part after ``lk_``); UserError if there is none."""
    wanted = prefix.strip().removeprefix("lk_").split("_", 1)[0]
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == wanted)).first()
    if key is None:
        raise UserError(f"no key with prefix {prefix!r}")
    if key.revoked_ms is None:
        key.revoked_ms = now_ms
    audit(session, actor, "auth.key_revoked", f"key:{key.prefix}", {"name": key.name}, at_ms=now_ms)
    return key


def list_api_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.created_ms, ApiKey.id)).all()
