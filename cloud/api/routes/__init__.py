"""The API's routers, one per area, collected into one."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.routes import health, schools

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(schools.router)
