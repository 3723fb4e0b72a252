"""The API application: `create_app` wires the routers, the database and the clock together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from cloud.api.routes import api_router
from cloud.db.engine import make_engine, make_session_factory
from cloud.settings import Settings
from common.clock import Clock

logger = logging.getLogger(__name__)


def create_app(settings: Settings, clock: Clock) -> FastAPI:
    """The FastAPI application over the store at ``settings.database_url``, telling time by ``clock``.

    The database must have been migrated (`cloud.db.register.prepare_database`).
    """
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="lokalnie",
        summary="PV, grid and consumption of Zduńska Wola's schools.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.sessions = make_session_factory(engine)
    app.include_router(api_router)
    app.add_exception_handler(Exception, _internal_error)
    return app


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    """Whatever went wrong stays in the log; the client learns only that it did."""
    logger.error("%s %s failed: %s", request.method, request.url.path, type(error).__name__, exc_info=error)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content={"detail": "internal error"}
    )
