"""The school calendar: the sourced data file, the regulation's rules, and the kind of each day."""

from __future__ import annotations

import datetime as dt

import holidays
import pytest
import yaml

from simulators.calendar import (
    CALENDAR_PATH,
    BreakKind,
    DayKind,
    SchoolCalendar,
    default_calendar,
    easter_sunday,
    first_lesson_day,
    last_lesson_day,
    school_year_by_rules,
)

D = dt.date


def test_every_range_in_the_data_file_names_a_known_source_and_when_it_was_taken() -> None:
    data = yaml.safe_load(CALENDAR_PATH.read_text(encoding="utf-8"))
    assert "Rozporządzenie" in data["sources"]["regulation"]
    for year in data["school_years"]:
        for entry in [year["lessons"], *year["breaks"]]:
            assert entry["source"] in data["sources"]
            assert isinstance(entry["taken"], dt.date)
            assert entry["rule"].startswith("§")


@pytest.mark.parametrize("start_year", [2025, 2026])
def test_the_regulation_rules_give_the_data_files_dates_but_the_winter_break(start_year: int) -> None:
    from_file = default_calendar().school_year(D(start_year, 10, 1))
    from_rules = school_year_by_rules(start_year, winter=from_file.breaks[BreakKind.WINTER])
    assert from_file == from_rules


@pytest.mark.parametrize(
    ("start_year", "first", "last"),
    [
        (2019, D(2019, 9, 2), D(2020, 6, 26)),  # 1 September a Sunday
        (2023, D(2023, 9, 4), D(2024, 6, 21)),  # 1 September a Friday: the Monday after
        (2024, D(2024, 9, 2), D(2025, 6, 27)),  # 20 June a Friday: the Friday after
        (2029, D(2029, 9, 3), D(2030, 6, 19)),  # Corpus Christi on the Thursday: classes end on Wednesday
    ],
)
def test_first_and_last_lesson_days_follow_section_2(start_year: int, first: dt.date, last: dt.date) -> None:
    assert first_lesson_day(start_year) == first
    assert last_lesson_day(start_year + 1) == last


@pytest.mark.parametrize(
    ("day", "kind", "school_break"),
    [
        (D(2025, 9, 1), DayKind.LESSON_DAY, None),
        (D(2025, 11, 11), DayKind.PUBLIC_HOLIDAY, None),
        (D(2025, 12, 22), DayKind.SCHOOL_BREAK, BreakKind.CHRISTMAS),  # a Monday: from the 22nd
        (D(2025, 12, 24), DayKind.PUBLIC_HOLIDAY, BreakKind.CHRISTMAS),  # Christmas Eve, a holiday from 2025
        (D(2026, 1, 2), DayKind.LESSON_DAY, None),
        (D(2026, 2, 2), DayKind.SCHOOL_BREAK, BreakKind.WINTER),  # Łódzkie: 2-15 February 2026
        (D(2026, 2, 16), DayKind.LESSON_DAY, None),
        (D(2026, 4, 2), DayKind.SCHOOL_BREAK, BreakKind.SPRING),
        (D(2026, 4, 8), DayKind.LESSON_DAY, None),
        (D(2026, 6, 26), DayKind.LESSON_DAY, None),
        (D(2026, 6, 27), DayKind.WEEKEND, BreakKind.SUMMER),
        (D(2026, 6, 29), DayKind.SCHOOL_BREAK, BreakKind.SUMMER),
        (D(2026, 11, 27), DayKind.LESSON_DAY, None),
        (D(2026, 11, 28), DayKind.WEEKEND, None),
        (D(2026, 12, 23), DayKind.SCHOOL_BREAK, BreakKind.CHRISTMAS),
        (D(2027, 1, 18), DayKind.SCHOOL_BREAK, BreakKind.WINTER),  # Łódzkie: 18-31 January 2027
        (D(2027, 3, 29), DayKind.PUBLIC_HOLIDAY, BreakKind.SPRING),  # Easter Monday
        (D(2027, 6, 28), DayKind.SCHOOL_BREAK, BreakKind.SUMMER),
    ],
)
def test_kind_of_day(day: dt.date, kind: DayKind, school_break: BreakKind | None) -> None:
    calendar = default_calendar()
    assert calendar.day_kind(day) == kind
    assert calendar.break_on(day) == school_break


@pytest.mark.parametrize("start_year", [2025, 2026])
def test_a_school_year_has_about_185_lesson_days(start_year: int) -> None:
    calendar = default_calendar()
    days = [D(start_year, 9, 1) + dt.timedelta(days=n) for n in range(365)]
    lesson_days = sum(calendar.day_kind(day) == DayKind.LESSON_DAY for day in days)
    # Before the head teacher's own days off (up to 8), a Polish school year has 185-190 lesson days.
    assert 180 <= lesson_days <= 192


def test_years_outside_the_data_follow_the_rules() -> None:
    calendar = SchoolCalendar([])
    assert calendar.break_on(D(2028, 12, 27)) == BreakKind.CHRISTMAS
    assert calendar.day_kind(D(2028, 7, 12)) == DayKind.SCHOOL_BREAK
    assert calendar.day_kind(D(2028, 10, 10)) == DayKind.LESSON_DAY


def test_easter_agrees_with_the_holidays_package() -> None:
    polish = holidays.country_holidays("PL", years=range(2000, 2061))
    easters = sorted(day for day, name in polish.items() if name == "Easter Sunday")
    assert [easter_sunday(day.year) for day in easters] == easters
    assert len(easters) == 61
