"""The API's dependencies, declared once as ``Annotated`` aliases and taken from the app's state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from cloud.settings import Settings
from common.clock import Clock


def get_session(request: Request) -> Iterator[Session]:
    """A database session for one request."""
    sessions = cast(sessionmaker[Session], request.app.state.sessions)
    with sessions() as session:
        yield session


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_clock(request: Request) -> Clock:
    return cast(Clock, request.app.state.clock)


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
