"""The access log never shows the secret token of a resident's status link."""

from __future__ import annotations

import logging

from cloud.api.access_log import RedactSecretPaths


def test_status_tokens_are_redacted_from_access_log_records() -> None:
    token = "q3Jv9xY2bP0kL5sT8wZ1aC4dF7gH6jM"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/api/v1/smog/applications/status/{token}/pdf", "1.1", 200),
        None,
    )
    assert RedactSecretPaths().filter(record)
    assert token not in record.getMessage()
    assert "/api/v1/smog/applications/status/…/pdf" in record.getMessage()
