"""Passwords hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile), verified in
the same time whether or not the user exists."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cloud.auth.errors import UserError

PASSWORD_MIN_CHARS = 12
# Hashing costs the same for any length; the cap keeps a sign-in form from carrying megabytes.
PASSWORD_MAX_CHARS = 256

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that an unknown user takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("no user has this password, it only spends time")


def check_password_policy(password: str) -> None:
    """UserError unless ``password`` is long enough and not too long."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise UserError(f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    if len(password) > PASSWORD_MAX_CHARS:
        raise UserError(f"a password has at most {PASSWORD_MAX_CHARS} characters")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (PHC string), after `check_password_policy`."""
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; with ``None`` (no such user) the dummy hash is checked
    so the answer, always False, takes as long."""
    if len(password) > PASSWORD_MAX_CHARS:
        password = password[:PASSWORD_MAX_CHARS]
        password_hash = None
    try:
        matches = _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return matches and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's (then rehash at the next sign-in)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
