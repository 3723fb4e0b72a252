"""One clock for the whole system: real time in production, a faster simulated time in demos and tests.

Every process reads time through a `Clock`. Times are integer milliseconds since the Unix epoch, UTC;
Europe/Warsaw appears only where a person reads a time. A scaled clock is described by a spec string
(`scaled:start=...,speed=...,anchor=...`) that is passed to child processes in ``LOKALNIE_CLOCK``, so
that simulators, edge agents, the ingest and the API all agree on the simulated "now" without talking
to each other: the anchor is a real wall-clock instant, and every process computes the same time from it.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Protocol

CLOCK_ENV = "LOKALNIE_CLOCK"


def ms_from_datetime(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def datetime_from_ms(epoch_ms: int) -> datetime:
    """The UTC datetime of an epoch in milliseconds."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


def parse_iso_ms(text: str) -> int:
    """Parse an ISO 8601 time (``Z`` or an offset; naive means UTC) into epoch milliseconds."""
    return ms_from_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))


def iso_from_ms(epoch_ms: int) -> str:
    """ISO 8601 text in UTC with a ``Z``, to the millisecond."""
    return datetime_from_ms(epoch_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock(Protocol):
    """What the system needs of time: now, and waiting until a given moment."""

    def now_ms(self) -> int:
        """The current time in epoch milliseconds."""
        ...

    async def sleep_until(self, epoch_ms: int) -> None:
        """Return once the clock has reached ``epoch_ms`` (at once if it already has)."""
        ...

    @property
    def speed(self) -> float:
        """How many clock seconds pass in one real second."""
        ...

    def spec(self) -> str:
        """The text that `clock_from_spec` turns back into an equivalent clock in another process."""
        ...


class SystemClock:
    """Real time: what production runs on."""

    speed = 1.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, epoch_ms: int) -> None:
        delay_s = (epoch_ms - self.now_ms()) / 1000
        if delay_s > 0:
            await asyncio.sleep(delay_s)

    def spec(self) -> str:
        return "system"


class ScaledClock:
    """Simulated time that starts at ``start_ms`` when the real clock reads ``anchor_ms`` and runs ``speed``
    times faster than real time."""

    def __init__(self, start_ms: int, speed: float, anchor_ms: int | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.start_ms = start_ms
        self._speed = float(speed)
        self.anchor_ms = anchor_ms if anchor_ms is not None else time.time_ns() // 1_000_000

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        real_ms = time.time_ns() / 1_000_000
        return self.start_ms + int((real_ms - self.anchor_ms) * self._speed)

    async def sleep_until(self, epoch_ms: int) -> None:
        while (remaining_ms := epoch_ms - self.now_ms()) > 0:
            await asyncio.sleep(remaining_ms / self._speed / 1000)

    def spec(self) -> str:
        return f"scaled:start={iso_from_ms(self.start_ms)},speed={self._speed:g},anchor={self.anchor_ms}"


class ManualClock:
    """A clock that moves only when a test moves it, so that a test decides exactly when each poll happens."""

    speed = 0.0

    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms
        self._changed = asyncio.Condition()

    def now_ms(self) -> int:
        return self._now_ms

    async def sleep_until(self, epoch_ms: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now_ms >= epoch_ms)

    async def advance_to(self, epoch_ms: int) -> None:
        """Move the clock forward (never back) and wake whoever waits for a moment now passed."""
        async with self._changed:
            self._now_ms = max(self._now_ms, epoch_ms)
            self._changed.notify_all()
        # Let the woken tasks run before the caller goes on.
        await asyncio.sleep(0)

    def spec(self) -> str:
        raise NotImplementedError("a manual clock lives in one process and cannot be handed to another")


def clock_from_spec(spec: str | None) -> Clock:
    """Build a clock from its spec: ``system`` (or empty) or ``scaled:start=ISO,speed=X[,anchor=MS]``."""
    if not spec or spec == "system":
        return SystemClock()
    kind, _, params_text = spec.partition(":")
    if kind != "scaled":
        raise ValueError(f"unknown clock {spec!r}: expected 'system' or 'scaled:start=...,speed=...'")
    try:
        params = dict(item.split("=", 1) for item in params_text.split(","))
        anchor = int(params["anchor"]) if "anchor" in params else None
        return ScaledClock(parse_iso_ms(params["start"]), float(params["speed"]), anchor)
    except (KeyError, ValueError) as error:
        raise ValueError(f"bad clock spec {spec!r}: {error}") from error


def clock_from_env() -> Clock:
    """The clock this process was started with (``LOKALNIE_CLOCK``), real time by default."""
    return clock_from_spec(os.environ.get(CLOCK_ENV))
