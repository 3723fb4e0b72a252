"""The school model: counters that integrate the shown power exactly, whatever the reading pattern."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.clock import parse_iso_ms
from common.sites import Site
from simulators.model import (
    STEP_MS,
    WMS_PER_WH,
    Counters,
    SchoolModel,
    default_counters,
    inverter_rating_w,
)
from tests.simulators.conftest import LESSON_MONDAY_MS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
QUARTER_MS = 15 * 60_000
# A morning start, so that spans include sunrise, the load ramp and import/export changes.
MORNING_MS = LESSON_MONDAY_MS + 5 * HOUR_MS + 123
INITIAL = Counters(pv_energy_wh=150_000_000.0, import_wh=1_000_000.0, export_wh=200_000.0)
# Over a span of n steps the float64 counters (~1e8 Wh) differ from exact sums by a few ulps.
FLOAT_TOLERANCE_WH = 1e-6

model_settings = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def new_model(site: Site, start_ms: int = MORNING_MS, seed: int = 0) -> SchoolModel:
    return SchoolModel(site, start_ms=start_ms, seed=seed, initial=INITIAL)


def test_the_counters_at_the_start_are_the_initial_ones(sp5: Site) -> None:
    state = new_model(sp5).state_at(MORNING_MS)
    assert (state.pv_energy_wh, state.import_wh, state.export_wh) == dataclasses.astuple(INITIAL)
    assert state.grid_power_w == state.load_w - state.pv_power_w


def test_no_state_before_the_start(sp5: Site) -> None:
    with pytest.raises(ValueError, match="before"):
        new_model(sp5).state_at(MORNING_MS - 1)


@model_settings
@given(offsets_ms=st.lists(st.integers(min_value=0, max_value=8 * HOUR_MS), min_size=2, max_size=40))
def test_counters_never_decrease(sp5: Site, offsets_ms: list[int]) -> None:
    model = new_model(sp5)
    states = [model.state_at(MORNING_MS + offset) for offset in sorted(offsets_ms)]
    for before, after in itertools.pairwise(states):
        assert after.pv_energy_wh >= before.pv_energy_wh
        assert after.import_wh >= before.import_wh
        assert after.export_wh >= before.export_wh


def integral_wh(model: SchoolModel, start_ms: int, end_ms: int, power: str) -> float:
    """The integral of a power over [start, end], with the power constant over each step."""
    total_w_ms = 0
    step_start = model.start_ms + (start_ms - model.start_ms) // STEP_MS * STEP_MS
    while step_start < end_ms:
        overlap_ms = min(end_ms, step_start + STEP_MS) - max(start_ms, step_start)
        total_w_ms += int(getattr(model.state_at(step_start), power)) * overlap_ms
        step_start += STEP_MS
    return total_w_ms / WMS_PER_WH


@model_settings
@given(
    start_offset_ms=st.integers(min_value=0, max_value=10 * HOUR_MS),
    span_ms=st.integers(min_value=0, max_value=20 * 60_000),
    seed=st.integers(min_value=0, max_value=5),
)
def test_import_minus_export_is_the_integral_of_grid_power(
    sp5: Site, start_offset_ms: int, span_ms: int, seed: int
) -> None:
    model = new_model(sp5, seed=seed)
    start_ms = MORNING_MS + start_offset_ms
    before, after = model.state_at(start_ms), model.state_at(start_ms + span_ms)
    net_wh = (after.import_wh - after.export_wh) - (before.import_wh - before.export_wh)
    assert net_wh == pytest.approx(
        integral_wh(model, start_ms, start_ms + span_ms, "grid_power_w"), abs=FLOAT_TOLERANCE_WH
    )
    pv_wh = after.pv_energy_wh - before.pv_energy_wh
    assert pv_wh == pytest.approx(
        integral_wh(model, start_ms, start_ms + span_ms, "pv_power_w"), abs=FLOAT_TOLERANCE_WH
    )


def test_a_counter_moves_linearly_within_a_step(sp5: Site) -> None:
    model = new_model(sp5)
    step_start = MORNING_MS + 6 * HOUR_MS
    at_start, halfway, at_end = (model.state_at(step_start + ms) for ms in (0, 500, 1000))
    assert at_start.pv_power_w > 0
    assert halfway.pv_energy_wh - at_start.pv_energy_wh == pytest.approx(at_start.pv_power_w * 0.5 / 3600)
    assert at_end.pv_energy_wh - at_start.pv_energy_wh == pytest.approx(at_start.pv_power_w / 3600)


@model_settings
@given(day=st.integers(min_value=0, max_value=364), hour=st.sampled_from([22, 23, 0, 1, 2]))
def test_no_pv_at_night(sp5: Site, day: int, hour: int) -> None:
    # Local midnight of a day of 2026 (23:00 UTC in winter, 22:00 in summer: an hour either way is night).
    night_ms = (
        parse_iso_ms("2026-01-01T00:00:00+01:00")
        + day * DAY_MS
        + (hour % 24) * HOUR_MS
        - (hour >= 22) * DAY_MS
    )
    model = new_model(sp5, start_ms=night_ms)
    for minutes in range(0, 60, 7):
        assert model.state_at(night_ms + minutes * 60_000).pv_power_w == 0.0


@model_settings
@given(
    steps_ms=st.lists(st.integers(min_value=1, max_value=20 * 60_000), min_size=1, max_size=30),
    probes_ms=st.lists(st.integers(min_value=0, max_value=4 * HOUR_MS), min_size=1, max_size=10),
)
def test_the_reading_pattern_does_not_change_the_state(
    sp5: Site, steps_ms: list[int], probes_ms: list[int]
) -> None:
    many_small_steps, one_jump = new_model(sp5), new_model(sp5)
    moment = MORNING_MS
    for step_ms in steps_ms:
        moment += step_ms
        many_small_steps.state_at(moment)
    one_jump.state_at(moment)
    for probe_ms in [*probes_ms, moment - MORNING_MS]:
        if MORNING_MS + probe_ms <= moment:
            assert many_small_steps.state_at(MORNING_MS + probe_ms) == one_jump.state_at(
                MORNING_MS + probe_ms
            )


def test_every_quarter_hour_of_the_day_can_be_asked_afterwards(sp5: Site) -> None:
    model = new_model(sp5, start_ms=LESSON_MONDAY_MS)
    end = model.state_at(LESSON_MONDAY_MS + DAY_MS)
    quarters = [model.state_at(LESSON_MONDAY_MS + n * QUARTER_MS) for n in range(96 + 1)]
    pv_per_quarter = np.diff([state.pv_energy_wh for state in quarters])
    assert np.all(pv_per_quarter >= 0)
    assert pv_per_quarter.sum() == pytest.approx(end.pv_energy_wh - INITIAL.pv_energy_wh)
    assert pv_per_quarter[:16].sum() == 0, "nothing before 4:00"
    assert pv_per_quarter[40:56].sum() > 0, "something from 10:00 to 14:00"


def test_history_older_than_two_days_is_gone(sp5: Site) -> None:
    model = new_model(sp5, start_ms=LESSON_MONDAY_MS)
    model.state_at(LESSON_MONDAY_MS + 3 * DAY_MS)
    model.state_at(LESSON_MONDAY_MS + 3 * DAY_MS - 48 * HOUR_MS)
    with pytest.raises(ValueError, match="history"):
        model.state_at(LESSON_MONDAY_MS + HOUR_MS)


def test_a_lesson_day_imports_and_a_sunny_summer_weekend_exports(sp5: Site) -> None:
    model = new_model(sp5, start_ms=LESSON_MONDAY_MS - 2 * DAY_MS)  # from Saturday
    weekend = [model.state_at(LESSON_MONDAY_MS - 2 * DAY_MS + n * QUARTER_MS) for n in range(2 * 96 + 1)]
    monday = [model.state_at(LESSON_MONDAY_MS + n * QUARTER_MS) for n in range(96 + 1)]
    assert weekend[-1].export_wh > weekend[0].export_wh, "June PV beats the weekend base load"
    assert monday[-1].import_wh - monday[0].import_wh > 100_000, "a lesson day imports >100 kWh in June"


def test_default_counters_are_plausible_and_keep_the_meter_in_float32_watt_hours(sp5: Site) -> None:
    start_ms = parse_iso_ms("2026-11-27T00:00:00Z")
    counters = default_counters(sp5, start_ms=start_ms, seed=0)
    years = 5.4  # mid-2021 to late 2026
    assert counters.pv_energy_wh == pytest.approx(sp5.pv_kwp * 1_000_000 * years, rel=0.06)
    for meter_wh in (counters.import_wh, counters.export_wh, counters.import_wh + counters.export_wh):
        assert meter_wh < 4_000_000
        as_float32_wh = float(np.float32(meter_wh / 1000)) * 1000
        assert abs(as_float32_wh - meter_wh) < 0.5
    assert default_counters(sp5, start_ms=start_ms, seed=1) != counters


def test_the_inverter_is_sized_to_the_roof() -> None:
    assert inverter_rating_w(49.5) == 40_000
    assert inverter_rating_w(9.9) == 8_000
    assert inverter_rating_w(6.6) == 6_000
    for kwp in (6.6, 9.9, 13.2, 19.8, 29.7, 33.0, 36.3, 39.6, 49.5):
        assert 1.0 <= kwp * 1000 / inverter_rating_w(kwp) <= 1.25
