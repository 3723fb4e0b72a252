"""Device register profiles: what to read from a kind of device and how to decode it, as data.

A profile is a YAML file in ``firmware-config/profiles/``. Knowledge of a device brand lives there and
nowhere in the code: each field names its function (holding or input registers), address, data type,
word and byte order, a scale, an optional scale-factor field (SunSpec's ``sunssf``: value × 10^sf), the
raw value that means "not implemented", and the quantity of the wire contract it becomes.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, load_yaml_model
from common.wire import QUANTITY_PATTERN, DeviceKind
from edge.modbus.decode import DataType, Order, register_count

MAX_REGISTERS_PER_REQUEST = 125  # the Modbus limit for function codes 3 and 4


class Function(StrEnum):
    """Which register table a field lives in, with its Modbus function code."""

    HOLDING = "holding"
    INPUT = "input"

    @property
    def code(self) -> int:
        return 3 if self is Function.HOLDING else 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterField(_Strict):
    """One value a device holds."""

    # A wire quantity (power_w, energy_wh, ...) when published; any name for a helper such as a scale factor.
    name: Annotated[str, Field(pattern=QUANTITY_PATTERN)]
    function: Function = Function.HOLDING
    address: Annotated[int, Field(ge=0, le=65535)]
    type: DataType
    # Registers of a string; numeric types know their own width.
    length: Annotated[int, Field(ge=1, le=125)] | None = None
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: float = 1.0
    # The name of another field whose value v multiplies this one by 10^v (SunSpec scale factors).
    scale_factor: str | None = None
    unit: str | None = None
    # The raw register contents (as one unsigned integer) that mean the device does not implement the field.
    not_implemented: Annotated[int, Field(ge=0)] | None = None
    # Helper fields (scale factors) are read but not published.
    publish: bool = True

    @property
    def registers(self) -> int:
        return register_count(self.type, self.length or 0)

    @property
    def end(self) -> int:
        """One past the field's last register."""
        return self.address + self.registers

    @model_validator(mode="after")
    def _string_has_length(self) -> RegisterField:
        if self.type is DataType.STRING and self.length is None:
            raise ValueError("a string field needs a length in registers")
        if self.type is not DataType.STRING and self.length is not None:
            raise ValueError(f"length applies only to strings, not to {self.type.value}")
        if self.end > 65536:
            raise ValueError(f"the field runs past register 65535 (address {self.address})")
        return self


class AddressRange(_Strict):
    """Registers a device refuses to read (a request that touches them fails)."""

    function: Function = Function.HOLDING
    start: Annotated[int, Field(ge=0, le=65535)]
    end: Annotated[int, Field(ge=1, le=65536)]  # exclusive


class Profile(_Strict):
    """A kind of device: its register map and how it must be talked to."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    description: str
    kind: DeviceKind
    # Where the register map comes from (manual, specification), so that it can be checked.
    source: str
    max_registers_per_request: Annotated[int, Field(ge=1, le=MAX_REGISTERS_PER_REQUEST)] = (
        MAX_REGISTERS_PER_REQUEST
    )
    # Unused registers between two fields that one request may read across rather than splitting.
    max_gap_registers: Annotated[int, Field(ge=0, le=MAX_REGISTERS_PER_REQUEST)] = 16
    unreadable: list[AddressRange] = []
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    fields: Annotated[list[RegisterField], Field(min_length=1)]

    @model_validator(mode="after")
    def _fields_consistent(self) -> Profile:
        names = [field.name for field in self.fields]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"field names appear twice: {', '.join(duplicates)}")
        by_name = {field.name: field for field in self.fields}
        for field in self.fields:
            if field.scale_factor is not None:
                factor = by_name.get(field.scale_factor)
                if factor is None:
                    raise ValueError(f"field {field.name!r}: scale_factor {field.scale_factor!r} is no field")
                if factor.type is not DataType.S16:
                    raise ValueError(f"field {field.name!r}: scale factor {factor.name!r} must be s16")
            if field.registers > self.max_registers_per_request:
                raise ValueError(
                    f"field {field.name!r} spans {field.registers} registers, over the profile's limit of "
                    f"{self.max_registers_per_request} per request"
                )
            for blocked in self.unreadable:
                if (
                    blocked.function == field.function
                    and field.address < blocked.end
                    and blocked.start < field.end
                ):
                    raise ValueError(f"field {field.name!r} lies in registers the profile marks unreadable")
        return self

    @property
    def published(self) -> list[RegisterField]:
        return [field for field in self.fields if field.publish]


def load_profile(directory: Path, name: str) -> Profile:
    """Load ``<directory>/<name>.yaml``; `ConfigError` names the file, the field and the reason."""
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise ConfigError(f"profile {name!r} does not exist in {directory} (known profiles: {known})")
    profile = load_yaml_model(path, Profile)
    if profile.name != name:
        raise ConfigError(f"{path}: field 'name': {profile.name!r} must match the file name {name!r}")
    return profile
