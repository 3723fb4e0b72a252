"""Counter corrections: rollovers counted across the wrap, resets and jumps counted as zero, and what stays a
plain step (a gap at plausible power, a float32 counter's rounding); never negative or huge energy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.ingest.counters import (
    QUARTER_HOUR_MS,
    STEP_SLACK_WH,
    classify_steps,
    continuous_counter,
    counter_growth_wh,
    interval_energies,
)

Q = QUARTER_HOUR_MS
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# A 40 kWp roof: an inverter delivers at most 60 kW.
PV_MAX_W = 60_000.0


def test_a_32_bit_counter_that_wraps_counts_the_energy_across_the_wrap() -> None:
    limit = 2.0**32
    ts = [T0, T0 + Q, T0 + 2 * Q]
    values = [limit - 3000.0, 2000.0, 9000.0]
    result = interval_energies(ts, values, max_power_w=PV_MAX_W)
    assert result.energy_wh.tolist() == [5000.0, 7000.0]
    assert result.corrections.kinds() == ["rollover"]
    assert result.corrections.counted_wh.tolist() == [5000.0]
    assert result.corrections.previous_wh.tolist() == [limit - 3000.0]


def test_a_decimal_register_that_wraps_at_a_power_of_ten_counts_the_energy_across() -> None:
    # A meter showing 99,999.9 kWh rolls over to 0.
    ts = [T0, T0 + Q]
    result = interval_energies(ts, [99_999_000.0, 500.0], max_power_w=1_000_000.0)
    assert result.energy_wh.tolist() == [1500.0]
    assert result.corrections.kinds() == ["rollover"]


def test_a_counter_that_falls_elsewhere_is_a_reset_counted_as_zero() -> None:
    ts = [T0, T0 + Q, T0 + 2 * Q]
    # A replaced inverter starts at 120 Wh: nowhere near a register's limit.
    result = interval_energies(ts, [5_000_000.0, 120.0, 3120.0], max_power_w=PV_MAX_W)
    assert result.energy_wh.tolist() == [0.0, 3000.0]
    assert result.corrections.kinds() == ["reset"]
    assert result.corrections.counted_wh.tolist() == [0.0]


def test_a_counter_that_jumps_faster_than_its_device_can_deliver_is_counted_as_zero() -> None:
    ts = [T0, T0 + Q, T0 + 2 * Q]
    # A meter swapped for one with a larger reading: +90 MWh in 15 minutes is 360 MW.
    result = interval_energies(ts, [1_000_000.0, 91_000_000.0, 91_002_000.0], max_power_w=1_000_000.0)
    assert result.energy_wh.tolist() == [0.0, 2000.0]
    assert result.corrections.kinds() == ["jump"]


def test_a_long_gap_with_growth_at_plausible_power_is_no_jump_and_is_spread_over_the_gap() -> None:
    # A day offline at 40 kW average: 960 kWh, below 60 kW for 24 h.
    ts = [T0, T0 + 96 * Q]
    result = interval_energies(ts, [0.0, 960_000.0], max_power_w=PV_MAX_W)
    assert result.corrections.size == 0
    assert result.energy_wh.tolist() == [10_000.0] * 96


def test_the_rounding_of_a_float32_counter_is_no_jump() -> None:
    # At 187 MWh a float32 counter moves in steps of 16 Wh; polled every second.
    value = float(np.float32(187_245_120.0))
    step = float(np.spacing(np.float32(value)))
    result = continuous_counter([T0, T0 + 1000], [value, value + step], max_power_w=10_000.0)
    assert result.corrections.size == 0


def test_a_kwh_register_stepping_by_one_kwh_is_no_jump() -> None:
    result = continuous_counter([T0, T0 + 10_000], [5_000_000.0, 5_001_000.0], max_power_w=10_000.0)
    assert result.corrections.size == 0
    assert STEP_SLACK_WH >= 1000.0


def test_without_a_maximum_power_a_fall_is_a_reset_and_nothing_is_a_jump() -> None:
    kind, counted = classify_steps([2.0**32 - 10, 5.0], [5.0, 1e12], [1000, 1000], None)
    assert kind.tolist() == [0, -1]
    assert counted.tolist() == [0.0, 1e12 - 5.0]


def test_growth_between_two_times_leaves_a_jump_out() -> None:
    ts = [T0, T0 + Q, T0 + 2 * Q]
    values = [0.0, 50_000_000.0, 50_001_000.0]
    assert counter_growth_wh(ts, values, T0, T0 + 2 * Q, max_power_w=PV_MAX_W) == 1000.0
    assert counter_growth_wh(ts, values, T0, T0 + 2 * Q) == 50_001_000.0


@st.composite
def wild_counter(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    """A counter growing at plausible power with resets, rollovers and swaps thrown in."""
    count = draw(st.integers(2, 40))
    gaps = draw(st.lists(st.integers(1000, 6 * Q), min_size=count - 1, max_size=count - 1))
    ts = [T0, *(T0 + int(x) for x in np.cumsum(gaps))]
    value = draw(st.floats(0, 2.0**32))
    values = [value]
    for gap in gaps:
        event = draw(st.sampled_from(["grow"] * 6 + ["reset", "swap", "wrap"]))
        if event == "grow":
            value += draw(st.floats(0, 1.0)) * PV_MAX_W * gap / 3.6e6
        elif event == "reset":
            value = draw(st.floats(0, 1000))
        elif event == "swap":
            value += draw(st.floats(1e7, 1e10))
        else:
            value = (value + 500.0) % 2.0**32
        values.append(value)
    return ts, values


@settings(max_examples=200, deadline=None)
@given(wild_counter())
def test_no_interval_gets_more_energy_than_the_device_can_deliver(
    samples: tuple[list[int], list[float]],
) -> None:
    ts, values = samples
    result = interval_energies(ts, values, max_power_w=PV_MAX_W)
    assert (result.energy_wh >= 0).all()
    # Each step adds at most the allowance of one step: its share of P_max·Δt plus the slack.
    steps = max(len(ts) - 1, 1)
    bound_wh = PV_MAX_W * Q / 3.6e6 + steps * (STEP_SLACK_WH + 1e-6 * max(max(values), 2.0**32))
    assert (result.energy_wh <= bound_wh).all()
    assert result.energy_wh.sum() <= PV_MAX_W * (ts[-1] - ts[0]) / 3.6e6 + bound_wh * steps


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1000, Q), st.floats(0, 1.0)), min_size=1, max_size=40))
def test_a_counter_growing_at_plausible_power_needs_no_correction(steps: list[tuple[int, float]]) -> None:
    ts, values = [T0], [1e6]
    for gap, share in steps:
        ts.append(ts[-1] + gap)
        values.append(values[-1] + share * PV_MAX_W * gap / 3.6e6)
    result = interval_energies(ts, values, max_power_w=PV_MAX_W)
    assert result.corrections.size == 0
    assert result.energy_wh.sum() == pytest.approx(values[-1] - values[0], rel=1e-9)
