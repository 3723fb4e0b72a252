"""Interval energies from cumulative counters: exact cases and properties over generated samples."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.ingest.counters import (
    QUARTER_HOUR_MS,
    continuous_counter,
    counter_growth_wh,
    interval_energies,
)

Q = QUARTER_HOUR_MS
DAY_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a quarter-hour boundary


@st.composite
def monotonic_samples(draw: st.DrawFn, max_samples: int = 40) -> tuple[list[int], list[float]]:
    """Samples of a counter that never decreases, at distinct times over up to a day."""
    offsets = draw(st.lists(st.integers(0, 24 * 3600 * 1000), min_size=1, max_size=max_samples, unique=True))
    offsets.sort()
    start = DAY_START_MS + draw(st.integers(-Q, Q))
    steps = draw(st.lists(st.floats(0, 5000), min_size=len(offsets), max_size=len(offsets)))
    first = draw(st.floats(0, 1e8))
    return [start + offset for offset in offsets], list(first + np.cumsum(steps))


any_samples = st.lists(
    st.tuples(st.integers(DAY_START_MS, DAY_START_MS + 6 * 3600 * 1000), st.floats(0, 1e7)),
    min_size=1,
    max_size=40,
)


def test_samples_on_the_boundaries_give_the_exact_differences() -> None:
    ts = [DAY_START_MS + k * Q for k in range(5)]
    counter = [1000.0, 1010.5, 1010.5, 1100.25, 1200.0]
    result = interval_energies(ts, counter)
    assert result.start_ms.tolist() == ts[:-1]
    assert result.energy_wh.tolist() == [10.5, 0.0, 89.75, 99.75]
    assert result.complete.all()


def test_a_gap_is_spread_linearly_over_the_intervals_it_spans() -> None:
    ts = [DAY_START_MS, DAY_START_MS + 4 * Q]
    result = interval_energies(ts, [0.0, 400.0])
    assert result.energy_wh.tolist() == [100.0, 100.0, 100.0, 100.0]
    assert result.complete.all()


def test_partly_covered_intervals_are_incomplete_and_count_only_their_covered_part() -> None:
    ts = [DAY_START_MS + Q // 3, DAY_START_MS + Q, DAY_START_MS + 2 * Q + Q // 2]
    result = interval_energies(ts, [10.0, 20.0, 30.0])
    assert result.start_ms.tolist() == [DAY_START_MS, DAY_START_MS + Q, DAY_START_MS + 2 * Q]
    assert result.complete.tolist() == [False, True, False]
    assert result.energy_wh == pytest.approx([10.0, 10.0 * (2 / 3), 10.0 / 3])


def test_one_sample_on_a_boundary_spans_no_interval_and_one_inside_spans_one() -> None:
    assert interval_energies([DAY_START_MS], [5.0]).start_ms.size == 0
    inside = interval_energies([DAY_START_MS + 1], [5.0])
    assert inside.start_ms.tolist() == [DAY_START_MS]
    assert inside.energy_wh.tolist() == [0.0]
    assert inside.complete.tolist() == [False]
    assert interval_energies([], []).start_ms.size == 0


def test_a_reset_counts_growth_from_the_first_sample_after_it_and_is_reported() -> None:
    ts = [DAY_START_MS + k * Q for k in range(4)]
    result = interval_energies(ts, [500.0, 510.0, 5.0, 25.0])
    assert result.energy_wh.tolist() == [10.0, 0.0, 20.0]
    assert result.corrections.ts_ms.tolist() == [ts[2]]
    assert result.corrections.kinds() == ["reset"]
    assert (result.corrections.previous_wh - result.corrections.value_wh).tolist() == [505.0]


def test_samples_of_equal_time_keep_the_largest_value() -> None:
    counter = continuous_counter([DAY_START_MS, DAY_START_MS, DAY_START_MS + 1], [7.0, 9.0, 9.5])
    assert counter.ts_ms.tolist() == [DAY_START_MS, DAY_START_MS + 1]
    assert counter.counter_wh.tolist() == [9.0, 9.5]
    assert counter.corrections.size == 0


def test_growth_between_two_times_interpolates_and_holds_beyond_the_samples() -> None:
    ts, counter = [DAY_START_MS, DAY_START_MS + Q], [0.0, 100.0]
    assert counter_growth_wh(ts, counter, DAY_START_MS + Q // 4, DAY_START_MS + Q // 2) == 25.0
    assert counter_growth_wh(ts, counter, DAY_START_MS - Q, DAY_START_MS + 2 * Q) == 100.0
    assert counter_growth_wh([], [], DAY_START_MS, DAY_START_MS + Q) == 0.0


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="samples"):
        interval_energies([1, 2], [1.0])


@settings(max_examples=150, deadline=None)
@given(any_samples)
def test_energies_are_never_negative(samples: list[tuple[int, float]]) -> None:
    ts, counter = zip(*samples, strict=True)
    result = interval_energies(ts, counter)
    assert (result.energy_wh >= 0).all()
    assert result.start_ms.size == result.energy_wh.size == result.complete.size


@settings(max_examples=150, deadline=None)
@given(monotonic_samples())
def test_energies_of_a_monotonic_counter_add_up_to_last_minus_first(
    samples: tuple[list[int], list[float]],
) -> None:
    ts, counter = samples
    result = interval_energies(ts, counter)
    assert result.energy_wh.sum() == pytest.approx(counter[-1] - counter[0], rel=1e-9, abs=1e-6)
    assert result.corrections.size == 0


@settings(max_examples=150, deadline=None)
@given(any_samples, st.randoms(use_true_random=False))
def test_duplicating_or_reordering_samples_changes_nothing(
    samples: list[tuple[int, float]], shuffler: random.Random
) -> None:
    ts, counter = zip(*samples, strict=True)
    expected = interval_energies(ts, counter)
    doubled = samples + samples
    shuffler.shuffle(doubled)
    ts2, counter2 = zip(*doubled, strict=True)
    result = interval_energies(ts2, counter2)
    assert result.start_ms.tolist() == expected.start_ms.tolist()
    assert result.energy_wh.tolist() == expected.energy_wh.tolist()
    assert result.complete.tolist() == expected.complete.tolist()


@settings(max_examples=150, deadline=None)
@given(monotonic_samples(), st.data())
def test_splitting_a_step_with_a_sample_on_the_line_changes_nothing(
    samples: tuple[list[int], list[float]], data: st.DataObject
) -> None:
    ts, counter = samples
    gaps = [i for i in range(len(ts) - 1) if ts[i + 1] - ts[i] > 1]
    if not gaps:
        return
    i = data.draw(st.sampled_from(gaps))
    at = data.draw(st.integers(ts[i] + 1, ts[i + 1] - 1))
    value = counter[i] + (counter[i + 1] - counter[i]) * (at - ts[i]) / (ts[i + 1] - ts[i])
    expected = interval_energies(ts, counter)
    result = interval_energies([*ts, at], [*counter, value])
    assert result.start_ms.tolist() == expected.start_ms.tolist()
    assert result.complete.tolist() == expected.complete.tolist()
    assert result.energy_wh == pytest.approx(expected.energy_wh, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e6), min_size=2, max_size=30))
def test_a_sample_on_every_boundary_gives_exact_differences(counter: list[float]) -> None:
    counter.sort()
    ts = [DAY_START_MS + k * Q for k in range(len(counter))]
    result = interval_energies(ts, counter)
    assert result.energy_wh.tolist() == np.diff(counter).tolist()
    assert result.complete.all()
