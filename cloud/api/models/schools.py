"""What the API answers about schools: the register, the live view and the interval energies.

Times are ISO 8601 in UTC; power is in W (a grid meter's is positive while the school buys), energy in Wh.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LocationPublic(BaseModel):
    lat: float
    lon: float


class SchoolPublic(BaseModel):
    """A school or kindergarten of the programme."""

    id: str
    name: str
    type: str
    address: str
    pv_kwp: float
    pupils: int
    location: LocationPublic


class LinkPublic(BaseModel):
    """Whether the school's edge agent is connected: ``unknown`` before its first status message."""

    state: Literal["online", "offline", "unknown"]
    since: datetime | None = None


class DeviceLivePublic(BaseModel):
    """A device and its latest sample; ``values`` is None before the device's first sample."""

    device_id: str
    kind: str
    values: dict[str, float | None] | None = None
    time: datetime | None = None
    age_s: float | None = Field(default=None, description="How old the latest sample is by the clock [s].")


class LivePublic(BaseModel):
    """A school now: its link, its devices' latest samples and the power and energy they add up to."""

    school_id: str
    now: datetime
    link: LinkPublic
    devices: list[DeviceLivePublic]
    pv_power_w: float | None = Field(description="The inverters' latest power, summed [W].")
    grid_power_w: float | None = Field(description="The grid meters' latest power, summed; + buying [W].")
    consumption_w: float | None = Field(description="pv_power_w + grid_power_w [W].")
    today_start: datetime = Field(description="Midnight in Europe/Warsaw, where today_pv_wh counts from.")
    today_pv_wh: float = Field(description="The PV counters' growth since today_start [Wh].")


class IntervalPublic(BaseModel):
    """A school's energies over one 15-minute interval."""

    start: datetime
    end: datetime
    pv_wh: float
    import_wh: float
    export_wh: float
    consumption_wh: float = Field(description="pv_wh + import_wh - export_wh [Wh].")
    complete: bool = Field(description="False while some counter has no sample beyond the interval yet.")


class IntervalsPublic(BaseModel):
    """The intervals starting in [from, to)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    school_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    intervals: list[IntervalPublic]
