"""Reading one device: its register map read over its link in the planned requests and decoded into values,
with what the reading showed about the device (refused requests, garbage, a moved map, a new serial number).

The register map of a device with a register-map profile is fixed when the agent starts. A SunSpec device's
map is discovered on the first successful poll and checked on every poll (the model id and length are read
with the values); when it no longer matches, the map is discovered again. A device that keeps failing is
backed off: after the second failure in a row its polls are skipped, twice as many each time, up to
`MAX_SKIPPED_POLLS`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from common.sites import Device
from edge.modbus import sunspec
from edge.modbus.decode import DataType, decode, raw_unsigned, scaled
from edge.modbus.link import DeviceLink, DeviceRefusal, DeviceUnreachable
from edge.modbus.plan import ReadBlock, plan_reads
from edge.modbus.profiles import Function, Profile, RegisterField

log = logging.getLogger(__name__)

# At most this many polls are skipped between two attempts on a device that keeps failing (5 min at 10 s).
MAX_SKIPPED_POLLS = 30

Raw = dict[str, list[int] | None]


@dataclass(frozen=True)
class RegisterMap:
    """The fields of one device and the requests that read them."""

    fields: tuple[RegisterField, ...]
    published: tuple[str, ...]
    plan: tuple[ReadBlock, ...]
    identity_plan: tuple[ReadBlock, ...]

    @classmethod
    def build(cls, profile: Profile, fields: Sequence[RegisterField]) -> RegisterMap:
        """Plan the reads of ``fields`` within the profile's limits; identity fields get their own plan."""

        def plan(chosen: list[RegisterField]) -> tuple[ReadBlock, ...]:
            return tuple(
                plan_reads(
                    chosen, profile.max_registers_per_request, profile.max_gap_registers, profile.unreadable
                )
            )

        return cls(
            fields=tuple(fields),
            published=tuple(profile.published),
            plan=plan([f for f in fields if not f.identity]),
            identity_plan=plan([f for f in fields if f.identity]),
        )


@dataclass(frozen=True)
class Refusal:
    """A request the device answered with a Modbus exception."""

    function: Function
    address: int
    count: int
    exception_code: int


@dataclass
class PollResult:
    """What one poll of one device found."""

    # The published quantities; None when the device did not match its profile and nothing can be published.
    values: dict[str, float | None] | None
    refusals: list[Refusal] = field(default_factory=list)
    # Quantities whose value was garbage (outside its plausible range, not a number): published as null.
    implausible: list[str] = field(default_factory=list)
    # Why the device does not match its profile (no SunSpec marker, a moved map), if it does not.
    mismatch: str | None = None
    # The slowest answer of the poll, and the timeout it had [s].
    slowest_s: float = 0.0
    timeout_s: float = 1.0
    # The identity read in this poll (serial number, model), if it was read.
    identity: dict[str, str] | None = None
    # (before, now) when the identity changed: the device was replaced.
    replaced: tuple[str, str] | None = None


class DevicePoller:
    """Polls one device of a site by its profile; `DeviceUnreachable` propagates from the link."""

    def __init__(self, device: Device, profile: Profile, link: DeviceLink) -> None:
        self.device = device
        self.profile = profile
        self.link = link
        self.register_map: RegisterMap | None = (
            RegisterMap.build(profile, profile.fields) if profile.sunspec is None else None
        )
        self.identity: dict[str, str] | None = None
        self._polls_since_identity = 0
        self._identity_due = True
        self._failures = 0
        self._skip = 0
        self._connections_seen = 0

    @property
    def plan(self) -> list[ReadBlock]:
        """The requests of one poll (empty until a SunSpec device has been discovered)."""
        return list(self.register_map.plan) if self.register_map else []

    async def poll(self) -> PollResult:
        """One reading of every published field; `DeviceUnreachable` if the device did not answer."""
        if self._skip > 0:
            self._skip -= 1
            raise DeviceUnreachable(f"backing off after {self._failures} failed polls")
        try:
            async with self.link.session():
                result = await self._poll()
        except DeviceUnreachable:
            self._failed()
            raise
        self._failures = 0
        return result

    def _failed(self) -> None:
        self._failures += 1
        # After a failure the device may have been power-cycled or replaced: read its identity again.
        self._identity_due = True
        if self._failures >= 2:
            self._skip = min(2 ** (self._failures - 2), MAX_SKIPPED_POLLS)

    async def _poll(self) -> PollResult:
        register_map = self.register_map
        if register_map is None:
            found = await self._discover()
            if isinstance(found, str):
                return PollResult(values=None, mismatch=found)
            register_map = self.register_map = found
        raw, refusals, slowest = await self._read(register_map.plan)
        mismatch = _map_mismatch(register_map, raw)
        if mismatch is not None:
            if self.profile.sunspec is not None:
                self.register_map = None  # discover again at the next poll
            return PollResult(values=None, refusals=refusals, mismatch=mismatch, slowest_s=slowest)
        values, implausible = decode_fields(register_map, raw)
        result = PollResult(
            values, refusals, implausible, slowest_s=slowest, timeout_s=self.link.settings.timeout_s
        )
        if not implausible:  # garbage in the values would be garbage in the serial number too
            await self._check_identity(register_map, result)
        return result

    async def _discover(self) -> RegisterMap | str:
        """The device's SunSpec map as register fields, or why it cannot be used."""
        section = self.profile.sunspec
        assert section is not None

        async def read(address: int, count: int) -> list[int] | None:
            answer = await self.link.read(Function.HOLDING, address, count, self.device.unit)
            return None if isinstance(answer, DeviceRefusal) else answer

        try:
            found = await sunspec.discover(read, section.base_addresses)
            if found is None:
                addresses = ", ".join(str(base) for base in section.base_addresses)
                return f"no SunSpec marker at {addresses}"
            fields = sunspec.poll_fields(found, section)
        except sunspec.SunSpecError as error:
            return str(error)
        models = ", ".join(str(model.model_id) for model in found.models)
        log.info("%s: SunSpec map at %d with models %s", self.device.id, found.base, models)
        self._identity_due = True
        return RegisterMap.build(self.profile, fields)

    async def _read(self, plan: Sequence[ReadBlock]) -> tuple[Raw, list[Refusal], float]:
        raw: Raw = {}
        refusals: list[Refusal] = []
        slowest = 0.0
        for block in plan:
            answer = await self.link.read(block.function, block.address, block.count, self.device.unit)
            slowest = max(slowest, self.link.last_answer_s)
            if isinstance(answer, DeviceRefusal):
                refusals.append(Refusal(block.function, block.address, block.count, answer.exception_code))
            for item in block.fields:
                offset = item.address - block.address
                raw[item.name] = (
                    None if isinstance(answer, DeviceRefusal) else answer[offset : offset + item.registers]
                )
        return raw, refusals, slowest

    async def _check_identity(self, register_map: RegisterMap, result: PollResult) -> None:
        self._polls_since_identity += 1
        # A new connection may lead to a new device (a gateway keeps answering while the device behind it is
        # swapped); unless the link closes after every poll, read the identity again after a reconnection.
        reconnected = (
            self.link.connections != self._connections_seen and not self.link.settings.close_after_poll
        )
        self._connections_seen = self.link.connections
        due = (
            self._identity_due
            or reconnected
            or self._polls_since_identity >= self.profile.identity_every_polls
        )
        if not register_map.identity_plan or not due:
            return
        raw, _, _ = await self._read(register_map.identity_plan)
        identity = {
            item.name: text
            for item in register_map.fields
            if item.identity and (text := _identity_text(item, raw.get(item.name))) is not None
        }
        self._identity_due = False
        self._polls_since_identity = 0
        if not identity:
            return
        result.identity = identity
        if self.identity is not None and identity != self.identity:
            result.replaced = (describe_identity(self.identity), describe_identity(identity))
        self.identity = identity


def decode_fields(register_map: RegisterMap, raw: Raw) -> tuple[dict[str, float | None], list[str]]:
    """The published quantities from their raw registers, with scale factors and sentinels applied, and the
    quantities whose registers held garbage (a value out of its plausible range or not a number)."""
    by_name = {item.name: item for item in register_map.fields}
    values: dict[str, float | None] = dict.fromkeys(register_map.published)
    implausible: list[str] = []
    for name in register_map.published:
        item = by_name.get(name)
        if item is None:
            continue  # a SunSpec model without this point
        number = _number(item, raw.get(name))
        power_of_ten = 0
        if number is not None and item.scale_factor is not None:
            factor = _number(by_name[item.scale_factor], raw.get(item.scale_factor))
            if factor is None or not -10 <= factor <= 10:  # SunSpec scale factors lie in -10..10
                implausible += [name] if factor is not None else []
                number = None
            else:
                power_of_ten = int(factor)
        value = None if number is None else scaled(number, item.scale, power_of_ten)
        if number is not None and (value is None or not _plausible(item, value)):
            implausible.append(name)
            value = None
        values[name] = value
    return values, implausible


def _plausible(item: RegisterField, value: float) -> bool:
    if not math.isfinite(value):
        return False
    if item.valid_min is not None and value < item.valid_min:
        return False
    return item.valid_max is None or value <= item.valid_max


def _number(item: RegisterField, registers: list[int] | None) -> float | None:
    """The raw number in a field's registers; None when missing or "not implemented"."""
    if registers is None or item.type is DataType.STRING:
        return None
    if item.not_implemented is not None and (
        raw_unsigned(registers, item.word_order, item.byte_order) == item.not_implemented
    ):
        return None
    value = decode(registers, item.type, item.word_order, item.byte_order)
    return None if isinstance(value, str) else float(value)


def _map_mismatch(register_map: RegisterMap, raw: Raw) -> str | None:
    """Why the registers read do not belong to the expected map (a field with ``expect`` that differs)."""
    for item in register_map.fields:
        registers = raw.get(item.name)
        if item.expect is None or registers is None:
            continue
        found = raw_unsigned(registers, item.word_order, item.byte_order)
        if found != item.expect:
            return f"register {item.address} holds {found}, not {item.expect} ({item.name})"
    return None


def _identity_text(item: RegisterField, registers: list[int] | None) -> str | None:
    if registers is None:
        return None
    if item.type is DataType.STRING:
        text = str(decode(registers, item.type, item.word_order, item.byte_order))
        return text or None
    number = _number(item, registers)
    return None if number is None else f"{number:g}"


def describe_identity(identity: dict[str, str]) -> str:
    """A device's identity for people: its identity fields in order, e.g. ``Huawei SUN2000-50KTL SN123``."""
    return " ".join(identity.values())
