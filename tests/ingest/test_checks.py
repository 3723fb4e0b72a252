"""The believable ranges of readings as the triage looks them up: a roof's table answers as `value_range`
does, per roof and kind, and holds a bounded number of quantities."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.ingest.checks import Limits, ValueRanges, value_range, value_ranges
from common.wire import QUANTITY_PATTERN, DeviceKind

KINDS = st.sampled_from([kind.value for kind in DeviceKind])
QUANTITIES = st.one_of(
    st.sampled_from(["power_w", "dc_power_w", "power_l2_w", "energy_wh", "voltage_l1_v", "frequency_hz"]),
    st.from_regex(QUANTITY_PATTERN, fullmatch=True),
)
LIMITS = st.builds(Limits, pv_power_margin=st.floats(1.0, 3.0), max_grid_power_w=st.floats(1e3, 1e7))


@given(KINDS, st.floats(1.0, 500.0), LIMITS, st.lists(QUANTITIES, max_size=40))
def test_a_roofs_table_answers_as_value_range(
    kind: str, pv_kwp: float, limits: Limits, quantities: list[str]
) -> None:
    for quantity in quantities + quantities:
        low, high, _unit = value_range(quantity, kind, pv_kwp, limits)
        assert value_ranges(kind, pv_kwp, limits)[quantity] == (low, high)


def test_each_roof_and_kind_has_its_own_table() -> None:
    limits = Limits()
    inverter, meter = DeviceKind.PV_INVERTER.value, DeviceKind.GRID_METER.value
    assert value_ranges(inverter, 10.0, limits)["power_w"][1] == 15_000.0
    assert value_ranges(inverter, 100.0, limits)["power_w"][1] == 150_000.0
    assert value_ranges(meter, 10.0, limits)["power_w"] == (-1_000_000.0, 1_000_000.0)
    assert value_ranges(inverter, 10.0, Limits(pv_power_margin=2.0))["power_w"][1] == 20_000.0


def test_a_table_holds_a_bounded_number_of_quantities_and_still_answers() -> None:
    ranges = ValueRanges(DeviceKind.GRID_METER.value, 40.0, Limits())
    for number in range(2 * ValueRanges.MAX_QUANTITIES):
        assert ranges[f"q{number}_v"] == (0.0, 2000.0)
    assert len(ranges) == ValueRanges.MAX_QUANTITIES
