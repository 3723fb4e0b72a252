"""Interval energies from cumulative energy counters: how many Wh a device's counter grew over each
15-minute interval, aligned to UTC quarter hours, from samples taken whenever the device was polled.

A counter only grows, at most as fast as its device can deliver energy. A step between two samples that
breaks this is not taken as measured: a fall is a *rollover* when the counter wrapped at its register's
limit (the energy across the wrap is counted) or else a *reset* (a cleared register, a replaced device:
counted as zero); a rise faster than the device's maximum power is a *jump* (a device swapped for one with
a larger counter: counted as zero). Every such step is returned as a correction.

Pure functions over NumPy arrays; times are epoch milliseconds (UTC), counters and energies Wh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

QUARTER_HOUR_MS = 15 * 60 * 1000
MS_PER_HOUR = 3_600_000.0

RESET = "reset"
ROLLOVER = "rollover"
JUMP = "jump"
# The codes of `Corrections.kind`.
CORRECTION_KINDS: tuple[str, ...] = (RESET, ROLLOVER, JUMP)
_RESET, _ROLLOVER, _JUMP = range(3)

# Where counters wrap: 16- and 32-bit registers (SunSpec acc16/acc32, scaled by a power of ten) and the
# digits of a decimal register [Wh].
ROLLOVER_MODULI_WH: tuple[float, ...] = tuple(
    sorted(
        {float(2**bits * 10**scale) for bits in (16, 32) for scale in range(4)}
        | {float(10**digits) for digits in range(4, 14)}
    )
)
# A counter wraps only from close to its limit: at least this fraction of it.
ROLLOVER_FROM = 0.9
# A step may exceed the device's maximum power by one register resolution (kWh registers step by 1 kWh)
# plus a float32 rounding of the counter's value.
STEP_SLACK_WH = 2000.0
STEP_SLACK_RELATIVE = 1e-6


@dataclass(frozen=True)
class Corrections:
    """Steps of a counter that were not counted as measured, one entry per step.

    Attributes
    ----------
    ts_ms : int64 array
        Time of the sample that ends the step [ms since the epoch].
    kind : int8 array
        Index into `CORRECTION_KINDS`: reset, rollover or jump.
    previous_ts_ms : int64 array
        Time of the sample that starts the step [ms since the epoch].
    previous_wh, value_wh : float64 arrays
        The counter at the start and at the end of the step [Wh].
    counted_wh : float64 array
        The energy counted for the step instead of ``value_wh - previous_wh`` [Wh].
    """

    ts_ms: NDArray[np.int64]
    kind: NDArray[np.int8]
    previous_ts_ms: NDArray[np.int64]
    previous_wh: NDArray[np.float64]
    value_wh: NDArray[np.float64]
    counted_wh: NDArray[np.float64]

    @property
    def size(self) -> int:
        return int(self.ts_ms.size)

    def kinds(self) -> list[str]:
        """The kind of each correction by name."""
        return [CORRECTION_KINDS[code] for code in self.kind.tolist()]


@dataclass(frozen=True)
class ContinuousCounter:
    """A counter's samples sorted by time, one per time, with every correction taken out.

    Attributes
    ----------
    ts_ms : int64 array
        Sample times, strictly increasing [ms since the epoch].
    counter_wh : float64 array
        The counter with each corrected step replaced by the energy counted for it, so it never
        decreases [Wh].
    corrections : Corrections
        The steps so corrected.
    """

    ts_ms: NDArray[np.int64]
    counter_wh: NDArray[np.float64]
    corrections: Corrections


@dataclass(frozen=True)
class IntervalEnergies:
    """Energies of the intervals a counter's samples span, with the corrections found on the way.

    Attributes
    ----------
    start_ms : int64 array
        Start of each interval [ms since the epoch], a multiple of the interval length.
    energy_wh : float64 array
        The counter's growth over each interval, never negative [Wh].
    complete : bool array
        True where samples exist at or before the start and at or after the end of the interval.
    corrections : Corrections
        As in `ContinuousCounter`.
    """

    start_ms: NDArray[np.int64]
    energy_wh: NDArray[np.float64]
    complete: NDArray[np.bool_]
    corrections: Corrections


def allowed_step_wh(
    previous_wh: ArrayLike, value_wh: ArrayLike, duration_ms: ArrayLike, max_power_w: ArrayLike | None
) -> NDArray[np.float64]:
    """The largest growth a counter can show over a step, by its device's maximum power.

    Parameters
    ----------
    previous_wh, value_wh : array of float
        The counter at the start and the end of each step [Wh].
    duration_ms : array of int
        Each step's duration [ms].
    max_power_w : float or array of float, or None
        The device's maximum power [W], for all steps or for each; None (or infinity) means no limit.

    Returns
    -------
    float64 array
        :math:`P_{max} \\Delta t + S + r \\max(|v_0|, |v_1|)` [Wh], with the slack `STEP_SLACK_WH` (S) for
        coarse registers and `STEP_SLACK_RELATIVE` (r) for float32 rounding; infinite without a limit.
    """
    duration = np.asarray(duration_ms, dtype=np.float64)
    if max_power_w is None:
        return np.full(duration.shape, np.inf)
    size = np.maximum(np.abs(np.asarray(previous_wh, np.float64)), np.abs(np.asarray(value_wh, np.float64)))
    power = np.asarray(max_power_w, dtype=np.float64)
    return power * duration / MS_PER_HOUR + STEP_SLACK_WH + STEP_SLACK_RELATIVE * size


def classify_steps(
    previous_wh: ArrayLike, value_wh: ArrayLike, duration_ms: ArrayLike, max_power_w: ArrayLike | None
) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    """Which steps of a counter are corrections, and the energy counted for each step.

    Parameters
    ----------
    previous_wh, value_wh : array of float
        The counter at the start and the end of each step [Wh].
    duration_ms : array of int
        Each step's duration [ms], positive.
    max_power_w : float or array of float, or None
        The device's maximum power [W]; None: no jumps, and no rollovers (a fall is a reset).

    Returns
    -------
    kind : int8 array
        -1 for a step taken as measured, else an index into `CORRECTION_KINDS`.
    counted_wh : float64 array
        The energy counted for each step [Wh] (see `continuous_counter`).
    """
    previous = np.asarray(previous_wh, dtype=np.float64)
    current = np.asarray(value_wh, dtype=np.float64)
    steps_wh = current - previous
    allowed_wh = allowed_step_wh(previous, current, duration_ms, max_power_w)
    counted_wh = steps_wh.copy()
    kind = np.full(steps_wh.shape, -1, dtype=np.int8)
    jump = steps_wh > allowed_wh
    kind[jump] = _JUMP
    counted_wh[jump] = 0.0
    fall = steps_wh < 0
    kind[fall] = _RESET
    counted_wh[fall] = 0.0
    if max_power_w is not None and fall.any():
        undecided = fall.copy()
        for modulus_wh in ROLLOVER_MODULI_WH:
            wrapped_wh = current + modulus_wh - previous
            wrap = (
                undecided
                & (previous >= ROLLOVER_FROM * modulus_wh)
                & (previous < modulus_wh)
                & (current >= 0)
                & (wrapped_wh <= allowed_wh)
            )
            kind[wrap] = _ROLLOVER
            counted_wh[wrap] = wrapped_wh[wrap]
            undecided &= ~wrap
    return kind, counted_wh


def continuous_counter(
    ts_ms: ArrayLike, counter_wh: ArrayLike, *, max_power_w: float | None = None
) -> ContinuousCounter:
    """Sort a counter's samples, merge samples of equal time and take resets, rollovers and jumps out.

    Parameters
    ----------
    ts_ms : array of int
        Sample times, in any order [ms since the epoch].
    counter_wh : array of float
        The cumulative counter read at each time [Wh]; finite values only.
    max_power_w : float, optional
        The most the device can deliver [W]. Without it no step is a jump and no fall a rollover.

    Returns
    -------
    ContinuousCounter

    Notes
    -----
    Of several samples at the same time the largest value is kept. With :math:`v_i` the samples in time
    order, :math:`\\Delta_i = v_i - v_{i-1}` and :math:`A_i` the `allowed_step_wh` of step :math:`i`, the
    energy counted for the step is

    * :math:`\\Delta_i` when :math:`0 \\le \\Delta_i \\le A_i` (as measured);
    * :math:`v_i + M - v_{i-1}` when the counter fell from at least `ROLLOVER_FROM` of a modulus
      :math:`M` of `ROLLOVER_MODULI_WH` and that is at most :math:`A_i` (a rollover; the smallest such M);
    * 0 for any other fall (a reset) and for :math:`\\Delta_i > A_i` (a jump).

    The continuous counter is :math:`c_i = v_i + \\sum_{j \\le i} (e_j - \\Delta_j)` with :math:`e_j` the
    energy counted, so that it equals the samples exactly while nothing is corrected.
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
    previous, current = values[:-1], values[1:]
    kind, counted_wh = classify_steps(previous, current, np.diff(times), max_power_w)
    corrected = np.flatnonzero(kind >= 0)
    offsets_wh = np.concatenate(([0.0], np.cumsum(counted_wh - steps_wh)))
    counter = values + offsets_wh[: values.size] if corrected.size else values
    return ContinuousCounter(
        ts_ms=times,
        counter_wh=counter,
        corrections=Corrections(
            ts_ms=times[corrected + 1],
            kind=kind[corrected],
            previous_ts_ms=times[corrected],
            previous_wh=previous[corrected],
            value_wh=current[corrected],
            counted_wh=counted_wh[corrected],
        ),
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
    ts_ms: ArrayLike,
    counter_wh: ArrayLike,
    interval_ms: int = QUARTER_HOUR_MS,
    *,
    max_power_w: float | None = None,
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
    max_power_w : float, optional
        The most the device can deliver [W] (see `continuous_counter`).

    Returns
    -------
    IntervalEnergies
        One entry per interval from the one holding the first sample to the one holding the last
        (a last sample exactly on a boundary ends the span there).

    Notes
    -----
    The counter's value at each interval boundary :math:`b` is interpolated linearly between the samples
    :math:`(t_i, c_i)` and :math:`(t_{i+1}, c_{i+1})` around it, after corrections are taken out
    (`continuous_counter`); before the first and after the last sample it is held at that sample's value.
    The energy of interval :math:`[b_k, b_{k+1})` is :math:`E_k = c(b_{k+1}) - c(b_k)`, so a gap in the
    data is spread over the intervals it spans in proportion to time, and the energies of all intervals add
    up to the last continuous value minus the first. An interval is complete when a sample lies at or
    before its start and another at or after its end; the energy of an incomplete one covers only the part
    with data on both sides.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    counter = continuous_counter(ts_ms, counter_wh, max_power_w=max_power_w)
    if counter.ts_ms.size == 0:
        empty_int = np.zeros(0, dtype=np.int64)
        return IntervalEnergies(empty_int, np.zeros(0), np.zeros(0, dtype=bool), counter.corrections)
    first_ms, last_ms = int(counter.ts_ms[0]), int(counter.ts_ms[-1])
    span_start_ms = first_ms // interval_ms * interval_ms
    span_end_ms = -(-last_ms // interval_ms) * interval_ms
    # Samples all at one boundary give one boundary and no interval.
    boundaries_ms = np.arange(span_start_ms, span_end_ms + 1, interval_ms, dtype=np.int64)
    # Interpolation rounding can make a flat step a few ulp negative; energy never is.
    energy_wh = np.maximum(np.diff(counter_at_wh(counter, boundaries_ms)), 0.0)
    start_ms = boundaries_ms[:-1]
    complete = (first_ms <= start_ms) & (last_ms >= start_ms + interval_ms)
    return IntervalEnergies(start_ms, energy_wh, complete, counter.corrections)


def counter_growth_wh(
    ts_ms: ArrayLike,
    counter_wh: ArrayLike,
    start_ms: int,
    end_ms: int,
    *,
    max_power_w: float | None = None,
) -> float:
    """How much a cumulative counter grew between two times, by the rules of `interval_energies`.

    Parameters
    ----------
    ts_ms : array of int
        Sample times, in any order [ms since the epoch].
    counter_wh : array of float
        The cumulative counter read at each time [Wh]; finite values only.
    start_ms, end_ms : int
        The period [ms since the epoch].
    max_power_w : float, optional
        The most the device can deliver [W] (see `continuous_counter`).

    Returns
    -------
    float
        The growth [Wh]; 0 without samples or when the period has no samples on both sides.
    """
    counter = continuous_counter(ts_ms, counter_wh, max_power_w=max_power_w)
    if counter.ts_ms.size == 0 or end_ms <= start_ms:
        return 0.0
    start_wh, end_wh = counter_at_wh(counter, [start_ms, end_ms])
    return max(float(end_wh - start_wh), 0.0)
