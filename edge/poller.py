"""Reading one device: the profile's read plan executed over a link and the registers decoded into values."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from common.sites import Device
from edge.modbus.decode import DataType, decode, raw_unsigned, scaled
from edge.modbus.link import DeviceLink, DeviceRefusal
from edge.modbus.plan import ReadBlock, plan_reads
from edge.modbus.profiles import Profile, RegisterField

log = logging.getLogger(__name__)


@dataclass
class DevicePoller:
    """Polls one device of a site by its profile; `DeviceUnreachable` propagates from the link."""

    device: Device
    profile: Profile
    link: DeviceLink

    def __post_init__(self) -> None:
        self.plan: list[ReadBlock] = plan_reads(
            self.profile.fields,
            self.profile.max_registers_per_request,
            self.profile.max_gap_registers,
            self.profile.unreadable,
        )

    async def poll(self) -> dict[str, float | None]:
        """One reading of every published field; None where the device lacks it or refused the request."""
        raw: dict[str, list[int] | None] = {}
        for block in self.plan:
            answer = await self.link.read(block.function, block.address, block.count, self.device.unit)
            if isinstance(answer, DeviceRefusal):
                log.warning(
                    "%s refused registers %d..%d with Modbus exception %d",
                    self.device.id,
                    block.address,
                    block.address + block.count - 1,
                    answer.exception_code,
                )
            for field in block.fields:
                offset = field.address - block.address
                raw[field.name] = (
                    None if isinstance(answer, DeviceRefusal) else answer[offset : offset + field.registers]
                )
        return decode_fields(self.profile, raw)


def decode_fields(profile: Profile, raw: dict[str, list[int] | None]) -> dict[str, float | None]:
    """Decode a profile's published fields from their raw registers, applying scale factors and sentinels."""
    by_name = {field.name: field for field in profile.fields}
    factor_names = {field.scale_factor for field in profile.fields if field.scale_factor is not None}
    factors = {name: _number(by_name[name], raw.get(name)) for name in factor_names}
    values: dict[str, float | None] = {}
    for field in profile.published:
        number = _number(field, raw.get(field.name))
        power_of_ten = 0
        if field.scale_factor is not None:
            factor = factors.get(field.scale_factor)
            if factor is None:
                number = None
            else:
                power_of_ten = int(factor)
        values[field.name] = None if number is None else scaled(number, field.scale, power_of_ten)
    return values


def _number(field: RegisterField, registers: list[int] | None) -> float | None:
    if registers is None or field.type is DataType.STRING:
        return None
    if field.not_implemented is not None and raw_unsigned(registers, field.word_order, field.byte_order) == (
        field.not_implemented
    ):
        return None
    value = decode(registers, field.type, field.word_order, field.byte_order)
    return None if isinstance(value, str) else float(value)
