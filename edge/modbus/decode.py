"""Registers to values and back, driven by a data type, a word order and a byte order.

A Modbus register is 16 bits. Values wider than one register are spread over consecutive registers, and
devices disagree on the order: ``word_order`` says whether the first register holds the most significant
word ("big", as SunSpec and Eastron do) or the least ("little"); ``byte_order`` says whether each register's
high byte comes first ("big", the Modbus standard) or is swapped ("little"). One function decodes for every
device; no code is specific to a brand.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Literal

Order = Literal["big", "little"]


class DataType(StrEnum):
    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    U64 = "u64"
    S64 = "s64"
    F32 = "f32"
    F64 = "f64"
    STRING = "string"


# struct format (big-endian) and width in registers of each numeric type.
_FORMATS: dict[DataType, tuple[str, int]] = {
    DataType.U16: (">H", 1),
    DataType.S16: (">h", 1),
    DataType.U32: (">I", 2),
    DataType.S32: (">i", 2),
    DataType.U64: (">Q", 4),
    DataType.S64: (">q", 4),
    DataType.F32: (">f", 2),
    DataType.F64: (">d", 4),
}


def register_count(data_type: DataType, string_registers: int = 0) -> int:
    """How many registers a value of this type occupies (a string's length is given)."""
    if data_type is DataType.STRING:
        return string_registers
    return _FORMATS[data_type][1]


def _ordered_bytes(registers: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    """The value's bytes in big-endian order, whatever order the device sent them in."""
    words = list(registers) if word_order == "big" else list(reversed(registers))
    raw = b"".join(word.to_bytes(2, "big") for word in words)
    if byte_order == "little":
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    return raw


def _registers_from_bytes(raw: bytes, word_order: Order, byte_order: Order) -> list[int]:
    if byte_order == "little":
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return words if word_order == "big" else list(reversed(words))


def raw_unsigned(registers: Sequence[int], word_order: Order = "big", byte_order: Order = "big") -> int:
    """The registers as one unsigned integer, most significant word first: how sentinels are compared."""
    return int.from_bytes(_ordered_bytes(registers, word_order, byte_order), "big")


def decode(
    registers: Sequence[int],
    data_type: DataType,
    word_order: Order = "big",
    byte_order: Order = "big",
) -> int | float | str:
    """Decode the registers of one value.

    Parameters
    ----------
    registers : sequence of int
        Exactly the registers of the value, each 0..65535, in the order the device returned them.
    data_type : DataType
    word_order, byte_order : {"big", "little"}

    Returns
    -------
    int, float or str
        Strings are decoded as UTF-8 (invalid bytes replaced) up to the first NUL, trailing spaces removed.
    """
    if any(not 0 <= word <= 0xFFFF for word in registers):
        raise ValueError("a register holds 16 bits (0..65535)")
    raw = _ordered_bytes(registers, word_order, byte_order)
    if data_type is DataType.STRING:
        return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").rstrip()
    fmt, width = _FORMATS[data_type]
    if len(registers) != width:
        raise ValueError(f"{data_type.value} needs {width} registers, got {len(registers)}")
    value: int | float = struct.unpack(fmt, raw)[0]
    return value


def encode(
    value: int | float | str,
    data_type: DataType,
    word_order: Order = "big",
    byte_order: Order = "big",
    string_registers: int = 0,
) -> list[int]:
    """The registers that hold ``value``: the inverse of `decode` (simulators and tests use it)."""
    if data_type is DataType.STRING:
        encoded = str(value).encode()
        size = string_registers * 2
        if len(encoded) > size:
            raise ValueError(f"string of {len(encoded)} bytes does not fit {string_registers} registers")
        raw = encoded.ljust(size, b"\0")
    else:
        fmt, _ = _FORMATS[data_type]
        raw = struct.pack(fmt, value)
    return _registers_from_bytes(raw, word_order, byte_order)


def scaled(raw_value: int | float, scale: float = 1.0, power_of_ten: int = 0) -> float | None:
    """A decoded number times ``scale × 10^power_of_ten``; None when the result is not a finite number."""
    value = float(raw_value) * scale
    if scale != 1.0:
        # A gain of 0.1 is exact for people but not in binary: 423 × 0.1 is 42.300000000000004.
        value = float(f"{value:.12g}")
    try:
        # Dividing by a power of ten rounds as people write: 428 × 10^-1 is 42.8, not 42.80000000000001.
        value = value * 10.0**power_of_ten if power_of_ten >= 0 else value / 10.0**-power_of_ten
    except OverflowError:  # a garbage scale factor such as 10^32767
        return None
    return value if math.isfinite(value) else None
