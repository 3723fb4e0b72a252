"""Which Modbus requests one poll needs: the registers merged into the fewest requests a device allows.

Fields of one function are sorted by address and merged into a block while the block stays within the
device's maximum per request, the gap bridged stays within its maximum, and the block does not touch
registers the device refuses to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.modbus.profiles import AddressRange, Function, RegisterField


@dataclass(frozen=True)
class ReadBlock:
    """One read request and the fields it carries."""

    function: Function
    address: int
    count: int
    fields: tuple[RegisterField, ...]


def plan_reads(
    fields: Iterable[RegisterField],
    max_registers: int,
    max_gap: int,
    unreadable: Sequence[AddressRange] = (),
) -> list[ReadBlock]:
    """Merge fields into read blocks; see the module docstring for the rules."""
    blocks: list[ReadBlock] = []
    by_function: dict[Function, list[RegisterField]] = {}
    for field in fields:
        by_function.setdefault(field.function, []).append(field)
    for function in sorted(by_function):
        ordered = sorted(by_function[function], key=lambda f: (f.address, f.end))
        blocked = [r for r in unreadable if r.function == function]
        current: list[RegisterField] = []
        start = end = 0
        for field in ordered:
            if current and _can_extend(start, end, field, max_registers, max_gap, blocked):
                current.append(field)
                end = max(end, field.end)
                continue
            if current:
                blocks.append(ReadBlock(function, start, end - start, tuple(current)))
            current, start, end = [field], field.address, field.end
        if current:
            blocks.append(ReadBlock(function, start, end - start, tuple(current)))
    return blocks


def _can_extend(
    start: int,
    end: int,
    field: RegisterField,
    max_registers: int,
    max_gap: int,
    blocked: Sequence[AddressRange],
) -> bool:
    new_end = max(end, field.end)
    if field.address - end > max_gap or new_end - start > max_registers:
        return False
    return not any(r.start < new_end and start < r.end for r in blocked)
