"""Keeping secrets out of the access log: a resident's status link carries a secret token in its path
(``/api/v1/smog/applications/status/<token>``), and uvicorn logs every path it serves."""

from __future__ import annotations

import logging
import re

_SECRET_SEGMENT = re.compile(r"(/status/)[^/\s\"?]+")


class RedactSecretPaths(logging.Filter):
    """Replace the token of a status link with ``…`` in every access-log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_SEGMENT.sub(r"\1…", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_SEGMENT.sub(r"\1…", record.msg)
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, RedactSecretPaths) for existing in access.filters):
        access.addFilter(RedactSecretPaths())
