"""The texts that admit a client: short-lived signed access tokens (JWT, HS256), opaque refresh tokens and
API keys. Only SHA-256 digests of refresh tokens and keys are stored; they are long random strings, so a
fast hash is enough (a password needs argon2, a 256-bit secret does not)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import jwt

from cloud.auth.errors import InvalidCredentials

ISSUER = "lokalnie"
ALGORITHM = "HS256"
API_KEY_TAG = "lk_"
_API_KEY_PATTERN = re.compile(r"^lk_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
_REFRESH_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def digest(secret: str) -> str:
    """The SHA-256 of ``secret`` in hex: what the database keeps of a refresh token or an API key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def digests_match(stored: str, secret: str) -> bool:
    """Whether ``secret`` hashes to ``stored``, compared in constant time."""
    return hmac.compare_digest(stored.encode(), digest(secret).encode())


def new_refresh_token() -> str:
    """A refresh token: 256 random bits, URL-safe base64."""
    return secrets.token_urlsafe(32)


def looks_like_refresh_token(text: str) -> bool:
    return _REFRESH_TOKEN_PATTERN.match(text) is not None


def new_family_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class NewApiKey:
    """A key just made: ``text`` is shown once and never stored."""

    prefix: str
    text: str


def new_api_key() -> NewApiKey:
    """``lk_<12 hex: prefix>_<256 random bits>``; the prefix finds the key's row and may be shown."""
    prefix = secrets.token_hex(6)
    return NewApiKey(prefix=prefix, text=f"{API_KEY_TAG}{prefix}_{secrets.token_urlsafe(32)}")


def api_key_prefix(text: str) -> str | None:
    """The prefix of a well-formed key, None for anything else."""
    match = _API_KEY_PATTERN.match(text)
    return match["prefix"] if match else None


def issue_access_token(user_id: int, key: str, now_ms: int, ttl_s: int) -> str:
    """A signed access token for the user, valid ``ttl_s`` seconds from ``now_ms``."""
    now_s = now_ms // 1000
    claims = {
        "iss": ISSUER,
        "sub": str(user_id),
        "typ": "access",
        "iat": now_s,
        "exp": now_s + ttl_s,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_access_token(token: str, key: str, now_ms: int) -> int:
    """The user id of a valid, unexpired access token signed with ``key``; InvalidCredentials otherwise."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={
                "require": ["iss", "sub", "typ", "iat", "exp"],
                # Times are checked below against the injected clock.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError:
        raise InvalidCredentials("invalid token") from None
    expires = claims.get("exp")
    subject = claims.get("sub")
    if claims.get("typ") != "access" or not isinstance(expires, int) or not isinstance(subject, str):
        raise InvalidCredentials("invalid token")
    if now_ms >= expires * 1000:
        raise InvalidCredentials("token expired")
    if not subject.isdigit():
        raise InvalidCredentials("invalid token")
    return int(subject)
