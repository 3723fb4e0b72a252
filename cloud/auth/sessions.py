"""Signing in and staying signed in: the password grant, refresh with rotation and reuse detection, sign-out,
and turning an access token or an API key back into a `Principal`.

Refresh tokens form families, one per sign-in. Each refresh uses up its token and adds the next one to the
family; showing a used token again means it was copied, so the whole family is revoked (RFC 9700, 4.14.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.auth.accounts import USERNAME_PATTERN
from cloud.auth.audit import Actor, audit
from cloud.auth.errors import InvalidCredentials, LoginThrottled
from cloud.auth.passwords import hash_password, needs_rehash, verify_password
from cloud.auth.principals import Principal
from cloud.auth.roles import Role
from cloud.auth.throttle import LoginThrottle
from cloud.auth.tokens import (
    api_key_prefix,
    digest,
    digests_match,
    issue_access_token,
    looks_like_refresh_token,
    new_family_id,
    new_refresh_token,
    read_access_token,
)
from cloud.db.models import ApiKey, RefreshToken, User

# Compared against when a key's prefix is unknown, so that the answer takes as long.
_DUMMY_DIGEST = digest("no key has this text")


@dataclass(frozen=True)
class TokenPair:
    """What a sign-in or a refresh gives: an access token and the refresh token that replaces it later."""

    access_token: str
    access_expires_in_s: int
    refresh_token: str
    refresh_expires_in_s: int


@dataclass(frozen=True)
class SessionPolicy:
    """The signing key and the lifetimes (`cloud.settings.Settings`)."""

    signing_key: str
    access_token_ttl_s: int
    refresh_token_ttl_s: int
    session_max_s: int


class Authenticator:
    """Signs users in and out and recognises callers. ``now_ms`` tells real time (not a simulation's)."""

    def __init__(
        self, policy: SessionPolicy, now_ms: Callable[[], int], throttle: LoginThrottle | None = None
    ) -> None:
        self.policy = policy
        self.now_ms = now_ms
        self.throttle = throttle if throttle is not None else LoginThrottle()

    # -- signing in and out

    def login(self, session: Session, username: str, password: str, client_ip: str) -> TokenPair:
        """Tokens for a right username and password of an active user. InvalidCredentials (the same for an
        unknown user, a wrong password and a disabled user) or LoginThrottled otherwise. Commits."""
        now = self.now_ms()
        name = username.strip().lower()
        wait_s = self.throttle.attempt(name, client_ip, now)
        if wait_s:
            raise LoginThrottled(wait_s)
        # What cannot be a username is not looked up (it may hold bytes a database refuses).
        known_form = USERNAME_PATTERN.match(name) is not None
        user = session.scalars(select(User).where(User.username == name)).first() if known_form else None
        matches = verify_password(user.password_hash if user is not None else None, password)
        if user is None or not matches or not user.active:
            locked = self.throttle.retry_after_s(name, client_ip, now) > 0
            reason = "unknown user" if user is None else ("disabled" if matches else "wrong password")
            target = f"user:{name}" if known_form else "user:(not a username)"
            details = {"reason": reason, "throttled": locked}
            audit(
                session,
                Actor("anonymous", "anonymous", None, client_ip),
                "auth.login_failed",
                target,
                details,
                at_ms=now,
            )
            session.commit()
            raise InvalidCredentials("incorrect username or password")
        self.throttle.succeeded(name, client_ip, now)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        actor = Actor("user", user.username, user.id, client_ip)
        pair = self._start_family(session, user, now)
        audit(session, actor, "auth.login", f"user:{user.username}", {}, at_ms=now)
        session.commit()
        return pair

    def refresh(self, session: Session, refresh_token: str, client_ip: str) -> TokenPair:
        """New tokens for a usable refresh token, which is used up. InvalidCredentials for an unknown,
        expired or revoked token; a used token revokes its family. Commits."""
        now = self.now_ms()
        row = self._find_refresh(session, refresh_token)
        if row is None or row.revoked_ms is not None:
            raise InvalidCredentials("invalid refresh token")
        user = session.get(User, row.user_id)
        if user is None:  # pragma: no cover - the foreign key keeps tokens of existing users only
            raise InvalidCredentials("invalid refresh token")
        actor = Actor("user", user.username, user.id, client_ip)
        if row.used_ms is not None:
            self._reuse_detected(session, row, actor, now)
        if now >= row.expires_ms or not user.active:
            raise InvalidCredentials("invalid refresh token")
        claimed = session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == row.id, RefreshToken.used_ms.is_(None), RefreshToken.revoked_ms.is_(None)
            )
            .values(used_ms=now)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            # Another request used the same token a moment ago.
            self._reuse_detected(session, row, actor, now)
        pair = self._add_to_family(session, user, row.family_id, row.family_started_ms, now)
        session.commit()
        return pair

    def logout(self, session: Session, refresh_token: str, client_ip: str) -> bool:
        """Revoke the family of ``refresh_token``; whether there was one to revoke. Commits."""
        now = self.now_ms()
        row = self._find_refresh(session, refresh_token)
        if row is None:
            return False
        user = session.get(User, row.user_id)
        revoked = self._revoke_family(session, row.family_id, now)
        if user is not None and revoked:
            actor = Actor("user", user.username, user.id, client_ip)
            audit(session, actor, "auth.logout", f"user:{user.username}", {}, at_ms=now)
        session.commit()
        return revoked > 0

    # -- recognising callers

    def principal_from_access_token(self, session: Session, token: str, client_ip: str | None) -> Principal:
        """The active user an access token names, with their role and scope as stored now."""
        user_id = read_access_token(token, self.policy.signing_key, self.now_ms())
        user = session.get(User, user_id)
        if user is None or not user.active:
            raise InvalidCredentials("invalid token")
        return Principal(
            kind="user",
            id=user.id,
            name=user.username,
            display_name=user.display_name,
            role=Role(user.role),
            school_id=user.school_id,
            firm_id=user.firm_id,
            client_ip=client_ip,
        )

    def principal_from_api_key(self, session: Session, text: str, client_ip: str | None) -> Principal:
        """The key ``text`` is, if it is known, unrevoked and unexpired."""
        prefix = api_key_prefix(text)
        key = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first() if prefix else None
        matches = digests_match(key.secret_hash if key is not None else _DUMMY_DIGEST, text)
        if key is None or not matches or key.revoked_ms is not None:
            raise InvalidCredentials("invalid API key")
        if key.expires_ms is not None and self.now_ms() >= key.expires_ms:
            raise InvalidCredentials("invalid API key")
        return Principal(
            kind="api_key",
            id=key.id,
            name=key.name,
            display_name=key.name,
            role=Role(key.role),
            school_id=key.school_id,
            firm_id=key.firm_id,
            client_ip=client_ip,
        )

    # -- families

    def _find_refresh(self, session: Session, refresh_token: str) -> RefreshToken | None:
        if not looks_like_refresh_token(refresh_token):
            return None
        return session.scalars(
            select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
        ).first()

    def _start_family(self, session: Session, user: User, now: int) -> TokenPair:
        return self._add_to_family(session, user, new_family_id(), now, now)

    def _add_to_family(
        self, session: Session, user: User, family_id: str, started_ms: int, now: int
    ) -> TokenPair:
        policy = self.policy
        expires_ms = min(now + policy.refresh_token_ttl_s * 1000, started_ms + policy.session_max_s * 1000)
        if expires_ms <= now:
            raise InvalidCredentials("the session has ended; sign in again")
        text = new_refresh_token()
        session.add(
            RefreshToken(
                token_hash=digest(text),
                user_id=user.id,
                family_id=family_id,
                family_started_ms=started_ms,
                issued_ms=now,
                expires_ms=expires_ms,
            )
        )
        return TokenPair(
            access_token=issue_access_token(user.id, policy.signing_key, now, policy.access_token_ttl_s),
            access_expires_in_s=policy.access_token_ttl_s,
            refresh_token=text,
            refresh_expires_in_s=(expires_ms - now) // 1000,
        )

    def _revoke_family(self, session: Session, family_id: str, now: int) -> int:
        result = session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_ms.is_(None))
            .values(revoked_ms=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def _reuse_detected(self, session: Session, row: RefreshToken, actor: Actor, now: int) -> None:
        family_id = row.family_id
        session.rollback()
        revoked = self._revoke_family(session, family_id, now)
        details = {"family": family_id[:8], "tokens_revoked": revoked}
        audit(session, actor, "auth.refresh_reuse", f"user:{actor.name}", details, at_ms=now)
        session.commit()
        raise InvalidCredentials("invalid refresh token")
