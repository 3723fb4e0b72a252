"""Encoding values into 16-bit Modbus registers, big-endian words as SunSpec and Eastron use them."""

from __future__ import annotations

import math
import struct

INT16_NOT_IMPLEMENTED = 0x8000
UINT16_NOT_IMPLEMENTED = 0xFFFF
UINT32_NOT_IMPLEMENTED = 0xFFFFFFFF


def int16(value: float) -> int:
    """A signed 16-bit register (two's complement) of `value` rounded; raises if it does not fit."""
    number = round(value)
    if not -0x8000 <= number <= 0x7FFF:
        raise OverflowError(f"{value} does not fit in int16")
    return number & 0xFFFF


def uint16(value: float) -> int:
    """An unsigned 16-bit register of `value` rounded; raises if it does not fit."""
    number = round(value)
    if not 0 <= number <= 0xFFFF:
        raise OverflowError(f"{value} does not fit in uint16")
    return number


def uint32(value: int) -> list[int]:
    """Two registers, high word first."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise OverflowError(f"{value} does not fit in uint32")
    return [value >> 16, value & 0xFFFF]


def float32(value: float) -> list[int]:
    """Two registers of an IEEE 754 single, high word first; NaN for a value that cannot be shown."""
    if not math.isfinite(value):
        value = math.nan
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def string(text: str, registers: int) -> list[int]:
    """`registers` registers of ASCII text, two characters each, padded with NUL."""
    raw = text.encode("ascii")
    if len(raw) > 2 * registers:
        raise OverflowError(f"{text!r} is longer than {2 * registers} characters")
    raw = raw.ljust(2 * registers, b"\0")
    return list(struct.unpack(f">{registers}H", raw))


def scaled(value: float, scale_factor: int) -> float:
    """The raw number a device sends for `value` with a SunSpec scale factor: value / 10^sf."""
    return value / 10.0**scale_factor


def int32(value: float) -> list[int]:
    """Two registers of a signed 32-bit value rounded (two's complement), high word first."""
    number = round(value)
    if not -0x80000000 <= number <= 0x7FFFFFFF:
        raise OverflowError(f"{value} does not fit in int32")
    return uint32(number & 0xFFFFFFFF)
