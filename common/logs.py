"""Logging set up the same way in every process: one line per event, UTC times, the process's role."""

from __future__ import annotations

import logging
import os
import sys
import time


def setup_logging(role: str, level: str | None = None) -> None:
    """Log to stderr as ``time level role logger: message``; the level comes from ``LOKALNIE_LOG_LEVEL``."""
    chosen = (level or os.environ.get("LOKALNIE_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        f"%(asctime)s %(levelname)s {role} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen)
    # pymodbus logs every failed connection attempt at ERROR with a traceback; we log our own one line.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
