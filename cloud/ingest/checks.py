"""What the ingest accepts beyond the wire contract's shape: samples of a known school at believable times,
readings that are numbers a real device can show, counters that grow no faster than their device can
deliver. The register of schools (their roofs and devices) is read once at start.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from cloud.db.models import Device, School
from cloud.settings import Settings
from common.wire import DeviceKind

DAY_MS = 24 * 3600 * 1000
# A plain string: comparing with the enum member looks the member up each time (per reading, in hot loops).
_PV_INVERTER: str = DeviceKind.PV_INVERTER.value
# A counter larger than this (1 TWh) is no school's.
MAX_COUNTER_WH = 1e12
MAX_OTHER_ABS = 1e15

_POWER = re.compile(r"^(?:dc_)?power(?:_l[1-3])?_w$")


@dataclass(frozen=True)
class Limits:
    """The bounds of believable data.

    Attributes
    ----------
    max_future_ms, max_past_ms : int
        How far a sample may lie ahead of or behind the ingest's clock [ms].
    pv_power_margin : float
        An inverter delivers at most this many times its school's peak power (``pv_kwp``) [1].
    max_grid_power_w : float
        The most a school's grid connection carries either way [W].
    """

    max_future_ms: int = DAY_MS
    max_past_ms: int = 400 * DAY_MS
    pv_power_margin: float = 1.5
    max_grid_power_w: float = 1_000_000.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_future_ms=settings.ingest_max_future_s * 1000,
            max_past_ms=settings.ingest_max_past_days * DAY_MS,
            pv_power_margin=settings.ingest_pv_power_margin,
            max_grid_power_w=settings.ingest_max_grid_power_w,
        )

    def __hash__(self) -> int:
        # `value_range` is cached by its arguments, these among them: hashed for every reading, so the
        # field-by-field hash a dataclass would compute each time is computed once.
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.max_future_ms, self.max_past_ms, self.pv_power_margin, self.max_grid_power_w))

    def max_power_w(self, kind: str, pv_kwp: float) -> float:
        """The most a device of ``kind`` at a school with a ``pv_kwp`` roof can deliver [W]."""
        if kind == _PV_INVERTER:
            return self.pv_power_margin * pv_kwp * 1000.0
        return self.max_grid_power_w


@dataclass(frozen=True, eq=False)
class SchoolInfo:
    """What the ingest knows of a registered school: its roof and its devices by id."""

    pv_kwp: float
    devices: Mapping[str, str] = field(default_factory=dict)


@functools.lru_cache(maxsize=65_536)
def value_ranges(kind: str, pv_kwp: float, limits: Limits) -> ValueRanges:
    """The believable values of each quantity for a device of ``kind`` under a ``pv_kwp`` roof, one table
    for all the schools with such a roof."""
    return ValueRanges(kind, pv_kwp, limits)


class ValueRanges(dict[str, tuple[float, float]]):
    """(lowest, highest) of each quantity (`value_range`) for a device of one kind under one roof, computed at
    its first reading: every reading is checked, and a dictionary lookup costs a fraction of a cached call.
    """

    # Quantities are the devices' own names: a bound on what a faulty or hostile device can make it hold.
    MAX_QUANTITIES = 256

    def __init__(self, kind: str, pv_kwp: float, limits: Limits) -> None:
        super().__init__()
        self.kind, self.pv_kwp, self.limits = kind, pv_kwp, limits

    def __missing__(self, quantity: str) -> tuple[float, float]:
        low, high, _unit = value_range(quantity, self.kind, self.pv_kwp, self.limits)
        if len(self) < self.MAX_QUANTITIES:
            self[quantity] = (low, high)
        return low, high


def load_register(connection: Connection) -> dict[str, SchoolInfo]:
    """Every registered school with its devices, from the ``schools`` and ``devices`` tables."""
    devices: dict[str, dict[str, str]] = {}
    for school_id, device_id, kind in connection.execute(
        select(Device.school_id, Device.device_id, Device.kind)
    ):
        devices.setdefault(school_id, {})[device_id] = kind
    return {
        school_id: SchoolInfo(float(pv_kwp), devices.get(school_id, {}))
        for school_id, pv_kwp in connection.execute(select(School.id, School.pv_kwp))
    }


def time_problem(ts_ms: int, now_ms: int, limits: Limits) -> str | None:
    """Why a sample's time is not believable, or None."""
    if ts_ms > now_ms + limits.max_future_ms:
        return f"ts_ms {ts_ms} is more than {_days(limits.max_future_ms)} ahead of the clock ({now_ms})"
    if ts_ms < now_ms - limits.max_past_ms:
        return f"ts_ms {ts_ms} is more than {_days(limits.max_past_ms)} behind the clock ({now_ms})"
    return None


def _days(span_ms: int) -> str:
    days = span_ms / DAY_MS
    return f"{days:g} day" + ("" if days == 1 else "s")


@functools.lru_cache(maxsize=4096)
def value_range(quantity: str, kind: str, pv_kwp: float, limits: Limits) -> tuple[float, float, str]:
    """The values a device of ``kind`` can show for ``quantity``: (lowest, highest, unit).

    Counters (``..._wh``) lie in [0, 1 TWh]; power in W within what the roof (inverters, down to a little
    night consumption) or the grid connection (meters, either way) carries; voltages in [0, 2000] V,
    currents within ±10 kA, frequencies in [0, 100] Hz, temperatures in [-60, 200] °C; anything else is a
    number below 1e15 in size.
    """
    if quantity.endswith("_wh"):
        return 0.0, MAX_COUNTER_WH, "Wh"
    if _POWER.match(quantity):
        most_w = limits.max_power_w(kind, pv_kwp)
        low_w = -0.1 * most_w - 1000.0 if kind == _PV_INVERTER else -most_w
        return low_w, most_w, "W"
    for suffix, low, high, unit in _RANGES:
        if quantity.endswith(suffix):
            return low, high, unit
    return -MAX_OTHER_ABS, MAX_OTHER_ABS, ""


_RANGES = (
    ("_v", 0.0, 2000.0, "V"),
    ("_a", -10_000.0, 10_000.0, "A"),
    ("_hz", 0.0, 100.0, "Hz"),
    ("_c", -60.0, 200.0, "°C"),
)


def value_problem(quantity: str, value: float, kind: str, pv_kwp: float, limits: Limits) -> str | None:
    """Why one reading is not a value a device of ``kind`` can show (`value_range`), or None."""
    low, high, unit = value_range(quantity, kind, pv_kwp, limits)
    if low <= value <= high:
        return None
    if math.isnan(value):
        return f"{quantity} is NaN"
    if math.isinf(value):
        return f"{quantity} is infinite"
    suffix = f" {unit}" if unit else ""
    if kind == _PV_INVERTER and unit == "W" and value > high:
        return f"{quantity} {value:g} W is more than a {pv_kwp:g} kWp roof delivers ({high:g} W)"
    return f"{quantity} {value:g}{suffix} is outside [{low:g}, {high:g}]{suffix}"
