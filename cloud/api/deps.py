"""The API's dependencies, declared once as ``Annotated`` aliases and taken from the app's state.

The dependencies that only read the app's state are ``async``: FastAPI then calls them on the event loop
instead of sending each through a worker thread.

Who may call a route is declared with `cloud.api.security` (``Public``, ``Authenticated``, ``Allow``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.limits import IPNetwork, RateLimiter, client_address
from cloud.auth.sessions import Authenticator
from cloud.settings import Settings
from cloud.smog.sites import AddressSites
from common.clock import Clock


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A database session for one request (a synchronous one: routes are plain functions).

    Async so that FastAPI opens and closes it on the event loop instead of in two thread hops per request:
    opening does no I/O (the connection is taken at the first query) and closing returns the connection to
    the pool.
    """
    sessions = cast(sessionmaker[Session], request.app.state.sessions)
    with sessions() as session:
        yield session


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_clock(request: Request) -> Clock:
    return cast(Clock, request.app.state.clock)


async def get_authenticator(request: Request) -> Authenticator:
    return cast(Authenticator, request.app.state.authenticator)


async def get_smog_sites(request: Request) -> AddressSites:
    return cast(AddressSites, request.app.state.smog_sites)


def rate_limiter(request: Request) -> RateLimiter:
    return cast(RateLimiter, request.app.state.rate_limiter)


def client_ip(request: Request) -> str:
    """The caller's address, believing X-Forwarded-For only from the configured proxies."""
    trusted = cast(tuple[IPNetwork, ...], request.app.state.trusted_proxies)
    return client_address(request, trusted)


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
ClientIpDep = Annotated[str, Depends(client_ip)]
SmogSitesDep = Annotated[AddressSites, Depends(get_smog_sites)]
