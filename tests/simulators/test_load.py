"""The school load: shaped by the calendar, scaled to the yearly consumption."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from common.clock import parse_iso_ms
from common.sites import Site
from simulators.load import (
    LOCAL_ZONE,
    SchoolLoad,
    annual_consumption_kwh,
    kindergarten_summer_closure,
    local_seconds,
)


def local_day_s(iso_date: str, hours: np.ndarray) -> np.ndarray:
    midnight = parse_iso_ms(f"{iso_date}T00:00:00") / 1000
    offset = dt.datetime.fromisoformat(iso_date).replace(tzinfo=LOCAL_ZONE).utcoffset()
    assert offset is not None
    return midnight - offset.total_seconds() + hours * 3600


def test_consumption_is_estimated_from_pupils_when_the_site_file_has_none(sp5: Site, pm1: Site) -> None:
    assert annual_consumption_kwh(sp5) == pytest.approx(620 * 221)
    assert annual_consumption_kwh(pm1) > pm1.pupils * 221
    given = sp5.model_copy(update={"annual_consumption_kwh": 90_000.0})
    assert annual_consumption_kwh(given) == 90_000.0


@pytest.mark.parametrize("site_name", ["sp5", "pm1"])
def test_a_calendar_year_sums_to_the_yearly_use(site_name: str, request: pytest.FixtureRequest) -> None:
    site: Site = request.getfixturevalue(site_name)
    load = SchoolLoad(site, seed=3)
    start = dt.datetime(2026, 1, 1, tzinfo=LOCAL_ZONE).timestamp()
    end = dt.datetime(2027, 1, 1, tzinfo=LOCAL_ZONE).timestamp()
    midpoints = np.arange(start + 30, end, 60.0)
    total_kwh = load.load_w(midpoints).sum() * 60 / 3.6e6
    assert total_kwh == pytest.approx(annual_consumption_kwh(site), rel=0.02)


def test_lesson_day_shape(sp5: Site) -> None:
    load = SchoolLoad(sp5)
    hours = np.arange(24.0)
    monday = load.load_w(local_day_s("2026-03-09", hours))  # lessons
    saturday = load.load_w(local_day_s("2026-03-14", hours))
    sunday = load.load_w(local_day_s("2026-03-15", hours))
    winter_break = load.load_w(local_day_s("2026-02-04", hours))
    night = monday[:5].mean()
    assert monday[10] > 4 * night, "lessons draw several times the night base"
    assert monday[7] > 1.5 * monday[6], "the ramp before 8:00"
    assert monday[16] < monday[11], "afternoon below the lesson peak"
    assert saturday.max() < 0.5 * monday.max()
    assert sunday.max() < 1.3 * night
    assert sunday.sum() < winter_break.sum() < monday.sum()


def test_a_kindergarten_opens_early_and_closes_for_part_of_summer(pm1: Site) -> None:
    load = SchoolLoad(pm1)
    hours = np.arange(0, 24, 0.5)
    weekday = load.load_w(local_day_s("2026-03-10", hours))
    assert weekday[hours == 7.0][0] > 2 * weekday[hours == 3.0][0], "children arrive from 6:30"
    first, last = kindergarten_summer_closure(pm1.id, 2026)
    assert last - first == dt.timedelta(days=27) and first.month in (7, 8)
    closed_day = (first + dt.timedelta(days=2)).isoformat()
    open_month = 8 if first.month == 7 else 7
    open_day = dt.date(2026, open_month, 1)
    open_day += dt.timedelta(days=(2 - open_day.weekday()) % 7)  # a Wednesday
    summer_closed = load.load_w(local_day_s(closed_day, hours))
    summer_open = load.load_w(local_day_s(open_day.isoformat(), hours))
    assert summer_open.max() > 2 * summer_closed.max()


def test_the_load_is_a_function_of_time_and_seed(sp5: Site) -> None:
    times = parse_iso_ms("2026-05-05T00:00:00Z") / 1000 + np.arange(0, 86_400, 97.0)
    assert np.array_equal(SchoolLoad(sp5, seed=1).load_w(times), SchoolLoad(sp5, seed=1).load_w(times))
    assert not np.array_equal(SchoolLoad(sp5, seed=1).load_w(times), SchoolLoad(sp5, seed=2).load_w(times))


def test_local_time_follows_summer_time() -> None:
    winter = parse_iso_ms("2026-01-15T12:00:00Z") / 1000
    summer = parse_iso_ms("2026-07-15T12:00:00Z") / 1000
    assert local_seconds(winter) - winter == 3600
    assert local_seconds(summer) - summer == 7200
