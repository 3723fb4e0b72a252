"""``GET /healthz``: is the API up, and can it reach its database."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response, status
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.deps import SessionDep
from cloud.api.models.health import HealthPublic
from cloud.api.security import Public

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/healthz", dependencies=[Public()], responses={503: {"description": "The database does not answer."}}
)
def health(session: SessionDep, response: Response) -> HealthPublic:
    """200 when the database answers, 503 when it does not."""
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        logger.warning("health check: database unavailable (%s)", type(error).__name__)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthPublic(status="degraded", database="unavailable")
    return HealthPublic(status="ok", database="ok")
