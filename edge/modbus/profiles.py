"""Device profiles: what to read from a kind of device, how to decode it and how to talk to it, as data.

A profile is a YAML file in ``firmware-config/profiles/``. Knowledge of a device brand lives there and
nowhere in the code. A profile is one of two kinds:

* a **register map**: each field names its function (holding or input registers), address, data type, word
  and byte order, a scale, an optional scale-factor field (SunSpec's ``sunssf``: value × 10^sf), the raw value
  that means "not implemented", the range a plausible value lies in, and the quantity of the wire contract it
  becomes;
* a **SunSpec** profile: the device's map is discovered (`edge.modbus.sunspec`), and the profile only says
  which SunSpec models it expects and which of their points become which wire quantities.

Either kind also says how the device must be talked to (timeouts, pauses, the largest request, closing the
connection after each poll) and which values mean an alarm, with the caretaker's message in Polish.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import ConfigError, load_yaml_model
from common.wire import QUANTITY_PATTERN, DeviceKind, Severity
from edge.modbus.decode import DataType, Order, register_count

MAX_REGISTERS_PER_REQUEST = 125  # the Modbus limit for function codes 3 and 4
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
CODE_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


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
    length: Annotated[int, Field(ge=1, le=MAX_REGISTERS_PER_REQUEST)] | None = None
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: float = 1.0
    # The name of another field whose value v multiplies this one by 10^v (SunSpec scale factors).
    scale_factor: str | None = None
    unit: str | None = None
    # The raw register contents (as one unsigned integer) that mean the device does not implement the field.
    not_implemented: Annotated[int, Field(ge=0)] | None = None
    # A decoded value outside [valid_min, valid_max] is not a reading but garbage: published as null.
    valid_min: float | None = None
    valid_max: float | None = None
    # Helper fields (scale factors, identity, map checks) are read but not published.
    publish: bool = True
    # Identity fields (serial number, model) tell one device from another: a change means it was replaced.
    identity: bool = False
    # The raw value the register must hold (a SunSpec model id); anything else means the map has moved.
    expect: Annotated[int, Field(ge=0)] | None = None

    @property
    def registers(self) -> int:
        return register_count(self.type, self.length or 0)

    @property
    def end(self) -> int:
        """One past the field's last register."""
        return self.address + self.registers

    @model_validator(mode="after")
    def _consistent(self) -> RegisterField:
        if self.type is DataType.STRING and self.length is None:
            raise ValueError("a string field needs a length in registers")
        if self.type is not DataType.STRING and self.length is not None:
            raise ValueError(f"length applies only to strings, not to {self.type.value}")
        if self.end > 65536:
            raise ValueError(f"the field runs past register 65535 (address {self.address})")
        if self.type is DataType.STRING and self.publish:
            raise ValueError("a string cannot be published (the wire carries numbers): set publish: false")
        if self.valid_min is not None and self.valid_max is not None and self.valid_min > self.valid_max:
            raise ValueError(f"valid_min {self.valid_min} is above valid_max {self.valid_max}")
        return self


class AddressRange(_Strict):
    """Registers a device refuses to read (a request that touches them fails)."""

    function: Function = Function.HOLDING
    start: Annotated[int, Field(ge=0, le=65535)]
    end: Annotated[int, Field(ge=1, le=65536)]  # exclusive

    @model_validator(mode="after")
    def _ordered(self) -> AddressRange:
        if self.end <= self.start:
            raise ValueError(f"an unreadable range must end after it starts ({self.start}..{self.end})")
        return self


class Alarm(_Strict):
    """A value that means the device reports a fault: a bit that is set, or a state among ``equals``.

    While the condition holds, the agent keeps a health event ``code`` raised for the device; it clears
    when the condition is gone.
    """

    field: Annotated[str, Field(pattern=QUANTITY_PATTERN)]
    bit: Annotated[int, Field(ge=0, le=63)] | None = None
    equals: list[int] = []
    code: Annotated[str, Field(pattern=CODE_PATTERN)]
    severity: Severity = Severity.WARNING
    message_pl: Annotated[str, Field(min_length=1, max_length=400)]

    @model_validator(mode="after")
    def _one_test(self) -> Alarm:
        if (self.bit is None) == (not self.equals):
            raise ValueError(f"alarm {self.code!r}: give either a bit or a list of values (equals)")
        return self

    def active(self, value: float | None) -> bool | None:
        """Whether the alarm holds for a decoded value; None when the value is missing."""
        if value is None:
            return None
        if self.bit is not None:
            return bool(int(value) >> self.bit & 1)
        return int(value) in self.equals


class SunSpecPoint(_Strict):
    """How one wire quantity is read from a SunSpec point, with the range a plausible value lies in."""

    point: Annotated[str, Field(min_length=1)]
    valid_min: float | None = None
    valid_max: float | None = None


class SunSpecSection(_Strict):
    """A discovered SunSpec map: where to look for 'SunS', which models to read, which points to publish."""

    # Where the 'SunS' marker may be, in the order to try (SunSpec: 40000, 0, 50000).
    base_addresses: list[Annotated[int, Field(ge=0, le=65533)]] = [40000, 0, 50000]
    # The models this kind of device offers, by preference: the first one the device has is read.
    models: Annotated[list[Annotated[int, Field(ge=1, le=65534)]], Field(min_length=1)]
    # Wire quantity -> the point of the chosen model it is read from.
    points: dict[Annotated[str, Field(pattern=QUANTITY_PATTERN)], SunSpecPoint]
    # Points of the common model (1) that identify the device: a change means it was replaced.
    identity: list[str] = ["Mn", "Md", "SN"]


class Profile(_Strict):
    """A kind of device: its register map (or how to discover it) and how it must be talked to."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
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
    # How long to wait for an answer [s] (Fronius fails under 0.6 s, a Huawei dongle needs 10 s and more).
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Pause after a connection is made before the first request [s] (Huawei dongles need seconds).
    connect_delay_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    # Pause between two requests [s].
    request_pause_s: Annotated[float, Field(ge=0, le=10)] = 0.0
    # Close the connection after every poll (devices that serve few connections, or forget idle ones badly).
    close_after_poll: bool = False
    # How often identity fields are read again while all is well [polls]; also after every failure.
    identity_every_polls: Annotated[int, Field(ge=1)] = 360
    fields: list[RegisterField] = []
    sunspec: SunSpecSection | None = None
    alarms: list[Alarm] = []

    @model_validator(mode="after")
    def _fields_consistent(self) -> Profile:
        if (self.sunspec is None) == (not self.fields):
            raise ValueError("a profile has either a register map (fields) or a sunspec section, not both")
        names = [field.name for field in self.fields]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"field names appear twice: {', '.join(duplicates)}")
        for field in self.fields:
            self._check_field(field, {f.name: f for f in self.fields})
        for alarm in self.alarms:
            if alarm.field not in self.published:
                raise ValueError(
                    f"alarm {alarm.code!r} watches {alarm.field!r}, which the profile does not publish"
                )
        return self

    def _check_field(self, field: RegisterField, by_name: dict[str, RegisterField]) -> None:
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
                raise ValueError(
                    f"field {field.name!r} (address {field.address}) lies in registers the profile marks "
                    f"unreadable ({blocked.start}..{blocked.end - 1})"
                )

    @property
    def published(self) -> list[str]:
        """The wire quantities a device of this profile publishes."""
        if self.sunspec is not None:
            return list(self.sunspec.points)
        return [field.name for field in self.fields if field.publish]


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


def load_profiles(directory: Path) -> list[Profile]:
    """Every profile in a directory, by name; `ConfigError` on the first bad one."""
    return [load_profile(directory, path.stem) for path in sorted(directory.glob("*.yaml"))]
