"""Sun, sky and PV system: from a time and a place to the AC power of a school's PV roof.

Every function takes NumPy arrays (or scalars) and works elementwise; times are epoch seconds (UTC).
The chain is the usual one of PV performance modelling: solar position (NOAA/Spencer), clear-sky
global irradiance (Ineichen-Perez), a cloud factor from `simulators.weather`, the split into beam and
diffuse (Erbs), the irradiance on the tilted plane (Hay-Davies), the cell temperature (NOCT model),
DC power (PVWatts) and AC power through the inverter (PVWatts inverter model) clipped at its rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from common.sun import DECLINATION_RAD, EQUATION_OF_TIME, EQUATION_OF_TIME_MIN_PER_UNIT, spencer_series

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

SOLAR_CONSTANT_W_PER_M2 = 1361.0
SECONDS_PER_DAY = 86_400
# Epoch seconds of 1 January 00:00 UTC of the years 1900-2199, for the day of the year without datetimes.
_YEAR_STARTS_S = (
    np.arange("1900", "2200", dtype="datetime64[Y]")
    .astype("datetime64[s]")
    .astype(np.int64)
    .astype(np.float64)
)


class SolarPosition(NamedTuple):
    """Apparent position of the sun seen from a place on the ground."""

    zenith_deg: FloatArray
    """Angle between the sun and the vertical [degrees]; above 90 the sun is below the horizon."""
    azimuth_deg: FloatArray
    """Compass direction of the sun, clockwise from north [degrees]."""


@dataclass(frozen=True)
class PvSystem:
    """A PV roof and its inverter.

    Parameters
    ----------
    kwp : float
        Nameplate DC power of the modules at STC [kWp].
    ac_rating_w : float
        The inverter's maximum AC output [W]; DC power beyond it is clipped.
    latitude_deg, longitude_deg : float
        Where the roof is [degrees north, degrees east].
    altitude_m : float
        Height above sea level [m]; Zduńska Wola lies at about 180 m.
    tilt_deg : float
        Tilt of the modules from horizontal [degrees]: 30 on a pitched roof, 10-15 on a flat one.
    surface_azimuth_deg : float
        Direction the modules face, clockwise from north [degrees]; 180 is south.
    system_losses : float
        Fraction of DC energy lost before the inverter: soiling, wiring, mismatch, ageing,
        reflection at steep angles [-].
    gamma_pdc_per_k : float
        Temperature coefficient of the module power [1/K].
    noct_c : float
        Nominal operating cell temperature [°C].
    inverter_efficiency_nominal : float
        The inverter's nominal (European-like) efficiency [-].
    albedo : float
        Reflectance of the ground in front of the array [-].
    """

    kwp: float
    ac_rating_w: float
    latitude_deg: float
    longitude_deg: float
    altitude_m: float = 180.0
    tilt_deg: float = 30.0
    surface_azimuth_deg: float = 180.0
    system_losses: float = 0.10
    gamma_pdc_per_k: float = -0.0037
    noct_c: float = 45.0
    inverter_efficiency_nominal: float = 0.96
    albedo: float = 0.2


def day_angle_rad(epoch_s: ArrayLike) -> FloatArray:
    """Fractional year of Spencer's Fourier series [radians].

    Parameters
    ----------
    epoch_s : numeric
        Times in seconds since the Unix epoch, UTC.

    Returns
    -------
    numpy.ndarray
        The day angle, 0 at midnight of 1 January and 2π at the end of the year.

    Notes
    -----
    .. math:: \\gamma = \\frac{2\\pi}{365} \\left( d - 1 + \\frac{h - 12}{24} \\right)

    with `d` the day of the year and `h` the UTC hour, as in the NOAA equations.

    References
    ----------
    .. [1] NOAA Global Monitoring Laboratory, "General Solar Position Calculations".
    """
    seconds = np.asarray(epoch_s, dtype=np.float64)
    year_index = np.searchsorted(_YEAR_STARTS_S, seconds, side="right") - 1
    days_into_year = (seconds - _YEAR_STARTS_S[year_index]) / SECONDS_PER_DAY
    return np.asarray(2.0 * np.pi / 365.0 * (days_into_year - 0.5), dtype=np.float64)


def extra_radiation_w_per_m2(epoch_s: ArrayLike) -> FloatArray:
    """Irradiance at the top of the atmosphere on a plane facing the sun [W/m^2].

    Parameters
    ----------
    epoch_s : numeric
        Times in seconds since the Unix epoch, UTC.

    Returns
    -------
    numpy.ndarray
        Extraterrestrial normal irradiance [W/m^2].

    Notes
    -----
    Spencer's series for the eccentricity of the Earth's orbit:

    .. math:: E_0 = S \\,(1.000110 + 0.034221 \\cos\\gamma + 0.001280 \\sin\\gamma
              + 0.000719 \\cos 2\\gamma + 0.000077 \\sin 2\\gamma)

    with the solar constant :math:`S = 1361` W/m² (Kopp and Lean 2011).

    References
    ----------
    .. [1] J. W. Spencer, "Fourier series representation of the position of the sun", Search 2(5), 1971.
    """
    gamma = day_angle_rad(epoch_s)
    return SOLAR_CONSTANT_W_PER_M2 * (
        1.000110
        + 0.034221 * np.cos(gamma)
        + 0.001280 * np.sin(gamma)
        + 0.000719 * np.cos(2 * gamma)
        + 0.000077 * np.sin(2 * gamma)
    )


def solar_position(epoch_s: ArrayLike, latitude_deg: float, longitude_deg: float) -> SolarPosition:
    """Zenith and azimuth of the sun from the NOAA equations.

    Parameters
    ----------
    epoch_s : numeric
        Times in seconds since the Unix epoch, UTC.
    latitude_deg : float
        Latitude of the place [degrees north].
    longitude_deg : float
        Longitude of the place [degrees east].

    Returns
    -------
    SolarPosition
        Zenith and azimuth [degrees], arrays of the shape of `epoch_s`.

    Notes
    -----
    With the day angle :math:`\\gamma` (see `day_angle_rad`), Spencer's declination

    .. math:: \\delta = 0.006918 - 0.399912 \\cos\\gamma + 0.070257 \\sin\\gamma - 0.006758 \\cos 2\\gamma
              + 0.000907 \\sin 2\\gamma - 0.002697 \\cos 3\\gamma + 0.00148 \\sin 3\\gamma

    and equation of time (minutes)

    .. math:: E = 229.18 (0.000075 + 0.001868 \\cos\\gamma - 0.032077 \\sin\\gamma
              - 0.014615 \\cos 2\\gamma - 0.040849 \\sin 2\\gamma),

    the hour angle is :math:`\\omega = (t_{UTC} + E + 4\\lambda)/4 - 180°` (t in minutes, λ the
    longitude in degrees), and

    .. math:: \\cos\\theta_z = \\sin\\phi \\sin\\delta + \\cos\\phi \\cos\\delta \\cos\\omega,
    .. math:: \\psi = 180° + \\operatorname{atan2}(\\sin\\omega,
              \\cos\\omega \\sin\\phi - \\tan\\delta \\cos\\phi).

    Accuracy is about 0.5° in declination, ample for energy estimates; refraction is ignored.

    References
    ----------
    .. [1] NOAA Global Monitoring Laboratory, "General Solar Position Calculations".
    .. [2] J. W. Spencer, "Fourier series representation of the position of the sun", Search 2(5), 1971.
    .. [3] J. A. Duffie, W. A. Beckman, "Solar Engineering of Thermal Processes", 4th ed., Wiley 2013, ch. 1.
    """
    seconds = np.asarray(epoch_s, dtype=np.float64)
    gamma = day_angle_rad(seconds)
    declination = spencer_series(gamma, DECLINATION_RAD, np.cos, np.sin)
    equation_of_time_min = EQUATION_OF_TIME_MIN_PER_UNIT * spencer_series(
        gamma, EQUATION_OF_TIME, np.cos, np.sin
    )
    utc_minutes = np.mod(seconds, SECONDS_PER_DAY) / 60.0
    true_solar_minutes = utc_minutes + equation_of_time_min + 4.0 * longitude_deg
    hour_angle = np.radians(true_solar_minutes / 4.0 - 180.0)
    latitude = np.radians(latitude_deg)
    cos_zenith = np.sin(latitude) * np.sin(declination) + np.cos(latitude) * np.cos(declination) * np.cos(
        hour_angle
    )
    zenith_deg = np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))
    azimuth_from_south = np.arctan2(
        np.sin(hour_angle), np.cos(hour_angle) * np.sin(latitude) - np.tan(declination) * np.cos(latitude)
    )
    azimuth_deg = np.mod(np.degrees(azimuth_from_south) + 180.0, 360.0)
    return SolarPosition(zenith_deg, azimuth_deg)


def relative_airmass(zenith_deg: ArrayLike) -> FloatArray:
    """Relative optical air mass by Kasten and Young [-]; NaN with the sun below the horizon.

    Notes
    -----
    .. math:: AM = \\frac{1}{\\cos\\theta_z + 0.50572\\,(96.07995° - \\theta_z)^{-1.6364}}

    References
    ----------
    .. [1] F. Kasten, A. T. Young, "Revised optical air mass tables and approximation formula",
       Applied Optics 28(22), 1989.
    """
    zenith = np.asarray(zenith_deg, dtype=np.float64)
    above = zenith < 90.0
    safe = np.where(above, zenith, 0.0)
    airmass = 1.0 / (np.cos(np.radians(safe)) + 0.50572 * (96.07995 - safe) ** -1.6364)
    return np.where(above, airmass, np.nan)


def linke_turbidity(epoch_s: ArrayLike) -> FloatArray:
    """A seasonal Linke turbidity for central Poland [-].

    Notes
    -----
    An assumption, not a measurement: a cosine from about 3.0 in mid-January to 4.2 in mid-July, the
    range of the monthly climatologies for central Europe (SoDa / Remund et al. 2003). Turbidity
    matters little next to clouds, which `simulators.weather` supplies.

    References
    ----------
    .. [1] J. Remund, L. Wald, M. Lefèvre, T. Ranchin, J. Page, "Worldwide Linke turbidity information",
       ISES Solar World Congress, 2003.
    """
    gamma = day_angle_rad(epoch_s)
    return 3.6 - 0.6 * np.cos(gamma - 2.0 * np.pi * 14 / 365.0)


def ghi_clear_sky_w_per_m2(
    zenith_deg: ArrayLike, epoch_s: ArrayLike, *, altitude_m: float = 180.0, linke: ArrayLike | None = None
) -> FloatArray:
    """Global horizontal irradiance under a cloudless sky (Ineichen-Perez) [W/m^2].

    Parameters
    ----------
    zenith_deg : numeric
        Solar zenith [degrees].
    epoch_s : numeric
        Times in seconds since the Unix epoch, UTC (for the Earth-sun distance and the turbidity).
    altitude_m : float
        Height of the place above sea level [m].
    linke : numeric, optional
        Linke turbidity [-]; `linke_turbidity` when omitted.

    Returns
    -------
    numpy.ndarray
        Clear-sky GHI, 0 with the sun below the horizon [W/m^2].

    Notes
    -----
    .. math:: GHI = c_{g1} E_0 \\cos\\theta_z \\exp\\left(-c_{g2} AM_a (f_{h1} + f_{h2}(T_L - 1))\\right)
              \\exp(0.01 AM_a^{1.8})

    with :math:`c_{g1} = 5.09\\cdot10^{-5} h + 0.868`, :math:`c_{g2} = 3.92\\cdot10^{-5} h + 0.0387`,
    :math:`f_{h1} = e^{-h/8000}`, :math:`f_{h2} = e^{-h/1250}`, `h` the altitude in metres and
    :math:`AM_a` the air mass corrected for the pressure at that altitude.

    References
    ----------
    .. [1] P. Ineichen, R. Perez, "A new airmass independent formulation for the Linke turbidity
       coefficient", Solar Energy 73(3), 2002.
    .. [2] pvlib-python, ``pvlib.clearsky.ineichen``.
    """
    zenith = np.asarray(zenith_deg, dtype=np.float64)
    turbidity = linke_turbidity(epoch_s) if linke is None else np.asarray(linke, dtype=np.float64)
    pressure_ratio = np.exp(-altitude_m / 8434.5)  # isothermal barometric approximation
    airmass = np.nan_to_num(relative_airmass(zenith), nan=0.0) * pressure_ratio
    cg1 = 5.09e-5 * altitude_m + 0.868
    cg2 = 3.92e-5 * altitude_m + 0.0387
    fh1 = np.exp(-altitude_m / 8000.0)
    fh2 = np.exp(-altitude_m / 1250.0)
    cos_zenith = np.maximum(np.cos(np.radians(zenith)), 0.0)
    horizontal_extra = extra_radiation_w_per_m2(epoch_s) * cos_zenith
    ghi = (
        cg1
        * horizontal_extra
        * np.exp(-cg2 * airmass * (fh1 + fh2 * (turbidity - 1.0)))
        * np.exp(0.01 * airmass**1.8)
    )
    # The air-mass correction overshoots within a degree or two of the horizon; no sky gives more
    # than the top of the atmosphere.
    return np.where(zenith < 90.0, np.clip(ghi, 0.0, horizontal_extra), 0.0)


def erbs_diffuse_fraction(clearness_index: ArrayLike) -> FloatArray:
    """Share of the global horizontal irradiance that is diffuse (Erbs correlation) [-].

    Notes
    -----
    .. math:: k_d = \\begin{cases}
              1 - 0.09 k_t & k_t \\le 0.22 \\\\
              0.9511 - 0.1604 k_t + 4.388 k_t^2 - 16.638 k_t^3 + 12.336 k_t^4 & 0.22 < k_t \\le 0.80 \\\\
              0.165 & k_t > 0.80
              \\end{cases}

    with :math:`k_t = GHI / (E_0 \\cos\\theta_z)` the clearness index.

    References
    ----------
    .. [1] D. G. Erbs, S. A. Klein, J. A. Duffie, "Estimation of the diffuse radiation fraction for hourly,
       daily and monthly-average global radiation", Solar Energy 28(4), 1982.
    """
    kt = np.asarray(clearness_index, dtype=np.float64)
    middle = 0.9511 - 0.1604 * kt + 4.388 * kt**2 - 16.638 * kt**3 + 12.336 * kt**4
    return np.where(kt <= 0.22, 1.0 - 0.09 * kt, np.where(kt <= 0.80, middle, 0.165))


def poa_global_w_per_m2(
    ghi_w_per_m2: ArrayLike,
    position: SolarPosition,
    epoch_s: ArrayLike,
    *,
    tilt_deg: float,
    surface_azimuth_deg: float,
    albedo: float = 0.2,
) -> FloatArray:
    """Irradiance on the plane of the modules, from the global horizontal irradiance [W/m^2].

    Parameters
    ----------
    ghi_w_per_m2 : numeric
        Global horizontal irradiance [W/m^2].
    position : SolarPosition
        The sun's position at the same times.
    epoch_s : numeric
        The times, seconds since the Unix epoch (for the extraterrestrial irradiance).
    tilt_deg, surface_azimuth_deg : float
        Orientation of the modules [degrees; azimuth clockwise from north].
    albedo : float
        Ground reflectance [-].

    Returns
    -------
    numpy.ndarray
        Plane-of-array global irradiance [W/m^2].

    Notes
    -----
    GHI is split into beam and diffuse with `erbs_diffuse_fraction`, then transposed with the
    Hay-Davies model, which keeps the circumsolar part of the diffuse light with the beam:

    .. math:: POA = DNI \\cos\\theta_i + DHI \\left( A R_b + (1 - A) \\frac{1 + \\cos\\beta}{2} \\right)
              + GHI\\,\\rho \\frac{1 - \\cos\\beta}{2}

    with the anisotropy index :math:`A = DNI / E_0`, :math:`R_b = \\cos\\theta_i / \\cos\\theta_z` and
    :math:`\\cos\\theta_i = \\cos\\theta_z\\cos\\beta + \\sin\\theta_z\\sin\\beta\\cos(\\psi - \\psi_s)`
    clipped at 0. Near the horizon (zenith > 87°), where the split is least reliable, all light is
    taken as diffuse.

    References
    ----------
    .. [1] J. E. Hay, J. A. Davies, "Calculation of the solar radiation incident on an inclined
       surface", Proc. First Canadian Solar Radiation Data Workshop, 1980.
    .. [2] J. A. Duffie, W. A. Beckman, "Solar Engineering of Thermal Processes", 4th ed., 2013, ch. 2.
    """
    ghi = np.maximum(np.asarray(ghi_w_per_m2, dtype=np.float64), 0.0)
    zenith = np.radians(position.zenith_deg)
    cos_zenith = np.cos(zenith)
    usable = position.zenith_deg < 87.0
    horizontal_extra = extra_radiation_w_per_m2(epoch_s) * np.maximum(cos_zenith, 0.0)
    kt = np.divide(ghi, horizontal_extra, out=np.zeros_like(ghi), where=horizontal_extra > 1.0)
    dhi = np.where(usable, ghi * erbs_diffuse_fraction(np.clip(kt, 0.0, 1.0)), ghi)
    beam_horizontal = ghi - dhi
    tilt = np.radians(tilt_deg)
    cos_incidence = cos_zenith * np.cos(tilt) + np.sin(zenith) * np.sin(tilt) * np.cos(
        np.radians(position.azimuth_deg - surface_azimuth_deg)
    )
    dni = np.divide(beam_horizontal, cos_zenith, out=np.zeros_like(ghi), where=usable)
    incidence_ratio = np.divide(
        np.maximum(cos_incidence, 0.0), cos_zenith, out=np.zeros_like(ghi), where=usable
    )
    anisotropy = np.clip(dni / extra_radiation_w_per_m2(epoch_s), 0.0, 1.0)
    beam = dni * np.maximum(cos_incidence, 0.0)
    sky_diffuse = dhi * (anisotropy * incidence_ratio + (1.0 - anisotropy) * (1.0 + np.cos(tilt)) / 2.0)
    ground = ghi * albedo * (1.0 - np.cos(tilt)) / 2.0
    return np.asarray(beam + sky_diffuse + ground, dtype=np.float64)


def cell_temperature_c(poa_w_per_m2: ArrayLike, temp_air_c: ArrayLike, *, noct_c: float = 45.0) -> FloatArray:
    """Temperature of the PV cells from irradiance and air temperature (NOCT model) [°C].

    Notes
    -----
    .. math:: T_c = T_a + \\frac{POA}{800} (NOCT - 20)

    References
    ----------
    .. [1] R. G. Ross, "Interface design considerations for terrestrial solar cell modules",
       12th IEEE Photovoltaic Specialists Conference, 1976.
    """
    return np.asarray(temp_air_c, dtype=np.float64) + np.asarray(poa_w_per_m2, dtype=np.float64) / 800.0 * (
        noct_c - 20.0
    )


def pv_dc_power_w(
    poa_w_per_m2: ArrayLike,
    temp_cell_c: ArrayLike,
    *,
    kwp: float,
    gamma_pdc_per_k: float = -0.0037,
    system_losses: float = 0.10,
) -> FloatArray:
    """DC power of the array at the inverter's input (PVWatts) [W].

    Notes
    -----
    .. math:: P_{dc} = 1000\\,kWp \\frac{POA}{1000} (1 + \\gamma (T_c - 25)) (1 - L)

    References
    ----------
    .. [1] A. P. Dobos, "PVWatts Version 5 Manual", NREL/TP-6A20-62641, 2014.
    """
    poa = np.asarray(poa_w_per_m2, dtype=np.float64)
    derate = 1.0 + gamma_pdc_per_k * (np.asarray(temp_cell_c, dtype=np.float64) - 25.0)
    return np.maximum(kwp * poa * derate * (1.0 - system_losses), 0.0)


def inverter_ac_power_w(
    dc_power_w: ArrayLike, *, ac_rating_w: float, efficiency_nominal: float = 0.96
) -> FloatArray:
    """AC output of the inverter, clipped at its rating (PVWatts inverter model) [W].

    Notes
    -----
    With :math:`\\zeta = P_{dc}/P_{dc0}` and :math:`P_{dc0} = P_{ac0}/\\eta_{nom}`,

    .. math:: \\eta = \\frac{\\eta_{nom}}{0.9637} (-0.0162\\zeta - 0.0059/\\zeta + 0.9858),
    .. math:: P_{ac} = \\min(\\eta P_{dc}, P_{ac0}),

    and 0 where the efficiency would be negative: at a few tenths of a percent of its rating the
    inverter does not start, which is why the output is exactly 0 at dawn, dusk and night.

    References
    ----------
    .. [1] A. P. Dobos, "PVWatts Version 5 Manual", NREL/TP-6A20-62641, 2014.
    """
    dc = np.asarray(dc_power_w, dtype=np.float64)
    dc_rating_w = ac_rating_w / efficiency_nominal
    zeta = np.maximum(dc / dc_rating_w, 1e-9)
    efficiency = efficiency_nominal / 0.9637 * (-0.0162 * zeta - 0.0059 / zeta + 0.9858)
    ac = np.where(dc > 0.0, np.maximum(efficiency * dc, 0.0), 0.0)
    return np.minimum(ac, ac_rating_w)


def pv_ac_power_w(
    system: PvSystem, epoch_s: ArrayLike, *, clearness: ArrayLike, temp_air_c: ArrayLike
) -> FloatArray:
    """AC power of a PV system at given times under given sky and air conditions [W].

    Parameters
    ----------
    system : PvSystem
        The roof and the inverter.
    epoch_s : numeric
        Times in seconds since the Unix epoch, UTC.
    clearness : numeric
        Cloud factor: the share of the clear-sky global irradiance reaching the ground [-],
        e.g. from `simulators.weather.clearness_factor`.
    temp_air_c : numeric
        Air temperature [°C].

    Returns
    -------
    numpy.ndarray
        AC power [W], 0 at night, at most ``system.ac_rating_w``.

    Notes
    -----
    :math:`GHI = c \\cdot GHI_{clear}`, then `poa_global_w_per_m2`, `cell_temperature_c`,
    `pv_dc_power_w` and `inverter_ac_power_w` in turn.
    """
    position = solar_position(epoch_s, system.latitude_deg, system.longitude_deg)
    ghi_clear = ghi_clear_sky_w_per_m2(position.zenith_deg, epoch_s, altitude_m=system.altitude_m)
    ghi = ghi_clear * np.asarray(clearness, dtype=np.float64)
    poa = poa_global_w_per_m2(
        ghi,
        position,
        epoch_s,
        tilt_deg=system.tilt_deg,
        surface_azimuth_deg=system.surface_azimuth_deg,
        albedo=system.albedo,
    )
    temp_cell = cell_temperature_c(poa, temp_air_c, noct_c=system.noct_c)
    dc = pv_dc_power_w(
        poa,
        temp_cell,
        kwp=system.kwp,
        gamma_pdc_per_k=system.gamma_pdc_per_k,
        system_losses=system.system_losses,
    )
    return inverter_ac_power_w(
        dc, ac_rating_w=system.ac_rating_w, efficiency_nominal=system.inverter_efficiency_nominal
    )
