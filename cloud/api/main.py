"""The API application: `create_app` wires the routers, the database, the clock, authentication, the limits
and the security headers together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from cloud.api import security
from cloud.api.access_log import redact_access_log
from cloud.api.limits import (
    ContentLengthMiddleware,
    Rate,
    RateLimiter,
    SecurityHeadersMiddleware,
    parse_networks,
    security_headers,
)
from cloud.api.readings import LOCAL_ZONE
from cloud.api.routes import api_router
from cloud.api.serve import SharedLimits
from cloud.applications.config import ApplicationsConfig
from cloud.auth.sessions import Authenticator, SessionPolicy
from cloud.auth.throttle import LoginThrottle
from cloud.db.engine import make_engine, make_session_factory
from cloud.settings import Settings
from cloud.smog.data import shipped_data
from cloud.smog.sites import AddressSites
from cloud.web import mount_web
from common.clock import Clock, SystemClock, datetime_from_ms

logger = logging.getLogger(__name__)

OPENAPI_URL = "/openapi.json"


def _warn_of_expired_smog_data(clock: Clock) -> None:
    """Name at start the calculator's figures whose validity has ended (each estimate names those it used)."""
    data = shipped_data()
    today = datetime_from_ms(clock.now_ms()).astimezone(LOCAL_ZONE).date()
    for key in data.expired_keys(today):
        logger.warning(
            "Stop Smog data %s: %s was valid until %s; enter its successor (docs/smog.md)",
            data.version,
            key,
            data.sourced(key).valid_until,
        )


def create_app(
    settings: Settings,
    clock: Clock,
    *,
    real_now_ms: Callable[[], int] | None = None,
    limits: SharedLimits | None = None,
    applications: ApplicationsConfig | None = None,
) -> FastAPI:
    """The FastAPI application over the store at ``settings.database_url``, telling the data's time by
    ``clock`` and real time (tokens, rate limits, the audit log) by ``real_now_ms`` (the system's by default).

    ``limits``: the rate limits and sign-in failures this process shares with the API's other processes
    (`cloud.api.serve`); without, its own. ``applications``: the applications' configuration (from the
    environment by default).

    The database must have been migrated (`cloud.db.register.prepare_database`).
    """
    redact_access_log()
    engine = make_engine(settings.database_url)
    now_ms = real_now_ms if real_now_ms is not None else SystemClock().now_ms

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="lokalnie",
        summary="PV, grid and consumption of Zduńska Wola's schools, and the city's services around them.",
        version="1",
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        # The interactive pages load scripts from a CDN, which the pages' Content-Security-Policy forbids;
        # the document at /openapi.json opens in any OpenAPI viewer.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.sessions = make_session_factory(engine)
    app.state.smog_sites = AddressSites()
    rates = configure_security(app, settings, now_ms, limits)
    # Every API route takes bodies up to the default, unless it says otherwise with its own max_body_size.
    # (Set on the routes rather than on the app: the app's limit would answer 413 in plain text.)
    app.include_router(api_router, max_body_size=settings.max_body_bytes)
    app.state.smog_applications = applications or ApplicationsConfig.from_environment()
    _warn_of_expired_smog_data(clock)
    mount_web(app)
    _declare_documentation(app)
    app.state.permissions = security.install_rules(app, rates)

    # The last added runs first: the headers go on everything CORS answers too.
    app.add_middleware(ContentLengthMiddleware, limit_for=security.BodyLimits(app, app.state.permissions))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        expose_headers=["Retry-After"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(
        SecurityHeadersMiddleware, hsts=settings.env == "production", no_store_prefixes=("/api/v1/auth",)
    )
    hsts = settings.env == "production"

    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        """Whatever went wrong stays in the log; the client learns only that it did."""
        logger.error(
            "%s %s failed: %s", request.method, request.url.path, type(error).__name__, exc_info=error
        )
        return JSONResponse(
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
            content={"detail": "internal error"},
            # This answer leaves from outside the middleware that adds them.
            headers=security_headers("application/json", hsts),
        )

    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    if settings.env == "development":
        logger.warning("LOKALNIE_ENV is development: never expose this API to the internet")
    return app


async def _http_error(request: Request, error: Exception) -> Response:
    """FastAPI's answer to an HTTP error, except that a 405 lists every method of the path in ``Allow``:
    Starlette names only those of the first route that matched the path, though a path such as
    ``/api/v1/smog/applications`` has its GET and its POST in two routes."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        methods = _methods_of(request.app.router.routes, request.url.path)
        if methods:
            error.headers = {**(error.headers or {}), "Allow": ", ".join(sorted(methods))}
    return await http_exception_handler(request, error)


def _methods_of(routes: list[BaseRoute], path: str) -> set[str]:
    methods: set[str] = set()
    for context in iter_route_contexts(routes):
        pattern = getattr(context, "path_regex", None)
        if context.methods and pattern is not None and pattern.match(path):
            methods |= context.methods
    return methods


def configure_security(
    app: FastAPI, settings: Settings, now_ms: Callable[[], int], limits: SharedLimits | None = None
) -> dict[str, Rate]:
    """Put on ``app.state`` what the access rules need: the authenticator, the rate limiter and the trusted
    proxies (a test's own small app of a few routers calls this too), counting in ``limits`` when the API's
    processes share them. The rate limits by name."""
    app.state.authenticator = Authenticator(
        SessionPolicy(
            signing_key=settings.signing_key(),
            access_token_ttl_s=settings.access_token_ttl_s,
            refresh_token_ttl_s=settings.refresh_token_ttl_s,
            session_max_s=settings.session_max_s,
        ),
        now_ms,
        LoginThrottle(records=limits.sign_in_failures if limits is not None else None),
    )
    rates = {name: Rate(count, period_s) for name, (count, period_s) in settings.rates().items()}
    app.state.rate_limiter = RateLimiter(
        rates, now_ms, records=limits.rate_limits if limits is not None else None
    )
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    return rates


def _declare_documentation(app: FastAPI) -> None:
    """The OpenAPI document is public: the platform is open, and the document holds no data."""
    route: BaseRoute
    for route in app.router.routes:
        if getattr(route, "path", None) == OPENAPI_URL:
            security.declare(route, security.Public())
