"""Decoding a profile's fields: for every register type, word and byte order, scale and scale factor, a value
encoded into registers decodes back to itself; and random register contents never crash a decoder."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.modbus import sunspec
from edge.modbus.decode import DataType, encode, register_count
from edge.modbus.profiles import Function, RegisterField
from edge.poller import RegisterMap, decode_fields

ORDERS = st.sampled_from(["big", "little"])
NUMERIC = [t for t in DataType if t is not DataType.STRING]
BOUNDS: dict[DataType, tuple[int, int]] = {
    DataType.U16: (0, 2**16 - 1),
    DataType.S16: (-(2**15), 2**15 - 1),
    DataType.U32: (0, 2**32 - 1),
    DataType.S32: (-(2**31), 2**31 - 1),
    DataType.U64: (0, 2**53),  # beyond 2^53 a float (the wire's number) no longer holds every integer
    DataType.S64: (-(2**53), 2**53),
}


def register_map(*fields: RegisterField) -> RegisterMap:
    published = tuple(f.name for f in fields if f.publish)
    return RegisterMap(fields=fields, published=published, plan=(), identity_plan=())


@st.composite
def raw_values(draw: st.DrawFn, data_type: DataType) -> int | float:
    if data_type is DataType.F32:
        return float(draw(st.floats(width=32, allow_nan=False, allow_infinity=False)))
    if data_type is DataType.F64:
        return float(
            draw(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
        )
    low, high = BOUNDS[data_type]
    return int(draw(st.integers(low, high)))


@given(
    st.data(),
    st.sampled_from(NUMERIC),
    ORDERS,
    ORDERS,
    st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0, 1000.0]),
)
def test_every_type_order_and_scale_round_trips(
    data: st.DataObject, data_type: DataType, word_order: Any, byte_order: Any, scale: float
) -> None:
    raw = data.draw(raw_values(data_type))
    field = RegisterField(
        name="value", address=0, type=data_type, word_order=word_order, byte_order=byte_order, scale=scale
    )
    registers = encode(raw, data_type, word_order, byte_order)
    assert len(registers) == register_count(data_type)
    values, implausible = decode_fields(register_map(field), {"value": registers})
    expected = raw * scale
    if math.isfinite(expected):
        assert values["value"] == pytest.approx(expected, rel=1e-11, abs=1e-300)
        assert implausible == []
    else:  # a float64 near its limit times 1000 is no number
        assert values["value"] is None


@given(
    st.data(), st.sampled_from([DataType.S16, DataType.U16, DataType.S32, DataType.U32]), st.integers(-10, 10)
)
def test_sunspec_scale_factors_round_trip(data: st.DataObject, data_type: DataType, power: int) -> None:
    raw = data.draw(raw_values(data_type))
    field = RegisterField(name="power_w", address=0, type=data_type, scale_factor="w_sf")
    factor = RegisterField(name="w_sf", address=2, type=DataType.S16, publish=False, not_implemented=0x8000)
    registers = {"power_w": encode(raw, data_type), "w_sf": encode(power, DataType.S16)}
    values, implausible = decode_fields(register_map(field, factor), registers)
    assert values["power_w"] == pytest.approx(raw * 10.0**power, rel=1e-11)
    assert implausible == []


@given(st.sampled_from(NUMERIC), ORDERS, ORDERS)
def test_the_not_implemented_value_decodes_to_none(
    data_type: DataType, word_order: Any, byte_order: Any
) -> None:
    width = register_count(data_type)
    # SunSpec's sentinels: the lowest value of a signed type, the highest of an unsigned one.
    sentinel = (1 << (16 * width - 1)) if data_type.value.startswith("s") else (1 << (16 * width)) - 1
    field = RegisterField(
        name="value",
        address=0,
        type=data_type,
        word_order=word_order,
        byte_order=byte_order,
        not_implemented=sentinel,
    )
    # The sentinel's words in the device's order, as the device sends them.
    registers = encode(sentinel, _unsigned(width), word_order, byte_order)
    values, implausible = decode_fields(register_map(field), {"value": registers})
    assert values == {"value": None} and implausible == []


def _unsigned(width: int) -> DataType:
    return {1: DataType.U16, 2: DataType.U32, 4: DataType.U64}[width]


field_strategy = st.builds(
    RegisterField,
    name=st.just("value"),
    address=st.just(0),
    type=st.sampled_from(NUMERIC),
    word_order=ORDERS,
    byte_order=ORDERS,
    scale=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    valid_min=st.none() | st.floats(allow_nan=False, max_value=0),
    valid_max=st.none() | st.floats(allow_nan=False, min_value=0),
    not_implemented=st.none() | st.integers(0, 2**16 - 1),
)


@given(field_strategy, st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4), st.integers(0, 0xFFFF))
def test_random_registers_never_crash_the_field_decoder(
    field: RegisterField, words: list[int], sf: int
) -> None:
    scaled_field = field.model_copy(update={"scale_factor": "sf"})
    factor = RegisterField(name="sf", address=9, type=DataType.S16, publish=False)
    raw = {"value": words[: field.registers], "sf": [sf]}
    for chosen in (register_map(field), register_map(scaled_field, factor)):
        values, implausible = decode_fields(chosen, raw)
        value = values["value"]
        assert value is None or math.isfinite(value)
        assert set(implausible) <= {"value"}
        if value is not None:
            assert field.valid_min is None or value >= field.valid_min
            assert field.valid_max is None or value <= field.valid_max


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sunspec.known_model_ids()), st.data())
def test_random_registers_never_crash_the_sunspec_decoder(model_id: int, data: st.DataObject) -> None:
    definition = sunspec.model_definition(model_id)
    assert definition is not None
    length = data.draw(st.integers(0, 300))
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=length + 2, max_size=length + 2))
    for point in sunspec.decode_model(definition, words):
        assert point.value is None or isinstance(point.value, int | str) or math.isfinite(point.value)


def test_a_function_is_its_function_code() -> None:
    assert (Function.HOLDING.code, Function.INPUT.code) == (3, 4)
