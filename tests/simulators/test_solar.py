"""Solar position, clear sky and the PV power chain, against known values and physical bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.clock import parse_iso_ms
from common.sun import sun_elevation_deg
from simulators import solar
from simulators.weather import clearness_factor, temp_air_c

LAT, LON = 51.60, 18.94  # Zduńska Wola
SYSTEM = solar.PvSystem(kwp=49.5, ac_rating_w=40_000.0, latitude_deg=LAT, longitude_deg=LON)


def epoch_s(iso: str) -> float:
    return parse_iso_ms(iso) / 1000


def test_noon_zenith_at_the_solstices_is_latitude_minus_declination() -> None:
    # Solar noon at 18.94 E is about 10:44 UTC in June and 10:46 UTC in December.
    june = solar.solar_position(epoch_s("2026-06-21T10:44:00Z"), LAT, LON)
    december = solar.solar_position(epoch_s("2026-12-21T10:46:00Z"), LAT, LON)
    assert float(june.zenith_deg) == pytest.approx(LAT - 23.44, abs=0.5)
    assert float(december.zenith_deg) == pytest.approx(LAT + 23.44, abs=0.5)
    assert float(june.azimuth_deg) == pytest.approx(180.0, abs=3.0)


def test_the_sun_rises_in_the_east_and_sets_in_the_west() -> None:
    morning = solar.solar_position(epoch_s("2026-03-20T06:00:00Z"), LAT, LON)
    evening = solar.solar_position(epoch_s("2026-03-20T16:00:00Z"), LAT, LON)
    assert 60 < float(morning.azimuth_deg) < 120
    assert 240 < float(evening.azimuth_deg) < 300
    assert float(solar.solar_position(epoch_s("2026-03-20T23:00:00Z"), LAT, LON).zenith_deg) > 90


@settings(max_examples=300, deadline=None)
@given(
    st.floats(1.5e9, 4.1e9),
    st.floats(-66.0, 66.0),
    st.floats(-180.0, 180.0),
)
def test_the_edge_s_plain_python_sun_is_the_same_as_the_simulators(
    epoch: float, latitude: float, longitude: float
) -> None:
    elevation = sun_elevation_deg(epoch, latitude, longitude)
    zenith = float(solar.solar_position(epoch, latitude, longitude).zenith_deg)
    assert elevation == pytest.approx(90.0 - zenith, abs=1e-9)


def test_day_angle_runs_over_the_year() -> None:
    assert float(solar.day_angle_rad(epoch_s("2026-01-01T12:00:00Z"))) == pytest.approx(0.0, abs=1e-9)
    assert float(solar.day_angle_rad(epoch_s("2026-07-02T12:00:00Z"))) == pytest.approx(np.pi, abs=0.01)


def test_a_scalar_and_an_array_give_the_same_values() -> None:
    times = epoch_s("2026-05-05T00:00:00Z") + np.arange(0, 86_400, 3600.0)
    whole = solar.solar_position(times, LAT, LON)
    for index, moment in enumerate(times):
        one = solar.solar_position(moment, LAT, LON)
        assert float(one.zenith_deg) == pytest.approx(whole.zenith_deg[index], abs=1e-9)


def test_clear_sky_irradiance_is_plausible_and_zero_at_night() -> None:
    times = epoch_s("2026-06-21T00:00:00Z") + np.arange(0, 86_400, 60.0)
    position = solar.solar_position(times, LAT, LON)
    ghi = solar.ghi_clear_sky_w_per_m2(position.zenith_deg, times)
    assert 800 < ghi.max() < 1000  # a clear June noon in central Europe
    assert np.all(ghi[position.zenith_deg >= 90] == 0)
    assert np.all(
        ghi <= solar.extra_radiation_w_per_m2(times) * np.maximum(np.cos(np.radians(position.zenith_deg)), 0)
    )


def test_a_south_roof_gets_more_than_the_ground_on_a_clear_winter_noon() -> None:
    moment = np.array([epoch_s("2026-12-15T10:45:00Z")])
    position = solar.solar_position(moment, LAT, LON)
    ghi = solar.ghi_clear_sky_w_per_m2(position.zenith_deg, moment)
    poa = solar.poa_global_w_per_m2(ghi, position, moment, tilt_deg=30, surface_azimuth_deg=180)
    assert float(poa[0]) > 1.5 * float(ghi[0])


def test_the_inverter_clips_at_its_rating_and_does_not_start_on_a_trickle() -> None:
    dc = np.array([0.0, 50.0, 5_000.0, 20_000.0, 60_000.0])
    ac = solar.inverter_ac_power_w(dc, ac_rating_w=40_000.0)
    assert ac[0] == 0 and ac[1] == 0
    assert 0.9 * dc[2] < ac[2] < dc[2]
    assert ac[4] == 40_000.0
    assert np.all(np.diff(ac) >= 0)


def test_hotter_cells_give_less_power() -> None:
    cool = solar.pv_dc_power_w(800.0, 25.0, kwp=10.0)
    hot = solar.pv_dc_power_w(800.0, 60.0, kwp=10.0)
    assert float(hot) == pytest.approx(float(cool) * (1 - 0.0037 * 35))


@settings(max_examples=200, deadline=None)
@given(
    moment_s=st.floats(min_value=1.7e9, max_value=1.9e9),
    clearness=st.floats(min_value=0.1, max_value=1.0),
    temp_c=st.floats(min_value=-25, max_value=38),
)
def test_ac_power_stays_between_zero_and_the_rating(moment_s: float, clearness: float, temp_c: float) -> None:
    power = float(solar.pv_ac_power_w(SYSTEM, moment_s, clearness=clearness, temp_air_c=temp_c))
    assert 0.0 <= power <= SYSTEM.ac_rating_w
    if float(solar.solar_position(moment_s, LAT, LON).zenith_deg) >= 90:
        assert power == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_year_at_zdunska_wola_yields_like_central_poland(seed: int) -> None:
    step_s = 300.0
    times = epoch_s("2026-01-01T00:00:00Z") + np.arange(0, 365 * 86_400, step_s) + step_s / 2
    power = solar.pv_ac_power_w(
        SYSTEM, times, clearness=clearness_factor(times, seed=seed), temp_air_c=temp_air_c(times, seed=seed)
    )
    specific_yield_kwh_per_kwp = power.sum() * step_s / 3600 / 1000 / SYSTEM.kwp
    assert 950 <= specific_yield_kwh_per_kwp <= 1150
