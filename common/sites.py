"""A school's site file: the school, its PV roof, its devices and how to reach them.

Site files live in ``firmware-config/sites/<school>.yaml``. The simulators build devices from them,
the edge agent polls the devices they list, and the cloud takes its register of schools from them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, load_yaml_model
from common.wire import DEVICE_ID_PATTERN, SCHOOL_ID_PATTERN, DeviceKind

Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TcpTransport(_Strict):
    """Modbus TCP: the device (or its gateway) at host:port."""

    type: Literal["tcp"] = "tcp"
    host: Annotated[str, Field(min_length=1)]
    port: Port = 502


class RtuTransport(_Strict):
    """Modbus RTU over an RS-485 serial line."""

    type: Literal["rtu"] = "rtu"
    device: Annotated[str, Field(min_length=1)]
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


Transport = Annotated[TcpTransport | RtuTransport, Field(discriminator="type")]


class Device(_Strict):
    """One Modbus device at the school."""

    id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    kind: DeviceKind
    # The name of a register profile in firmware-config/profiles/ (without .yaml).
    profile: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    unit: Annotated[int, Field(ge=0, le=247)] = 1
    transport: Transport


class SchoolType(StrEnum):
    PRIMARY_SCHOOL = "primary_school"
    SECONDARY_SCHOOL = "secondary_school"
    KINDERGARTEN = "kindergarten"


class Location(_Strict):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class Site(_Strict):
    """One school or kindergarten."""

    id: Annotated[str, Field(pattern=SCHOOL_ID_PATTERN)]
    name: Annotated[str, Field(min_length=3, max_length=200)]
    type: SchoolType
    address: Annotated[str, Field(min_length=3, max_length=200)]
    location: Location
    pv_kwp: Annotated[float, Field(gt=0, le=1000)]
    # Pupils (or children in a kindergarten) enrolled: drives the simulated load and the per-pupil figures.
    pupils: Annotated[int, Field(ge=1, le=5000)]
    # Yearly electricity use; when absent, the simulator estimates it from the number of pupils.
    annual_consumption_kwh: Annotated[float, Field(gt=0, le=10_000_000)] | None = None
    poll_period_s: Annotated[int, Field(ge=1, le=3600)] = 10
    devices: Annotated[list[Device], Field(min_length=1, max_length=32)]

    @model_validator(mode="after")
    def _device_ids_unique(self) -> Site:
        seen: set[str] = set()
        for device in self.devices:
            if device.id in seen:
                raise ValueError(f"device id {device.id!r} appears twice")
            seen.add(device.id)
        return self

    @model_validator(mode="after")
    def _period_divides_quarter_hour(self) -> Site:
        # Polls are aligned to the clock; a period that divides 15 minutes puts a sample on every interval
        # boundary, so interval energies need no interpolation in the normal case.
        if 900 % self.poll_period_s:
            raise ValueError(f"poll_period_s {self.poll_period_s} must divide 900 (15 minutes)")
        return self

    def devices_of(self, kind: DeviceKind) -> list[Device]:
        return [device for device in self.devices if device.kind == kind]


def load_site(path: Path) -> Site:
    """Read and validate one site file; `ConfigError` names the file, the field and the reason."""
    site = load_yaml_model(path, Site)
    if path.stem != site.id:
        raise ConfigError(f"{path}: field 'id': {site.id!r} must match the file name {path.stem!r}")
    return site


def write_site(site: Site, directory: Path) -> Path:
    """Write ``site`` as ``<directory>/<id>.yaml``, as `load_site` reads it back; the file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{site.id}.yaml"
    path.write_text(yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    return path


def load_sites(directory: Path) -> list[Site]:
    """Every site file in a directory, sorted by school id; `ConfigError` on the first bad one."""
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise ConfigError(f"{directory}: no site files (*.yaml) found")
    return sorted((load_site(path) for path in paths), key=lambda site: site.id)
