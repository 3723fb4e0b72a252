"""How high the sun stands at one moment and place, in plain Python: the edge agent has no NumPy, and needs
only to tell night from day (an inverter that does not answer at night is asleep, not broken).

The same NOAA equations as `simulators.solar.solar_position`, which evaluates Spencer's series kept here over
arrays for the simulated PV roofs; a test holds the two to agree.
"""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Callable
from typing import Any

SECONDS_PER_DAY = 86_400
# The sun's centre this far below the horizon still lights the sky; a panel makes nothing then [degrees].
NIGHT_BELOW_DEG = -3.0
# Spencer's Fourier series of the day angle γ (Spencer 1971, as NOAA gives them), as terms (k, a_k, b_k) of
# Σ a_k cos kγ + b_k sin kγ: the sun's declination [radians], and the equation of time in units of
# `EQUATION_OF_TIME_MIN_PER_UNIT` minutes.
DECLINATION_RAD = (
    (0, 0.006918, 0.0),
    (1, -0.399912, 0.070257),
    (2, -0.006758, 0.000907),
    (3, -0.002697, 0.00148),
)
EQUATION_OF_TIME = ((0, 0.000075, 0.0), (1, 0.001868, -0.032077), (2, -0.014615, -0.040849))
EQUATION_OF_TIME_MIN_PER_UNIT = 229.18

Terms = tuple[tuple[int, float, float], ...]


def spencer_series(gamma: Any, terms: Terms, cos: Callable[[Any], Any], sin: Callable[[Any], Any]) -> Any:
    """:math:`\\sum_k a_k \\cos k\\gamma + b_k \\sin k\\gamma` of a day angle: of a float with `math`'s cos
    and sin, of an array with NumPy's."""
    return sum(a * cos(k * gamma) + b * sin(k * gamma) for k, a, b in terms)


def _day_angle_rad(epoch_s: float) -> float:
    """Spencer's fractional year: 0 at the start of 1 January (UTC), 2π at the end of the year."""
    year_start_s = calendar.timegm((time.gmtime(epoch_s).tm_year, 1, 1, 0, 0, 0))
    return 2.0 * math.pi / 365.0 * ((epoch_s - year_start_s) / SECONDS_PER_DAY - 0.5)


def sun_elevation_deg(epoch_s: float, latitude_deg: float, longitude_deg: float) -> float:
    """The sun's elevation above the horizon [degrees], refraction ignored (accurate to about 0.5°).

    Parameters
    ----------
    epoch_s : float
        Seconds since the Unix epoch, UTC.
    latitude_deg, longitude_deg : float
        The place [degrees north, degrees east].

    Notes
    -----
    The declination :math:`\\delta` and the equation of time :math:`E` from Spencer's series of the day angle,
    the hour angle :math:`\\omega = (t_{UTC} + E + 4\\lambda)/4 - 180°`, and
    :math:`\\sin\\alpha = \\sin\\phi \\sin\\delta + \\cos\\phi \\cos\\delta \\cos\\omega`
    (see `simulators.solar.solar_position` for the references).
    """
    gamma = _day_angle_rad(epoch_s)
    declination = spencer_series(gamma, DECLINATION_RAD, math.cos, math.sin)
    equation_of_time_min = EQUATION_OF_TIME_MIN_PER_UNIT * spencer_series(
        gamma, EQUATION_OF_TIME, math.cos, math.sin
    )
    utc_minutes = (epoch_s % SECONDS_PER_DAY) / 60.0
    hour_angle = math.radians((utc_minutes + equation_of_time_min + 4.0 * longitude_deg) / 4.0 - 180.0)
    latitude = math.radians(latitude_deg)
    sin_elevation = math.sin(latitude) * math.sin(declination) + math.cos(latitude) * math.cos(
        declination
    ) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_elevation))))
