"""Register profiles load and validate; read plans merge fields into few requests within device limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from common.config import ConfigError
from common.sites import load_site
from common.wire import DeviceKind
from edge.agent import build_pollers
from edge.modbus.decode import DataType
from edge.modbus.plan import plan_reads
from edge.modbus.profiles import AddressRange, Function, RegisterField, load_profile
from edge.poller import RegisterMap
from lokalnie.cli import app
from tests.conftest import PROFILES_DIR
from tests.edge.conftest import device, school, write_site


@pytest.mark.parametrize("name", sorted(path.stem for path in PROFILES_DIR.glob("*.yaml")))
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(PROFILES_DIR, name)
    assert profile.published


def test_shipped_register_maps_need_few_requests() -> None:
    # SDM630: one request spans its 13 points; SDM120: two (a gap too dear at 2400 baud); Huawei: two (its
    # dongle reads at most 64 registers) and the identity on its own.
    for name, requests, identity in (
        ("eastron-sdm630", 1, 0),
        ("eastron-sdm120", 2, 0),
        ("huawei-sun2000", 2, 1),
    ):
        register_map = RegisterMap.build(
            load_profile(PROFILES_DIR, name), load_profile(PROFILES_DIR, name).fields
        )
        assert (len(register_map.plan), len(register_map.identity_plan)) == (requests, identity), name


def _write(tmp_path: Path, name: str, body: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(body)
    return tmp_path


def test_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"profile 'nope' does not exist .*known profiles: eastron-sdm120, eastron-sdm630"
    ):
        load_profile(PROFILES_DIR, "nope")


@pytest.mark.parametrize(
    ("field_yaml", "message"),
    [
        ("{name: w, address: 70000, type: u16}", r"field 'fields.0.address'"),
        ("{name: w, address: 1, type: u17}", r"field 'fields.0.type'"),
        ("{name: w, address: 1, type: string}", r"needs a length"),
        ("{name: w, address: 1, type: s16, scale_factor: nope}", r"scale_factor 'nope' is no field"),
    ],
)
def test_bad_profiles_name_the_field(tmp_path: Path, field_yaml: str, message: str) -> None:
    body = f"name: bad\ndescription: x\nkind: grid_meter\nsource: x\nfields:\n  - {field_yaml}\n"
    with pytest.raises(ConfigError, match=message) as raised:
        load_profile(_write(tmp_path, "bad", body), "bad")
    assert "bad.yaml" in str(raised.value)


def field(
    address: int, data_type: DataType = DataType.U16, function: Function = Function.HOLDING
) -> RegisterField:
    return RegisterField(
        name=f"f{address}_{function.value}", function=function, address=address, type=data_type
    )


fields_strategy = st.lists(
    st.builds(
        field,
        st.integers(0, 2000),
        st.sampled_from([DataType.U16, DataType.U32, DataType.F32, DataType.U64]),
        st.sampled_from(list(Function)),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda f: f.name,
)


@given(fields_strategy, st.integers(1, 125), st.integers(0, 50))
def test_plan_covers_every_field_within_limits(
    fields: list[RegisterField], max_registers: int, max_gap: int
) -> None:
    fields = [f for f in fields if f.registers <= max_registers]
    blocks = plan_reads(fields, max_registers, max_gap)
    carried = [f.name for block in blocks for f in block.fields]
    assert sorted(carried) == sorted(f.name for f in fields)
    for block in blocks:
        assert block.count <= max_registers
        for f in block.fields:
            assert f.function == block.function
            assert block.address <= f.address and f.end <= block.address + block.count
    assert len(blocks) <= len(fields)


@given(fields_strategy, st.integers(0, 2000), st.integers(1, 50))
def test_plan_never_reads_unreadable_registers(fields: list[RegisterField], start: int, size: int) -> None:
    blocked = [AddressRange(function=Function.HOLDING, start=start, end=start + size)]
    fields = [
        f
        for f in fields
        if not (f.function == Function.HOLDING and f.address < start + size and start < f.end)
    ]
    for block in plan_reads(fields, 125, 50, blocked):
        if block.function == Function.HOLDING:
            assert block.address + block.count <= start or start + size <= block.address


def test_gaps_are_bridged_up_to_the_limit() -> None:
    fields = [field(0), field(10), field(30)]
    assert [(b.address, b.count) for b in plan_reads(fields, 125, 9)] == [(0, 11), (30, 1)]
    assert [(b.address, b.count) for b in plan_reads(fields, 125, 19)] == [(0, 31)]
    assert len(plan_reads(fields, 125, 8)) == 3


GOOD_FIELD = "{name: power_w, function: input, address: 12, type: f32}"


def profile_yaml(*fields: str, extra: str = "") -> str:
    body = "\n".join(f"  - {field}" for field in fields)
    return f"name: custom\ndescription: x\nkind: grid_meter\nsource: x\n{extra}fields:\n{body}\n"


SERIAL_40 = "{name: serial, address: 100, type: string, length: 40, publish: false}"
ALARM = "alarms: [{field: state, equals: [7], code: x_fault, message_pl: Awaria}]\n"
BAD_PROFILES = [
    (
        profile_yaml("{name: power_w, address: 70000, type: f32}"),
        r"fields.0.address.*less than or equal to 65535",
    ),
    (profile_yaml("{name: power_w, address: 65535, type: f32}"), r"runs past register 65535"),
    (profile_yaml(GOOD_FIELD, extra="max_registers_per_request: 200\n"), r"max_registers_per_request.*125"),
    (
        profile_yaml(GOOD_FIELD, SERIAL_40, extra="max_registers_per_request: 32\n"),
        r"spans 40 registers, over the profile's limit of 32",
    ),
    (
        profile_yaml(GOOD_FIELD, extra="unreadable: [{function: input, start: 10, end: 20}]\n"),
        r"lies in registers the profile marks unreadable \(10..19\)",
    ),
    (profile_yaml(GOOD_FIELD, extra=ALARM), r"watches 'state', which the profile does not publish"),
    (profile_yaml("{name: serial, address: 1, type: string, length: 4}"), r"a string cannot be published"),
]


@pytest.mark.parametrize(("text", "reason"), BAD_PROFILES)
def test_a_bad_profile_is_refused_at_start_with_the_reason(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "custom.yaml").write_text(text)
    site = school([device("meter", "custom")])
    with pytest.raises(ConfigError, match=reason) as raised:
        build_pollers(site, tmp_path)
    assert "custom.yaml" in str(raised.value) and "device 'meter'" in str(raised.value)


def test_a_site_naming_a_missing_profile_or_two_line_settings_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"device 'meter'.*profile 'sdm999' does not exist"):
        build_pollers(school([device("meter", "sdm999")]), PROFILES_DIR)
    one = device("meter", "eastron-sdm120", serial="/dev/ttyUSB0", baud=9600)
    other = device("meter2", "eastron-sdm120", serial="/dev/ttyUSB0", baud=2400, unit=2)
    with pytest.raises(ConfigError, match=r"serial line /dev/ttyUSB0 with other settings"):
        build_pollers(school([one, other]), PROFILES_DIR)
    with pytest.raises(
        ConfigError, match=r"is a grid_meter but profile 'sunspec-inverter' describes a pv_inverter"
    ):
        build_pollers(
            school([device("meter", "sunspec-inverter").model_copy(update={"kind": DeviceKind.GRID_METER})]),
            PROFILES_DIR,
        )


def test_lokalnie_edge_run_refuses_a_bad_site_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "custom.yaml").write_text(
        profile_yaml(GOOD_FIELD, extra="max_registers_per_request: 126\n")
    )
    site_file = write_site(school([device("meter", "custom")]), tmp_path / "sites")
    result = CliRunner().invoke(
        app, ["edge", "run", "--site", str(site_file), "--outbox", str(tmp_path / "o.db")]
    )
    assert result.exit_code == 2
    assert "cannot start" in result.output and "max_registers_per_request" in result.output
    assert not (tmp_path / "o.db").exists(), "nothing starts"


def test_a_file_that_is_not_yaml_is_refused_with_its_name_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "sp5.yaml"
    broken.write_text("id: sp5\nname: [unclosed\ndevices: []\n")
    with pytest.raises(ConfigError, match=r"sp5\.yaml: not valid YAML at line \d+") as raised:
        load_site(broken)
    assert "Traceback" not in str(raised.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- one\n- two\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping of fields at the top, found list"):
        load_site(listed)
