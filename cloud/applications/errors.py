"""How the application service refuses: a resident's bad input (422, Polish, naming the field), an
idempotency key reused for a different request (409), a status change the workflow does not allow (409)."""

from __future__ import annotations

from typing import Literal

from cloud.smog.errors import SmogInputError


class ApplicationInputError(SmogInputError):
    """Bad input of an application; ``location`` is where the field was sent (``body`` or ``header``)."""

    def __init__(self, field: str, message_pl: str, location: Literal["body", "header"] = "body") -> None:
        super().__init__(field, message_pl)
        self.location = location


class IdempotencyConflictError(Exception):
    """The idempotency key was used before for a different application."""

    message_pl = (
        "Ten klucz Idempotency-Key został już użyty dla innego wniosku. "
        "Odśwież formularz i wyślij go ponownie."
    )


class StatusChangeError(Exception):
    """The workflow does not allow this change of status."""

    def __init__(self, message_pl: str) -> None:
        self.message_pl = message_pl
        super().__init__(message_pl)
