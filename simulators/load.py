"""A school's electric load: a daily profile in local time chosen by the school calendar.

The load is a base (night) level times a relative profile of the day: lessons with their morning ramp,
midday peak and afternoon activities; a quieter Saturday; the base alone on Sundays and holidays;
staff only during breaks. Kindergartens open 6:30-17:00 and close for a few weeks of summer. The
profile is scaled so that a calendar year sums to the school's yearly consumption, and modulated by
a small deterministic fluctuation. Local time is Europe/Warsaw.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from common.sites import SchoolType, Site
from simulators.calendar import BreakKind, DayKind, SchoolCalendar, default_calendar
from simulators.solar import FloatArray
from simulators.weather import value_noise

ArrayLike = npt.ArrayLike

LOCAL_ZONE = ZoneInfo("Europe/Warsaw")
SECONDS_PER_DAY = 86_400
# Typical school electricity per pupil and year: Energy Sparks benchmarks, as quoted in the reference
# notes on energy (energy.md).
SCHOOL_KWH_PER_PUPIL = 221.0
# An assumption: a kindergarten keeps children 10 hours a day, cooks for them and runs in summer.
KINDERGARTEN_KWH_PER_CHILD = 260.0
# Kindergartens close for four weeks in July or August, which of the two differs by site (assumption).
KINDERGARTEN_SUMMER_CLOSURE_DAYS = 28

Profile = tuple[tuple[float, ...], tuple[float, ...]]
"""A day's load relative to the night base: local hours and levels, linear in between."""


def _profile(*points: tuple[float, float]) -> Profile:
    hours, levels = zip(*points, strict=True)
    return hours, levels


BASE_DAY = _profile((0, 1.0), (24, 1.0))
"""Sunday, public holiday, closed kindergarten: fridges, servers, emergency lighting, circulation pumps."""
SCHOOL_LESSON_DAY = _profile(
    (0, 1.0), (5.5, 1.0), (6.5, 1.6), (7.5, 3.6), (8.0, 4.6), (11.0, 5.0), (12.0, 5.3),
    (13.0, 5.0), (14.5, 4.2), (15.5, 2.8), (17.0, 2.2), (19.0, 1.8), (21.0, 1.2), (22.0, 1.0), (24, 1.0),
)  # fmt: skip
"""Lessons from 8:00, lunch in the canteen, after-school club and sports hall into the evening."""
SCHOOL_SATURDAY = _profile((0, 1.0), (8.0, 1.0), (9.0, 1.6), (13.0, 1.6), (15.0, 1.1), (24, 1.0))
"""Sports hall lettings and the odd school event."""
SCHOOL_BREAK_DAY = _profile((0, 1.0), (7.0, 1.0), (8.0, 1.7), (14.0, 1.7), (15.5, 1.0), (24, 1.0))
"""Administration, caretakers and maintenance, no pupils."""
KINDERGARTEN_OPEN_DAY = _profile(
    (0, 1.0), (6.0, 1.2), (6.5, 2.8), (8.0, 4.2), (11.0, 4.6), (12.0, 4.8), (13.0, 4.0),
    (15.0, 3.4), (16.5, 2.4), (17.0, 1.6), (18.0, 1.1), (24, 1.0),
)  # fmt: skip
"""Open 6:30-17:00: breakfast and lunch cooked on site, naps after lunch."""
# During school breaks fewer children come: the part above the base shrinks by this factor.
KINDERGARTEN_BREAK_ATTENDANCE = 0.75

PROFILES: tuple[Profile, ...] = (
    BASE_DAY,
    SCHOOL_LESSON_DAY,
    SCHOOL_SATURDAY,
    SCHOOL_BREAK_DAY,
    KINDERGARTEN_OPEN_DAY,
)
_BASE, _LESSONS, _SATURDAY, _BREAK, _KINDERGARTEN = range(len(PROFILES))


def annual_consumption_kwh(site: Site) -> float:
    """The site's yearly electricity use [kWh]: from the site file, else estimated from its pupils.

    Notes
    -----
    Schools use about 221 kWh per pupil and year (Energy Sparks' typical benchmark; there is no Polish
    figure). For kindergartens 260 kWh per child is assumed: longer days, cooking, summer opening.
    """
    if site.annual_consumption_kwh is not None:
        return site.annual_consumption_kwh
    per_pupil = KINDERGARTEN_KWH_PER_CHILD if site.type == SchoolType.KINDERGARTEN else SCHOOL_KWH_PER_PUPIL
    return site.pupils * per_pupil


def site_seed(site_id: str, seed: int) -> int:
    """A seed of one site under a common seed, stable across processes."""
    return zlib.crc32(f"{seed}:{site_id}".encode())


def kindergarten_summer_closure(site_id: str, year: int) -> tuple[dt.date, dt.date]:
    """First and last day of a kindergarten's summer closure: four weeks in July or in August.

    The city staggers closures so that some kindergarten is always open; which month a site closes
    is assumed here from a hash of its id.
    """
    month = 7 if zlib.crc32(site_id.encode()) % 2 == 0 else 8
    first_of_month = dt.date(year, month, 1)
    first_monday = first_of_month + dt.timedelta(days=(7 - first_of_month.weekday()) % 7)
    return first_monday, first_monday + dt.timedelta(days=KINDERGARTEN_SUMMER_CLOSURE_DAYS - 1)


def seasonal_factor(day_of_year: ArrayLike) -> FloatArray:
    """More light and pumps in winter: +15 % in mid-January, -15 % in mid-July [-]."""
    days = np.asarray(day_of_year, dtype=np.float64)
    return np.asarray(1.0 + 0.15 * np.cos(2.0 * np.pi * (days - 15.0) / 365.25), dtype=np.float64)


@lru_cache(maxsize=100_000)
def _utc_offset_s(utc_hour: int) -> int:
    # Warsaw's offset changes only on whole UTC hours, so one lookup per hour is exact.
    moment = dt.datetime.fromtimestamp(utc_hour * 3600, tz=dt.UTC).astimezone(LOCAL_ZONE)
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def local_seconds(epoch_s: ArrayLike) -> FloatArray:
    """Seconds since 1970-01-01 00:00 on the Warsaw wall clock, for epoch seconds (UTC)."""
    seconds = np.asarray(epoch_s, dtype=np.float64)
    hours = np.floor(seconds / 3600.0).astype(np.int64)
    unique_hours, inverse = np.unique(hours, return_inverse=True)
    offsets = np.array([_utc_offset_s(int(hour)) for hour in unique_hours], dtype=np.float64)
    return np.asarray(seconds + offsets[inverse.reshape(seconds.shape)], dtype=np.float64)


@dataclass(frozen=True)
class LoadShape:
    """The relative load of a site: which day profile applies when, in units of the night base.

    It depends on the site and the calendar only, not on the seed, so every model of a site shares it
    (and the yearly sums it is scaled with).
    """

    site_id: str
    is_kindergarten: bool
    calendar: SchoolCalendar = field(default_factory=default_calendar)

    def profile_index(self, day: dt.date) -> int:
        """Which of `PROFILES` applies on a local date."""
        kind = self.calendar.day_kind(day)
        if self.is_kindergarten:
            closure_first, closure_last = kindergarten_summer_closure(self.site_id, day.year)
            if kind in (DayKind.PUBLIC_HOLIDAY, DayKind.WEEKEND) or closure_first <= day <= closure_last:
                return _BASE
            return _KINDERGARTEN
        if kind == DayKind.LESSON_DAY:
            return _LESSONS
        if kind == DayKind.WEEKEND and day.weekday() == 5 and self.calendar.break_on(day) != BreakKind.SUMMER:
            return _SATURDAY
        if kind == DayKind.SCHOOL_BREAK:
            return _BREAK
        return _BASE

    def attendance(self, day: dt.date) -> float:
        """The share of the usual activity above the base: lower in a kindergarten during school breaks."""
        if self.is_kindergarten and self.calendar.break_on(day) is not None:
            return KINDERGARTEN_BREAK_ATTENDANCE
        return 1.0

    def relative_load(self, epoch_s: ArrayLike) -> FloatArray:
        """The load in units of the night base, before scaling and fluctuation [-]."""
        local = local_seconds(epoch_s)
        local_day = np.floor(local / SECONDS_PER_DAY).astype(np.int64)
        hour = (local - local_day * SECONDS_PER_DAY) / 3600.0
        days, inverse = np.unique(local_day, return_inverse=True)
        inverse = inverse.reshape(local.shape)
        traits = [_day_traits(self, int(day)) for day in days]
        profile = np.array([trait[0] for trait in traits], dtype=np.int64)[inverse]
        attendance = np.array([trait[1] for trait in traits], dtype=np.float64)[inverse]
        seasonal = np.array([trait[2] for trait in traits], dtype=np.float64)[inverse]
        relative = np.ones_like(local)
        for index in np.unique(profile):
            selected = profile == index
            hours, levels = PROFILES[int(index)]
            relative[selected] = np.interp(hour[selected], hours, levels)
        return np.asarray((1.0 + (relative - 1.0) * attendance) * seasonal, dtype=np.float64)

    def relative_wh(self, year: int) -> float:
        """The relative load summed over a calendar year of local time [h]."""
        return _relative_wh_of_year(self, year)


@lru_cache(maxsize=100_000)
def _day_traits(shape: LoadShape, day_number: int) -> tuple[int, float, float]:
    day = dt.date(1970, 1, 1) + dt.timedelta(days=day_number)
    seasonal = float(seasonal_factor(day.timetuple().tm_yday))
    return shape.profile_index(day), shape.attendance(day), seasonal


@lru_cache(maxsize=256)
def _relative_wh_of_year(shape: LoadShape, year: int) -> float:
    start = dt.datetime(year, 1, 1, tzinfo=LOCAL_ZONE).timestamp()
    end = dt.datetime(year + 1, 1, 1, tzinfo=LOCAL_ZONE).timestamp()
    # Midpoints of 5-minute steps: the profiles are linear between their half-hour nodes.
    step_s = 300.0
    midpoints = np.arange(start + step_s / 2, end, step_s)
    return float(shape.relative_load(midpoints).sum()) * step_s / 3600.0


class SchoolLoad:
    """The electric load of one site over time.

    Parameters
    ----------
    site : Site
        The school: its type, pupils and yearly consumption.
    seed : int
        Selects the fluctuation; the same seed gives the same load in every process.
    calendar : SchoolCalendar, optional
        The school calendar; `default_calendar` when omitted.
    """

    def __init__(self, site: Site, *, seed: int = 0, calendar: SchoolCalendar | None = None) -> None:
        self.shape = LoadShape(site.id, site.type == SchoolType.KINDERGARTEN, calendar or default_calendar())
        self.annual_kwh = annual_consumption_kwh(site)
        self._seed = site_seed(site.id, seed)

    def load_w(self, epoch_s: ArrayLike) -> FloatArray:
        """Electric load of the site [W].

        Parameters
        ----------
        epoch_s : numeric
            Times in seconds since the Unix epoch, UTC.

        Returns
        -------
        numpy.ndarray
            Load [W], positive.

        Notes
        -----
        .. math:: P = s_y \\, r(t) \\, (1 + 0.05 n_{1d}) (1 + 0.06 n_{2h} + 0.04 n_{10min})

        with `r` the `LoadShape.relative_load`, :math:`s_y` the scale that makes the calendar year `y`
        (local time) sum to `annual_kwh` without fluctuation, and :math:`n_\\tau` value noises in
        [-1, 1] on the time scale τ, whose mean is zero: the yearly total stays within about 1 % of
        the target.
        """
        seconds = np.asarray(epoch_s, dtype=np.float64)
        fluctuation = (1.0 + 0.05 * self._noise(seconds, SECONDS_PER_DAY, 1)) * (
            1.0 + 0.06 * self._noise(seconds, 7200, 2) + 0.04 * self._noise(seconds, 600, 3)
        )
        return np.asarray(
            self._scales(seconds) * self.shape.relative_load(seconds) * fluctuation, dtype=np.float64
        )

    def scale_w(self, year: int) -> float:
        """The night base load of a calendar year [W]: what turns the relative load into watts."""
        return self.annual_kwh * 1000.0 / self.shape.relative_wh(year)

    def _noise(self, seconds: FloatArray, period_s: float, stream: int) -> FloatArray:
        return 2.0 * value_noise(seconds, period_s, seed=self._seed, stream=stream) - 1.0

    def _scales(self, seconds: FloatArray) -> FloatArray:
        local_days = np.floor(local_seconds(seconds) / SECONDS_PER_DAY).astype("datetime64[D]")
        years = local_days.astype("datetime64[Y]").astype(np.int64) + 1970
        unique_years, inverse = np.unique(years, return_inverse=True)
        scales = np.array([self.scale_w(int(year)) for year in unique_years], dtype=np.float64)
        return np.asarray(scales[inverse.reshape(seconds.shape)], dtype=np.float64)
