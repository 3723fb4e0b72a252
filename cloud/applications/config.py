"""The application service's configuration, from environment variables: the encryption key of personal data,
the environment (only ``development`` may run without a key), the largest proof upload and the retention."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.fernet import Fernet, MultiFernet

logger = logging.getLogger(__name__)

KEY_VARIABLE = "LOKALNIE_APPLICATIONS_KEY"
ENVIRONMENT_VARIABLE = "LOKALNIE_ENV"
MAX_PROOF_VARIABLE = "LOKALNIE_APPLICATIONS_MAX_PROOF_BYTES"
RETENTION_VARIABLE = "LOKALNIE_APPLICATIONS_RETENTION_DAYS"

DEFAULT_MAX_PROOF_BYTES = 10 * 1024 * 1024
# Five years after the last change of status: the programme's settlement and audit period (to confirm
# with the city's data protection officer).
DEFAULT_RETENTION_DAYS = 5 * 365


class ApplicationsConfigError(RuntimeError):
    """The service cannot start: a key is missing outside development or a value is malformed."""


@dataclass(frozen=True)
class ApplicationsConfig:
    """``keys`` are Fernet keys, the first encrypts and all decrypt (so a key can be rotated)."""

    keys: tuple[bytes, ...]
    max_proof_bytes: int = DEFAULT_MAX_PROOF_BYTES
    retention_days: int = DEFAULT_RETENTION_DAYS

    def cipher(self) -> MultiFernet:
        return MultiFernet([Fernet(key) for key in self.keys])

    @classmethod
    def for_tests(cls, **overrides: int) -> ApplicationsConfig:
        """A configuration with a fresh random key."""
        return cls(keys=(Fernet.generate_key(),), **overrides)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ApplicationsConfig:
        """Read the configuration; without ``LOKALNIE_APPLICATIONS_KEY`` only development (``LOKALNIE_ENV``
        unset or ``development``, as `cloud.settings.Settings`) starts, with a throw-away key (applications
        stored with it cannot be read after a restart)."""
        env = os.environ if environ is None else environ
        environment = env.get(ENVIRONMENT_VARIABLE, "development")  # as cloud.settings.Settings
        raw_keys = [part.strip() for part in env.get(KEY_VARIABLE, "").split(",") if part.strip()]
        if not raw_keys:
            if environment != "development":
                raise ApplicationsConfigError(
                    f"{KEY_VARIABLE} is not set: the applications' personal data cannot be encrypted. "
                    "Generate one with `python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'` (only LOKALNIE_ENV=development runs without it)."
                )
            logger.warning("%s not set: development only, using a throw-away key", KEY_VARIABLE)
            raw_keys = [Fernet.generate_key().decode()]
        keys = tuple(key.encode() for key in raw_keys)
        for number, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except ValueError as error:
                raise ApplicationsConfigError(
                    f"{KEY_VARIABLE}: key {number} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from error
        return cls(
            keys=keys,
            max_proof_bytes=_positive_int(env, MAX_PROOF_VARIABLE, DEFAULT_MAX_PROOF_BYTES),
            retention_days=_positive_int(env, RETENTION_VARIABLE, DEFAULT_RETENTION_DAYS),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError as error:
        raise ApplicationsConfigError(f"{name} must be a whole number, got {text!r}") from error
    if value <= 0:
        raise ApplicationsConfigError(f"{name} must be positive, got {value}")
    return value
