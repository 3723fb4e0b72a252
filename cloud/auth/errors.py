"""What goes wrong in authentication and user management, in words the API and the command line turn into
their own answers (401, 403, 429; a message and an exit code)."""

from __future__ import annotations


class AuthError(Exception):
    """Base of the authentication errors."""


class InvalidCredentials(AuthError):
    """A username and password, a token or a key that does not admit anyone. The message never says which
    part was wrong."""


class LoginThrottled(AuthError):
    """Too many failed sign-ins for one username from one address: try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class UserError(AuthError, ValueError):
    """A user-management request that cannot be done as asked (unknown user, taken username, weak
    password, a scope that does not fit the role); the message says why."""
