"""What kind of day a date is for a Polish school: lessons, weekend, public holiday or a school break.

The breaks of the school years 2025/26 and 2026/27 come from ``simulators/data/school_calendar.yaml``,
each range with its source. Other years follow the rules of the regulation on the organisation of the
school year (Rozporządzenie MEN z 11 sierpnia 2017 r. w sprawie organizacji roku szkolnego), computed
here; only the winter break, which the minister sets per voivodeship, is then an assumption.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import holidays
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.config import load_yaml_model

CALENDAR_PATH = Path(__file__).resolve().parent / "data" / "school_calendar.yaml"


class DayKind(StrEnum):
    """The kind of a day for a school, in the order of precedence."""

    PUBLIC_HOLIDAY = "public_holiday"
    WEEKEND = "weekend"
    SCHOOL_BREAK = "school_break"
    LESSON_DAY = "lesson_day"


class BreakKind(StrEnum):
    """The breaks of a Polish school year."""

    CHRISTMAS = "christmas"
    WINTER = "winter"
    SPRING = "spring"
    SUMMER = "summer"


@dataclass(frozen=True)
class DateRange:
    """Consecutive days, both ends included."""

    first: dt.date
    last: dt.date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.first <= day <= self.last


@dataclass(frozen=True)
class SchoolYear:
    """The lesson period and the breaks of one school year (1 September to 31 August)."""

    name: str
    lessons: DateRange
    breaks: dict[BreakKind, DateRange]

    @property
    def start_year(self) -> int:
        return self.lessons.first.year if self.lessons.first.month >= 9 else self.lessons.first.year - 1

    def break_on(self, day: dt.date) -> BreakKind | None:
        """The break `day` falls in; days of the school year outside the lesson period count as summer."""
        for kind, days in self.breaks.items():
            if day in days:
                return kind
        if day not in self.lessons:
            return BreakKind.SUMMER
        return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SourcedRange(_Strict):
    first: dt.date
    last: dt.date
    source: Annotated[str, Field(min_length=1)]
    rule: Annotated[str, Field(min_length=1)]
    taken: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> _SourcedRange:
        if self.last < self.first:
            raise ValueError(f"range ends ({self.last}) before it begins ({self.first})")
        return self


class _SourcedBreak(_SourcedRange):
    kind: BreakKind


class _SchoolYearEntry(_Strict):
    name: Annotated[str, Field(pattern=r"^\d{4}/\d{2}$")]
    lessons: _SourcedRange
    breaks: list[_SourcedBreak]


class CalendarFile(_Strict):
    """The contents of ``school_calendar.yaml``."""

    voivodeship: str
    sources: dict[str, str]
    school_years: list[_SchoolYearEntry]

    @model_validator(mode="after")
    def _sources_known(self) -> CalendarFile:
        for year in self.school_years:
            for entry in [year.lessons, *year.breaks]:
                if entry.source not in self.sources:
                    raise ValueError(f"{year.name}: source {entry.source!r} is not among the sources")
        return self

    def to_school_years(self) -> list[SchoolYear]:
        return [
            SchoolYear(
                name=entry.name,
                lessons=DateRange(entry.lessons.first, entry.lessons.last),
                breaks={item.kind: DateRange(item.first, item.last) for item in entry.breaks},
            )
            for entry in self.school_years
        ]


def first_lesson_day(start_year: int) -> dt.date:
    """The first day of classes of the school year starting in `start_year` (§ 2 ust. 1).

    Classes begin on the first weekday of September; when 1 September is a Friday or a Saturday, on
    the following Monday.
    """
    first_september = dt.date(start_year, 9, 1)
    weekday = first_september.weekday()
    if weekday in (4, 5):  # Friday, Saturday
        return first_september + dt.timedelta(days=7 - weekday)
    if weekday == 6:  # Sunday: the first weekday is Monday 2 September
        return first_september + dt.timedelta(days=1)
    return first_september


def last_lesson_day(end_year: int) -> dt.date:
    """The last day of classes of the school year ending in `end_year` (§ 2 ust. 1).

    The first Friday after 20 June; the Wednesday before it when the Thursday between is a public
    holiday (Corpus Christi).
    """
    twentieth = dt.date(end_year, 6, 20)
    friday = twentieth + dt.timedelta(days=(4 - twentieth.weekday()) % 7 or 7)
    if is_public_holiday(friday - dt.timedelta(days=1)):
        return friday - dt.timedelta(days=2)
    return friday


def christmas_break(year: int) -> DateRange:
    """23-31 December, or 22-31 December when the 22nd is a Monday (§ 3 ust. 1 pkt 1)."""
    first = dt.date(year, 12, 22) if dt.date(year, 12, 22).weekday() == 0 else dt.date(year, 12, 23)
    return DateRange(first, dt.date(year, 12, 31))


def easter_sunday(year: int) -> dt.date:
    """Western Easter Sunday of a year (the anonymous Gregorian algorithm of Meeus/Butcher)."""
    golden = year % 19
    century, year_in_century = divmod(year, 100)
    leap_centuries, century_rest = divmod(century, 4)
    moon_correction = (century + 8) // 25
    epact_shift = (century - moon_correction + 1) // 3
    epact = (19 * golden + century - leap_centuries - epact_shift + 15) % 30
    leap_years, year_rest = divmod(year_in_century, 4)
    weekday_shift = (32 + 2 * century_rest + 2 * leap_years - epact - year_rest) % 7
    correction = (golden + 11 * epact + 22 * weekday_shift) // 451
    month, day = divmod(epact + weekday_shift - 7 * correction + 114, 31)
    return dt.date(year, month, day + 1)


def spring_break(year: int) -> DateRange:
    """From the Thursday before Easter to the Tuesday after it (§ 3 ust. 1 pkt 3)."""
    easter = easter_sunday(year)
    return DateRange(easter - dt.timedelta(days=3), easter + dt.timedelta(days=2))


def assumed_winter_break(year: int) -> DateRange:
    """An assumed winter break: the two weeks from the last Monday of January.

    The minister sets the real dates per voivodeship two years ahead (§ 3 ust. 1 pkt 2); within the
    permitted period, mid-January to the end of February, this is a middle choice.
    """
    last_january = dt.date(year, 1, 31)
    monday = last_january - dt.timedelta(days=last_january.weekday())
    return DateRange(monday, monday + dt.timedelta(days=13))


def school_year_by_rules(start_year: int, *, winter: DateRange | None = None) -> SchoolYear:
    """The school year starting in September of `start_year`, from the regulation's rules.

    Parameters
    ----------
    start_year : int
        The calendar year in which the school year begins.
    winter : DateRange, optional
        The winter break of the voivodeship; `assumed_winter_break` when omitted.
    """
    end_year = start_year + 1
    lessons = DateRange(first_lesson_day(start_year), last_lesson_day(end_year))
    return SchoolYear(
        name=f"{start_year}/{end_year % 100:02d}",
        lessons=lessons,
        breaks={
            BreakKind.CHRISTMAS: christmas_break(start_year),
            BreakKind.WINTER: winter or assumed_winter_break(end_year),
            BreakKind.SPRING: spring_break(end_year),
            BreakKind.SUMMER: DateRange(lessons.last + dt.timedelta(days=1), dt.date(end_year, 8, 31)),
        },
    )


@lru_cache(maxsize=1)
def _polish_holidays() -> holidays.HolidayBase:
    return holidays.country_holidays("PL")


def is_public_holiday(day: dt.date) -> bool:
    """Whether `day` is a statutory public holiday in Poland (the `holidays` package, country PL)."""
    return day in _polish_holidays()


class SchoolCalendar:
    """The kind of each day for the schools of one voivodeship.

    Parameters
    ----------
    school_years : list of SchoolYear
        Known school years; years not among them follow `school_year_by_rules`.
    """

    def __init__(self, school_years: list[SchoolYear]) -> None:
        self._known = {year.start_year: year for year in school_years}

    @classmethod
    def from_file(cls, path: Path = CALENDAR_PATH) -> SchoolCalendar:
        """Read a calendar file; `common.config.ConfigError` names the file and what is wrong."""
        return cls(load_yaml_model(path, CalendarFile).to_school_years())

    def school_year(self, day: dt.date) -> SchoolYear:
        """The school year (1 September to 31 August) that `day` belongs to."""
        start_year = day.year if day.month >= 9 else day.year - 1
        known = self._known.get(start_year)
        return known if known is not None else _rules_year(start_year)

    def break_on(self, day: dt.date) -> BreakKind | None:
        """The school break `day` falls in, if any (weekends and holidays inside a break included)."""
        return self.school_year(day).break_on(day)

    def day_kind(self, day: dt.date) -> DayKind:
        """Public holiday, weekend, school break or lesson day, in that order of precedence."""
        if is_public_holiday(day):
            return DayKind.PUBLIC_HOLIDAY
        if day.weekday() >= 5:
            return DayKind.WEEKEND
        if self.break_on(day) is not None:
            return DayKind.SCHOOL_BREAK
        return DayKind.LESSON_DAY


@lru_cache(maxsize=64)
def _rules_year(start_year: int) -> SchoolYear:
    return school_year_by_rules(start_year)


@lru_cache(maxsize=1)
def default_calendar() -> SchoolCalendar:
    """The calendar of Zduńska Wola's schools, from the shipped data file."""
    return SchoolCalendar.from_file()
