"""The API's routers, one per area, collected into one. Every route declares who may call it
(`cloud.api.security`); docs/permissions.md lists them all."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import (
    audit,
    auth,
    corrections,
    events,
    health,
    ingest,
    metrics,
    schools,
    smog,
    smog_applications,
)

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(auth.router)
api_router.include_router(schools.router)
api_router.include_router(ingest.router)
api_router.include_router(corrections.router)
api_router.include_router(events.router)
api_router.include_router(metrics.router)
api_router.include_router(audit.router)
api_router.include_router(smog.router)
api_router.include_router(smog_applications.router)
