"""Interval energies from cumulative energy counters: how many Wh a device's counter grew over each
15-minute interval, aligned to UTC quarter hours, from samples taken whenever the device was polled.

Pure functions over NumPy arrays; times are epoch milliseconds (UTC), counters and energies Wh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

QUARTER_HOUR_MS = 15 * 60 * 1000


@dataclass(frozen=True)
class ContinuousCounter:
    """A counter's samples sorted by time, one per time, with every reset taken out.

    Attributes
    ----------
    ts_ms : int64 array
        Sample times, strictly increasing [ms since the epoch].
    counter_wh : float64 array
        The counter with the drop of every reset added back, so it never decreases [Wh].
    reset_ts_ms : int64 array
        Time of the first sample after each reset [ms since the epoch].
    reset_drop_wh : float64 array
        How far the counter fell at each reset, the correction added to every later sample [Wh].
    """

    ts_ms: NDArray[np.int64]
    counter_wh: NDArray[np.float64]
    reset_ts_ms: NDArray[np.int64]
    reset_drop_wh: NDArray[np.float64]


@dataclass(frozen=True)
class IntervalEnergies:
    """Energies of the intervals a counter's samples span, with the resets found on the way.

    Attributes
    ----------
    start_ms : int64 array
        Start of each interval [ms since the epoch], a multiple of the interval length.
    energy_wh : float64 array
        The counter's growth over each interval, never negative [Wh].
    complete : bool array
        True where samples exist at or before the start and at or after the end of the interval.
    reset_ts_ms, reset_drop_wh : arrays
        As in `ContinuousCounter`.
    """

    start_ms: NDArray[np.int64]
    energy_wh: NDArray[np.float64]
    complete: NDArray[np.bool_]
    reset_ts_ms: NDArray[np.int64]
    reset_drop_wh: NDArray[np.float64]


def continuous_counter(ts_ms: ArrayLike, counter_wh: ArrayLike) -> ContinuousCounter:
    """Sort a counter's samples, merge samples of equal time and take resets out.

    Parameters
    ----------
    ts_ms : array of int
        Sample times, in any order [ms since the epoch].
    counter_wh : array of float
        The cumulative counter read at each time [Wh]; finite values only.

    Returns
    -------
    ContinuousCounter

    Notes
    -----
    Of several samples at the same time the largest value is kept. A counter that reads less than at the
    sample before has been reset (a replaced device, a wrapped or cleared register). The energy of that one
    step is unknown and counted as zero: the new value's growth is counted from the first sample after the
    reset on. Formally, with :math:`v_i` the samples in time order, the continuous counter is

    .. math:: c_i = v_i + \\sum_{j \\le i} \\max(v_{j-1} - v_j, 0)

    and the corrections :math:`v_{j-1} - v_j` are returned so that the caller can record them.
    """
    times = np.asarray(ts_ms, dtype=np.int64).ravel()
    values = np.asarray(counter_wh, dtype=np.float64).ravel()
    if times.shape != values.shape:
        raise ValueError(f"ts_ms has {times.size} samples but counter_wh has {values.size}")
    order = np.lexsort((values, times))
    times, values = times[order], values[order]
    last_of_time = np.append(times[1:] != times[:-1], True) if times.size else np.zeros(0, dtype=bool)
    times, values = times[last_of_time], values[last_of_time]
    steps_wh = np.diff(values)
    reset_at = np.flatnonzero(steps_wh < 0)
    drops_wh = np.where(steps_wh < 0, -steps_wh, 0.0)
    corrections_wh = np.concatenate(([0.0], np.cumsum(drops_wh)))
    return ContinuousCounter(
        ts_ms=times,
        counter_wh=values + corrections_wh[: values.size],
        reset_ts_ms=times[reset_at + 1],
        reset_drop_wh=-steps_wh[reset_at],
    )


def counter_at_wh(counter: ContinuousCounter, at_ms: ArrayLike) -> NDArray[np.float64]:
    """The continuous counter at given times, linear in time between samples and held flat beyond them.

    Parameters
    ----------
    counter : ContinuousCounter
        At least one sample.
    at_ms : array of int
        Times to read the counter at [ms since the epoch].

    Returns
    -------
    float64 array
        The counter at each time [Wh].
    """
    if counter.ts_ms.size == 0:
        raise ValueError("a counter without samples has no value")
    at = np.asarray(at_ms, dtype=np.int64)
    return np.interp(at.astype(np.float64), counter.ts_ms.astype(np.float64), counter.counter_wh)


def interval_energies(
    ts_ms: ArrayLike, counter_wh: ArrayLike, interval_ms: int = QUARTER_HOUR_MS
) -> IntervalEnergies:
    """The energy a cumulative counter measured over each interval its samples span.

    Parameters
    ----------
    ts_ms : array of int
        Sample times, in any order [ms since the epoch].
    counter_wh : array of float
        The cumulative counter read at each time [Wh]; finite values only.
    interval_ms : int, default 15 minutes
        Interval length [ms]; intervals start at multiples of it (UTC quarter hours by default).

    Returns
    -------
    IntervalEnergies
        One entry per interval from the one holding the first sample to the one holding the last
        (a last sample exactly on a boundary ends the span there).

    Notes
    -----
    The counter's value at each interval boundary :math:`b` is interpolated linearly between the samples
    :math:`(t_i, c_i)` and :math:`(t_{i+1}, c_{i+1})` around it, after resets are taken out
    (`continuous_counter`); before the first and after the last sample it is held at that sample's value.
    The energy of interval :math:`[b_k, b_{k+1})` is :math:`E_k = c(b_{k+1}) - c(b_k)`, so a gap in the
    data is spread over the intervals it spans in proportion to time, and the energies of all intervals add
    up to the last continuous value minus the first. An interval is complete when a sample lies at or
    before its start and another at or after its end; the energy of an incomplete one covers only the part
    with data on both sides.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    counter = continuous_counter(ts_ms, counter_wh)
    if counter.ts_ms.size == 0:
        empty_int = np.zeros(0, dtype=np.int64)
        return IntervalEnergies(
            empty_int, np.zeros(0), np.zeros(0, dtype=bool), counter.reset_ts_ms, counter.reset_drop_wh
        )
    first_ms, last_ms = int(counter.ts_ms[0]), int(counter.ts_ms[-1])
    span_start_ms = first_ms // interval_ms * interval_ms
    span_end_ms = -(-last_ms // interval_ms) * interval_ms
    # Samples all at one boundary give one boundary and no interval.
    boundaries_ms = np.arange(span_start_ms, span_end_ms + 1, interval_ms, dtype=np.int64)
    # Interpolation rounding can make a flat step a few ulp negative; energy never is.
    energy_wh = np.maximum(np.diff(counter_at_wh(counter, boundaries_ms)), 0.0)
    start_ms = boundaries_ms[:-1]
    complete = (first_ms <= start_ms) & (last_ms >= start_ms + interval_ms)
    return IntervalEnergies(start_ms, energy_wh, complete, counter.reset_ts_ms, counter.reset_drop_wh)


def counter_growth_wh(ts_ms: ArrayLike, counter_wh: ArrayLike, start_ms: int, end_ms: int) -> float:
    """How much a cumulative counter grew between two times, by the rules of `interval_energies`.

    Parameters
    ----------
    ts_ms : array of int
        Sample times, in any order [ms since the epoch].
    counter_wh : array of float
        The cumulative counter read at each time [Wh]; finite values only.
    start_ms, end_ms : int
        The period [ms since the epoch].

    Returns
    -------
    float
        The growth [Wh]; 0 without samples or when the period has no samples on both sides.
    """
    counter = continuous_counter(ts_ms, counter_wh)
    if counter.ts_ms.size == 0 or end_ms <= start_ms:
        return 0.0
    start_wh, end_wh = counter_at_wh(counter, [start_ms, end_ms])
    return max(float(end_wh - start_wh), 0.0)
