"""Passing clouds and air temperature as deterministic functions of time and a seed.

Nothing here keeps state or draws from a random generator: a value is a hash of the seed and a point of
a time lattice, smoothly interpolated, so that every process that asks for the same time and seed gets
the same sky (bit for bit when it evaluates the same array; a scalar and a vectorised NumPy evaluation
may differ in the last bit). The 16 schools lie within a few kilometres of each other and share one sky.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulators.solar import FloatArray, day_angle_rad

ArrayLike = npt.ArrayLike

SECONDS_PER_DAY = 86_400
# Daily cloudiness is anchored at 11:00 UTC, about solar noon in Poland.
DAY_ANCHOR_S = 11 * 3600
MIN_CLEARNESS = 0.1
MAX_CLEARNESS = 1.0

# Streams keep the noises of different quantities independent under one seed.
_STREAM_DAY_CLOUDS = 1
_STREAM_CLOUD_OCTAVES = (2, 3, 4)
_STREAM_TEMPERATURE = 5
# Time scales of the passing clouds [s] and their weights: weather fronts, cloud fields, single clouds.
_CLOUD_OCTAVES_S = (6 * 3600, 3600, 600)
_CLOUD_OCTAVE_WEIGHTS = (0.5, 0.3, 0.2)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def hash_uniform(seed: int, stream: ArrayLike, index: ArrayLike) -> FloatArray:
    """A uniform number in [0, 1) for each integer lattice index, fixed by seed and stream.

    `stream` and `index` broadcast against each other.

    Notes
    -----
    The SplitMix64 finaliser (Steele, Lea, Flood 2014) applied to a mix of the three integers; it
    depends only on its inputs, unlike Python's ``hash``, which is salted per process.

    References
    ----------
    .. [1] G. L. Steele, D. Lea, C. H. Flood, "Fast splittable pseudorandom number generators",
       OOPSLA 2014.
    """
    with np.errstate(over="ignore"):
        x = np.asarray(index, dtype=np.int64).astype(np.uint64)
        x = x * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0xBF58476D1CE4E5B9)
        x = x + np.asarray(stream, dtype=np.int64).astype(np.uint64) * np.uint64(0x94D049BB133111EB)
        x &= _MASK64
        x ^= x >> np.uint64(30)
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x = x * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(
    epoch_s: ArrayLike, period_s: float, *, seed: int, stream: ArrayLike, offset_s: float = 0.0
) -> FloatArray:
    """Smooth noise in [0, 1): lattice values every `period_s`, joined by a smoothstep.

    Parameters
    ----------
    epoch_s : numeric
        Times in seconds since the Unix epoch.
    period_s : float
        Spacing of the lattice [s]; the noise changes on this time scale.
    seed : int
        Selects the lattice values.
    stream : int or array of int
        Selects independent noises under one seed; broadcasts against `epoch_s`.
    offset_s : float
        Shift of the lattice against the epoch [s].

    Returns
    -------
    numpy.ndarray
        Values in [0, 1), continuous and with a continuous derivative in time.
    """
    position = (np.asarray(epoch_s, dtype=np.float64) - offset_s) / period_s
    cell = np.floor(position)
    fraction = position - cell
    smooth = fraction * fraction * (3.0 - 2.0 * fraction)
    left = hash_uniform(seed, stream, cell)
    right = hash_uniform(seed, stream, cell + 1)
    return left + (right - left) * smooth


def mean_daily_clearness(epoch_s: ArrayLike) -> FloatArray:
    """The seasonal mean of `daily_clearness` [-]: dull in December, fair from April to September.

    Notes
    -----
    .. math:: m = 0.61 - 0.13 \\cos(\\gamma - \\gamma_0) - 0.04 \\cos 2(\\gamma - \\gamma_0)

    with :math:`\\gamma_0` the day angle of 21 December: 0.44 at midwinter, about 0.68 from late
    spring to late summer. An assumption fitted so that the yearly global irradiation comes out near
    the 1,000-1,100 kWh/m² of central Poland and the PV yield near 1,000 kWh/kWp (docs/simulators.md).
    """
    gamma = day_angle_rad(epoch_s)
    phase = gamma + 2.0 * np.pi * 11 / 365.0
    return 0.61 - 0.13 * np.cos(phase) - 0.04 * np.cos(2.0 * phase)


def overcast_exponent(epoch_s: ArrayLike) -> FloatArray:
    """The exponent `a` of the daily clearness :math:`k = 0.1 + 0.9 u^a` for a uniform `u` [-].

    Notes
    -----
    The mean of `k` is :math:`0.1 + 0.9/(1 + a)`; `a` is chosen so that it equals
    `mean_daily_clearness`: :math:`a = 0.9 / (m - 0.1) - 1`. A large `a` (winter) makes most days
    overcast with a few fair ones; a small one (summer) the reverse.
    """
    return 0.9 / (mean_daily_clearness(epoch_s) - 0.1) - 1.0


def daily_clearness(epoch_s: ArrayLike, *, seed: int) -> FloatArray:
    """Cloudiness of the day, drawn from the seed and the date, seasonal [-].

    The value of day `d` holds at 11:00 UTC of that day; between days it moves smoothly.

    Returns
    -------
    numpy.ndarray
        The day's clearness in [0.1, 1]: near 1 for a fair day, near 0.1 for a dull overcast one.
    """
    position = (np.asarray(epoch_s, dtype=np.float64) - DAY_ANCHOR_S) / SECONDS_PER_DAY
    day = np.floor(position)
    fraction = position - day
    smooth = fraction * fraction * (3.0 - 2.0 * fraction)

    def clearness_of(day_index: FloatArray) -> FloatArray:
        anchor_s = day_index * SECONDS_PER_DAY + DAY_ANCHOR_S
        draw = hash_uniform(seed, _STREAM_DAY_CLOUDS, day_index)
        return 0.1 + 0.9 * draw ** overcast_exponent(anchor_s)

    left = clearness_of(day)
    right = clearness_of(day + 1)
    return left + (right - left) * smooth


def clearness_factor(epoch_s: ArrayLike, *, seed: int) -> FloatArray:
    """Share of the clear-sky global irradiance that reaches the ground [-].

    Parameters
    ----------
    epoch_s : numeric
        Times in seconds since the Unix epoch, UTC.
    seed : int
        Selects the weather; the same seed and time give the same value in every process.

    Returns
    -------
    numpy.ndarray
        Values in [0.1, 1].

    Notes
    -----
    .. math:: c = \\mathrm{clip}\\left(k_d + 1.6\\,k_d(1 - k_d)\\,n,\\; 0.1,\\; 1\\right)

    where :math:`k_d` is `daily_clearness` and `n` in [-1, 1] the weighted sum of value noises on
    scales of 6 h, 1 h and 10 min. The factor :math:`k_d(1 - k_d)` makes broken-cloud days the most
    variable and keeps clear and overcast days steady.
    """
    seconds = np.asarray(epoch_s, dtype=np.float64)
    day = daily_clearness(seconds, seed=seed)
    fluctuation = np.zeros_like(day)
    for period_s, weight, stream in zip(
        _CLOUD_OCTAVES_S, _CLOUD_OCTAVE_WEIGHTS, _STREAM_CLOUD_OCTAVES, strict=True
    ):
        fluctuation += weight * (2.0 * value_noise(seconds, period_s, seed=seed, stream=stream) - 1.0)
    return np.clip(day + 1.6 * day * (1.0 - day) * fluctuation, MIN_CLEARNESS, MAX_CLEARNESS)


def temp_air_c(epoch_s: ArrayLike, *, seed: int, longitude_deg: float = 18.94) -> FloatArray:
    """Air temperature: seasonal and daily cycles of central Poland plus a slow anomaly [°C].

    Parameters
    ----------
    epoch_s : numeric
        Times in seconds since the Unix epoch, UTC.
    seed : int
        Selects the day-to-day anomalies.
    longitude_deg : float
        Longitude of the place, for local solar time [degrees east].

    Returns
    -------
    numpy.ndarray
        Air temperature [°C].

    Notes
    -----
    .. math:: T = 8.4 - 10.3 \\cos(\\gamma - \\gamma_{20\\,Jan}) + A \\cos(2\\pi (t_{sol} - 15\\,h)/24\\,h)
              + 8 (n_{3d} - 0.5)

    with the daily amplitude :math:`A` from 3 K in winter to 5 K in summer, the maximum at 15:00 solar
    time, and :math:`n_{3d}` value noise on a three-day scale. The seasonal cycle is a rough fit to
    the climate of central Poland (monthly means near -2 °C in January and 19 °C in July), an
    assumption: the temperature only shapes the module temperature, where a few kelvin matter little.
    """
    seconds = np.asarray(epoch_s, dtype=np.float64)
    gamma = day_angle_rad(seconds)
    seasonal = 8.4 - 10.3 * np.cos(gamma - 2.0 * np.pi * 19 / 365.0)
    amplitude = 4.0 - 1.0 * np.cos(gamma - 2.0 * np.pi * 14 / 365.0)
    solar_hour = np.mod(seconds / 3600.0 + longitude_deg / 15.0, 24.0)
    daily = amplitude * np.cos(2.0 * np.pi * (solar_hour - 15.0) / 24.0)
    anomaly = 8.0 * (value_noise(seconds, 3 * SECONDS_PER_DAY, seed=seed, stream=_STREAM_TEMPERATURE) - 0.5)
    return np.asarray(seasonal + daily + anomaly, dtype=np.float64)
