"""SunSpec discovery and decoding from the SunSpec Alliance's model definitions, on register images."""

from __future__ import annotations

import asyncio
import struct

import pytest

from edge.modbus import sunspec
from edge.modbus.decode import DataType
from edge.modbus.profiles import SunSpecPoint, SunSpecSection
from edge.poller import RegisterMap, decode_fields

SUNS = [0x5375, 0x6E53]


def image_of(base: int, *models: list[int], end_length: bool = True) -> dict[int, int]:
    """A device's holding registers: the marker at ``base``, then the models, then the end marker."""
    words = [*SUNS]
    for model in models:
        words += model
    words += [0xFFFF, 0] if end_length else [0xFFFF]
    return {base + index: word for index, word in enumerate(words)}


def reader(image: dict[int, int]) -> sunspec.Reader:
    async def read(address: int, count: int) -> list[int] | None:
        if all(address + index in image for index in range(count)):
            return [image[address + index] for index in range(count)]
        return None  # an illegal address, as a device answers with exception 2

    return read


def model(model_id: int, values: dict[str, int | float | str], length: int | None = None) -> list[int]:
    definition = sunspec.model_definition(model_id)
    assert definition is not None
    size = length if length is not None else definition.group.points_size - 2
    return sunspec.encode_model(definition, values, size)


def common(serial: str = "SN-1") -> list[int]:
    return model(1, {"Mn": "Acme", "Md": "PV-10", "SN": serial, "DA": 1})


@pytest.mark.parametrize("base", [40000, 0, 50000])
def test_the_marker_is_found_at_each_base_and_the_chain_walked_to_the_end(base: int) -> None:
    inverter = model(103, {"W": 1234, "W_SF": 0})
    found = asyncio.run(sunspec.discover(reader(image_of(base, common(), inverter))))
    assert found is not None and found.base == base
    assert [(m.model_id, m.address, m.length) for m in found.models] == [
        (1, base + 2, 66),
        (103, base + 70, 50),
    ]


def test_an_end_marker_without_length_ends_the_chain() -> None:
    found = asyncio.run(sunspec.discover(reader(image_of(40000, common(), end_length=False))))
    assert found is not None and [m.model_id for m in found.models] == [1]


def test_no_marker_is_no_sunspec_device() -> None:
    assert asyncio.run(sunspec.discover(reader({i: 0 for i in range(40000, 40010)}))) is None


def test_a_broken_chain_is_an_error_not_a_hang() -> None:
    image = image_of(40000, common())
    del image[40070]  # the end marker is gone: the chain runs into unreadable registers
    with pytest.raises(sunspec.SunSpecError, match="breaks at register 40070"):
        asyncio.run(sunspec.discover(reader(image)))
    garbage = {40000 + i: word for i, word in enumerate([*SUNS, 7, 65000])}
    with pytest.raises(sunspec.SunSpecError):
        asyncio.run(sunspec.discover(reader(garbage)))


def test_unknown_models_are_walked_over() -> None:
    vendor = [64999, 4, 1, 2, 3, 4]
    found = asyncio.run(sunspec.discover(reader(image_of(40000, common(), vendor, model(103, {})))))
    assert found is not None and [m.model_id for m in found.models] == [1, 64999, 103]
    assert sunspec.model_definition(64999) is None


def test_every_shipped_definition_loads_with_consistent_sizes() -> None:
    ids = sunspec.known_model_ids()
    assert {1, 101, 103, 111, 113, 160, 203, 213, 701} <= set(ids)
    for model_id in ids:
        definition = sunspec.model_definition(model_id)
        assert definition is not None and definition.id == model_id
        assert [p.name for p in definition.group.points[:2]] == ["ID", "L"]
        offsets = [p.offset for p in definition.group.points]
        assert offsets == sorted(offsets)


@pytest.mark.parametrize(
    ("point_type", "size", "sentinel"),
    [
        ("int16", 1, 0x8000),
        ("sunssf", 1, 0x8000),
        ("uint16", 1, 0xFFFF),
        ("enum16", 1, 0xFFFF),
        ("bitfield16", 1, 0xFFFF),
        ("acc16", 1, 0),
        ("int32", 2, 0x80000000),
        ("uint32", 2, 0xFFFFFFFF),
        ("acc32", 2, 0),
        ("bitfield32", 2, 0xFFFFFFFF),
        ("int64", 4, 0x8000000000000000),
        ("uint64", 4, 0xFFFFFFFFFFFFFFFF),
        ("acc64", 4, 0),
        ("float32", 2, 0x7FC00000),
    ],
)
def test_not_implemented_values_follow_the_specification(point_type: str, size: int, sentinel: int) -> None:
    assert sunspec.not_implemented_value(point_type, size) == sentinel


def test_a_model_decodes_with_scale_factors_sentinels_and_symbols() -> None:
    definition = sunspec.model_definition(103)
    assert definition is not None
    values: dict[str, int | float | str] = {
        "W": 2941,
        "W_SF": 1,
        "PhVphA": 2291,
        "V_SF": -1,
        "St": 4,
        "Evt1": 0b101,
    }
    points = {
        p.path: p for p in sunspec.decode_model(definition, sunspec.encode_model(definition, values, 50))
    }
    assert points["W"].value == 29410.0 and points["W"].units == "W"
    assert points["PhVphA"].value == 229.1
    assert points["St"].meaning == "MPPT"
    assert points["Evt1"].meaning == "GROUND_FAULT, AC_DISCONNECT"
    assert points["TmpTrns"].value is None, "int16 0x8000: not implemented"
    assert points["A"].value is None, "A_SF not implemented: no value"


def test_repeating_groups_expand_to_the_model_length() -> None:
    definition = sunspec.model_definition(160)
    assert definition is not None
    fixed = definition.group.points_size
    module = sunspec.model_definition(160).group.groups[0]  # type: ignore[union-attr]
    length = fixed - 2 + 2 * module.points_size
    words = sunspec.encode_model(definition, {"DCA_SF": -2, "N": 2}, length)
    points = sunspec.decode_model(definition, words)
    assert sum(p.path.endswith(".DCA") for p in points) == 2
    assert any(p.path == "module[2].DCV" for p in points)


def section(*models: int) -> SunSpecSection:
    return SunSpecSection(
        models=list(models),
        points={
            "power_w": SunSpecPoint(point="W"),
            "energy_wh": SunSpecPoint(point="WH"),
            "voltage_l2_v": SunSpecPoint(point="PhVphB"),
        },
    )


def read_fields(image: dict[int, int], register_map: RegisterMap) -> dict[str, list[int] | None]:
    return {f.name: [image[f.address + i] for i in range(f.registers)] for f in register_map.fields}


def test_poll_fields_read_an_integer_model_through_its_scale_factors() -> None:
    from edge.modbus.profiles import Profile

    inverter = model(103, {"W": 2941, "W_SF": 1, "WH": 1_000_000, "WH_SF": 0, "PhVphB": 2300, "V_SF": -1})
    image = image_of(40000, common(), inverter)
    found = asyncio.run(sunspec.discover(reader(image)))
    assert found is not None
    chosen = section(103, 113)
    fields = sunspec.poll_fields(found, chosen)
    profile = Profile(name="p", description="d", kind="pv_inverter", source="s", sunspec=chosen)
    register_map = RegisterMap.build(profile, fields)
    assert len(register_map.plan) == 1, "the model's points and its id fit one request"
    assert [f.name for f in register_map.fields if f.identity] == ["id_mn", "id_md", "id_sn"]
    values, implausible = decode_fields(register_map, read_fields(image, register_map))
    assert values == {"power_w": 29410.0, "energy_wh": 1_000_000.0, "voltage_l2_v": 230.0}
    assert implausible == []


def test_a_float_model_and_a_single_phase_model() -> None:
    from edge.modbus.profiles import Profile

    floats = model(113, {"W": 1234.5, "WH": 5e6, "PhVphB": 231.5})
    single = model(101, {"W": 500, "W_SF": 0, "WH": 7, "WH_SF": 3})
    profile = Profile(
        name="p", description="d", kind="pv_inverter", source="s", sunspec=section(103, 113, 101)
    )
    for inverter, expected in (
        (floats, {"power_w": 1234.5, "energy_wh": 5e6, "voltage_l2_v": 231.5}),
        (single, {"power_w": 500.0, "energy_wh": 7000.0, "voltage_l2_v": None}),
    ):
        image = image_of(40000, common(), inverter)
        found = asyncio.run(sunspec.discover(reader(image)))
        assert found is not None
        register_map = RegisterMap.build(profile, sunspec.poll_fields(found, profile.sunspec))  # type: ignore[arg-type]
        assert decode_fields(register_map, read_fields(image, register_map))[0] == expected


def test_a_device_without_the_profiles_models_is_refused() -> None:
    found = asyncio.run(sunspec.discover(reader(image_of(40000, common(), model(203, {}, 105)))))
    assert found is not None
    with pytest.raises(sunspec.SunSpecError, match="models 1, 203, none of those the profile reads"):
        sunspec.poll_fields(found, section(103))


def test_model_ids_are_checked_on_every_poll() -> None:
    found = asyncio.run(sunspec.discover(reader(image_of(40000, common(), model(103, {})))))
    assert found is not None
    checks = [f for f in sunspec.poll_fields(found, section(103)) if f.expect is not None]
    assert [(f.address, f.expect, f.type) for f in checks] == [
        (40070, 103, DataType.U16),
        (40071, 50, DataType.U16),
    ]


def test_strings_decode_up_to_the_first_nul() -> None:
    definition = sunspec.model_definition(1)
    assert definition is not None
    words = sunspec.encode_model(definition, {"Mn": "Fronius"}, 66)
    decoded = {p.path: p.value for p in sunspec.decode_model(definition, words)}
    assert decoded["Mn"] == "Fronius" and decoded["SN"] is None
    assert struct.pack(">2H", *words[2:4]) == b"Fron"
