"""Register decoding: every type and order round-trips, and no register content crashes the decoder."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.modbus.decode import DataType, decode, encode, raw_unsigned, register_count, scaled

orders = st.sampled_from(["big", "little"])
INTEGER_RANGES = {
    DataType.U16: (0, 2**16 - 1),
    DataType.S16: (-(2**15), 2**15 - 1),
    DataType.U32: (0, 2**32 - 1),
    DataType.S32: (-(2**31), 2**31 - 1),
    DataType.U64: (0, 2**64 - 1),
    DataType.S64: (-(2**63), 2**63 - 1),
}


@given(st.data(), orders, orders)
def test_integers_round_trip(data: st.DataObject, word_order: str, byte_order: str) -> None:
    data_type = data.draw(st.sampled_from(sorted(INTEGER_RANGES)))
    low, high = INTEGER_RANGES[data_type]
    value = data.draw(st.integers(low, high))
    registers = encode(value, data_type, word_order, byte_order)  # type: ignore[arg-type]
    assert len(registers) == register_count(data_type)
    assert all(0 <= word <= 0xFFFF for word in registers)
    assert decode(registers, data_type, word_order, byte_order) == value  # type: ignore[arg-type]


@given(st.floats(width=32, allow_nan=False), orders, orders)
def test_float32_round_trips(value: float, word_order: str, byte_order: str) -> None:
    registers = encode(value, DataType.F32, word_order, byte_order)  # type: ignore[arg-type]
    assert decode(registers, DataType.F32, word_order, byte_order) == value  # type: ignore[arg-type]


@given(st.floats(allow_nan=False), orders, orders)
def test_float64_round_trips(value: float, word_order: str, byte_order: str) -> None:
    registers = encode(value, DataType.F64, word_order, byte_order)  # type: ignore[arg-type]
    assert decode(registers, DataType.F64, word_order, byte_order) == value  # type: ignore[arg-type]


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x17F), max_size=10), orders, orders)
def test_strings_round_trip(text: str, word_order: str, byte_order: str) -> None:
    text = text.rstrip()
    registers = encode(text, DataType.STRING, word_order, byte_order, string_registers=16)  # type: ignore[arg-type]
    assert decode(registers, DataType.STRING, word_order, byte_order) == text  # type: ignore[arg-type]


@given(
    st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4), st.sampled_from(list(DataType)), orders, orders
)
def test_random_registers_never_crash(
    registers: list[int], data_type: DataType, word_order: str, byte_order: str
) -> None:
    width = register_count(data_type, 4)
    value = decode(registers[:width], data_type, word_order, byte_order)  # type: ignore[arg-type]
    if isinstance(value, float):
        assert scaled(value) is None or math.isfinite(scaled(value) or 0.0)


def test_word_order_matters_as_devices_say() -> None:
    # 0x00010002 big-endian words: first register is the high word.
    assert decode([0x0001, 0x0002], DataType.U32, "big") == 0x00010002
    assert decode([0x0001, 0x0002], DataType.U32, "little") == 0x00020001
    assert decode([0x0102], DataType.U16, "big", "little") == 0x0201


def test_sentinels_compare_on_raw_bits() -> None:
    assert raw_unsigned([0x8000]) == 0x8000
    assert raw_unsigned([0xFFFF, 0xFFFF]) == 0xFFFFFFFF


def test_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], DataType.U32)
    with pytest.raises(ValueError, match="16 bits"):
        decode([70000], DataType.U16)


@given(st.integers(-(2**15), 2**15 - 1), st.integers(-10, 10))
def test_scale_factor_is_a_power_of_ten(raw: int, power: int) -> None:
    result = scaled(raw, 1.0, power)
    assert result is not None
    assert result == pytest.approx(raw * 10.0**power)
