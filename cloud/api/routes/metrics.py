"""``GET /metrics``: the ingest's own figures in Prometheus' text format, for every ingest process at once
(their counters live in the database, `cloud.ingest.stats`); and `ingest_health`, the ingest's part of the
health answer (`cloud.api.routes.health`).
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session

from cloud.api.deps import ClockDep, SessionDep
from cloud.api.security import Allow
from cloud.auth.roles import Role
from cloud.ingest.metrics import IngestHealth, collect, collect_totals, health, prometheus_text
from common.clock import Clock

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["monitoring"])


def _real_ms() -> int:
    return time.time_ns() // 1_000_000


@router.get(
    "/metrics",
    dependencies=[Allow(Role.ENERGY_OFFICER, Role.MONITORING)],
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4."}},
)
def read_metrics(session: SessionDep, clock: ClockDep) -> PlainTextResponse:
    """Every ingest worker's counters, the lag behind the newest reading, the time-series outbox's depth."""
    figures = collect(session.connection(), clock.now_ms(), _real_ms())
    return PlainTextResponse(prometheus_text(figures), media_type=PROMETHEUS_CONTENT_TYPE)


def ingest_health(session: Session, clock: Clock) -> IngestHealth:
    """The ingest's state for the health answer: workers alive, totals, spool depth, lag; ``status`` is
    ``ok``, ``degraded`` (``problems`` says why) or ``idle`` (no worker ever ran)."""
    return health(collect_totals(session.connection(), clock.now_ms(), _real_ms()))
