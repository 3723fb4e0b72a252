"""``GET /healthz``: is the API up, can it reach its database, and how is the ingest doing."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response, status
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.deps import ClockDep, SessionDep
from cloud.api.models.health import HealthPublic
from cloud.api.routes.metrics import ingest_health
from cloud.api.security import Public

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/healthz", dependencies=[Public()], responses={503: {"description": "The database does not answer."}}
)
def health(session: SessionDep, clock: ClockDep, response: Response) -> HealthPublic:
    """200 when the database answers, 503 when it does not. A degraded ingest (no worker alive, readings or
    time-series lines late) makes ``status`` ``degraded`` but keeps 200: the API itself still serves."""
    try:
        session.execute(text("SELECT 1"))
        ingest = ingest_health(session, clock)
    except SQLAlchemyError as error:
        logger.warning("health check: database unavailable (%s)", type(error).__name__)
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthPublic(status="degraded", database="unavailable")
    return HealthPublic(
        status="degraded" if ingest.status == "degraded" else "ok", database="ok", ingest=ingest
    )
