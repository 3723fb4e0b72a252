"""The calculator's formulas as small pure functions over scalars or NumPy arrays.

Every estimate lists the names of the functions it used, so that a figure can be recomputed by hand from
the data keys it also lists. Energies in kWh, heat in GJ where tariffs are per GJ, money in zł (PLN),
powers in kW.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloud.smog.geo import Numeric

MJ_PER_KWH = 3.6
GJ_PER_KWH = 0.0036
MONTHS_PER_YEAR = 12
DAYS_PER_YEAR = 365
# Heat that warms a litre of water by one kelvin [kWh/(l·K)]: 4.19 kJ/(kg·K), a kilogram a litre.
WATER_KWH_PER_LITRE_K = 4.19 / 3600


def _out(value: object) -> Numeric:
    """A scalar result as a float (NumPy's float64 is one), an array as a float64 array."""
    if isinstance(value, float | int):
        return float(value)
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else array


def heat_demand_kwh_per_year(heated_area_m2: Numeric, heat_demand_kwh_per_m2_year: Numeric) -> Numeric:
    """Useful heat a building needs for space heating in a year.

    Parameters
    ----------
    heated_area_m2 : numeric
        Heated floor area [m²].
    heat_demand_kwh_per_m2_year : numeric
        Specific useful heat demand for the building's construction period [kWh/(m²·year)].

    Returns
    -------
    heat_demand_kwh_per_year : numeric
        [kWh/year]

    Notes
    -----
    .. math:: Q = A \\cdot q
    """
    return _out(heated_area_m2 * heat_demand_kwh_per_m2_year)


def hot_water_heat_kwh_per_year(
    persons: Numeric,
    litres_per_person_day: Numeric,
    supply_temperature_c: Numeric,
    cold_water_temperature_c: Numeric,
) -> Numeric:
    """Useful heat a household's hot water takes in a year.

    Parameters
    ----------
    persons : numeric
        People in the household [-].
    litres_per_person_day : numeric
        Hot water a person uses a day [l].
    supply_temperature_c, cold_water_temperature_c : numeric
        The hot water's temperature and the cold water's it is heated from [°C].

    Returns
    -------
    hot_water_heat_kwh_per_year : numeric
        [kWh/year]; storage and circulation losses not included.

    Notes
    -----
    .. math:: Q_{W} = n \\cdot V \\cdot 365 \\cdot c_w \\cdot (\\theta_{W} - \\theta_{0}),
       \\qquad c_w = 4.19\\,\\mathrm{kJ/(kg\\,K)} = 1.164\\,\\mathrm{Wh/(l\\,K)}
    """
    lift_k = supply_temperature_c - cold_water_temperature_c
    return _out(persons * litres_per_person_day * DAYS_PER_YEAR * WATER_KWH_PER_LITRE_K * lift_k)


def design_heat_power_kw(heat_demand_kwh_per_year: Numeric, full_load_hours_h: Numeric) -> Numeric:
    """Heat power the heat source must deliver, from the yearly demand and the full-load hours.

    Parameters
    ----------
    heat_demand_kwh_per_year : numeric
        Useful heat demand [kWh/year].
    full_load_hours_h : numeric
        Hours a year the source would need at full power to deliver the demand [h]; about 1,800–2,000 in
        Polish climate zone III (design outdoor temperature −20 °C).

    Returns
    -------
    design_heat_power_kw : numeric
        [kW]

    Notes
    -----
    .. math:: P = Q / h_{\\mathrm{full}}
    """
    return _out(heat_demand_kwh_per_year / full_load_hours_h)


def final_energy_kwh_per_year(heat_demand_kwh_per_year: Numeric, efficiency: Numeric) -> Numeric:
    """Energy bought (fuel, electricity or district heat) to deliver the useful heat.

    Parameters
    ----------
    heat_demand_kwh_per_year : numeric
        Useful heat demand [kWh/year].
    efficiency : numeric
        Seasonal efficiency of the appliance (0–1], or a heat pump's SCOP (> 1) [-].

    Returns
    -------
    final_energy_kwh_per_year : numeric
        [kWh/year]

    Notes
    -----
    .. math:: E = Q / \\eta \\quad\\text{or}\\quad E = Q / \\mathrm{SCOP}
    """
    return _out(heat_demand_kwh_per_year / efficiency)


def energy_gj(energy_kwh: Numeric) -> Numeric:
    """Energy in GJ from kWh: :math:`E_{GJ} = 0.0036\\,E_{kWh}`."""
    return _out(energy_kwh * GJ_PER_KWH)


def solid_fuel_tonnes_per_year(
    final_energy_kwh_per_year: Numeric, calorific_value_mj_per_kg: Numeric
) -> Numeric:
    """Tonnes of a solid fuel (coal, pellet, wood) holding the final energy.

    Notes
    -----
    .. math:: m_t = \\frac{3.6\\,E}{\\mathrm{CV}_{MJ/kg} \\cdot 1000}
    """
    return _out(final_energy_kwh_per_year * MJ_PER_KWH / calorific_value_mj_per_kg / 1000.0)


def lpg_litres_per_year(final_energy_kwh_per_year: Numeric, calorific_value_mj_per_litre: Numeric) -> Numeric:
    """Litres of LPG holding the final energy.

    Notes
    -----
    .. math:: V_l = \\frac{3.6\\,E}{\\mathrm{CV}_{MJ/l}}
    """
    return _out(final_energy_kwh_per_year * MJ_PER_KWH / calorific_value_mj_per_litre)


def quantity_cost_pln_per_year(quantity_per_year: Numeric, price_pln_per_unit: Numeric) -> Numeric:
    """Yearly cost of a fuel bought by quantity (tonnes, litres, kWh): :math:`C = m \\cdot p`."""
    return _out(quantity_per_year * price_pln_per_unit)


def fixed_charges_pln_per_year(fixed_pln_per_month: Numeric) -> Numeric:
    """Fixed monthly charges over a year: :math:`C_{fix} = 12\\,c_{month}`."""
    return _out(fixed_pln_per_month * MONTHS_PER_YEAR)


def network_gas_energy_cost_pln_per_year(
    final_energy_kwh_per_year: Numeric, fuel_pln_per_kwh: Numeric, distribution_pln_per_kwh: Numeric
) -> Numeric:
    """Variable part of a gas bill: fuel and variable distribution per kWh.

    Notes
    -----
    .. math:: C = E\\,(p_{fuel} + p_{dist})
    """
    return _out(final_energy_kwh_per_year * (fuel_pln_per_kwh + distribution_pln_per_kwh))


def g12_mean_price_pln_per_kwh(
    day_pln_per_kwh: Numeric, night_pln_per_kwh: Numeric, night_share: Numeric
) -> Numeric:
    """Mean price of electricity bought in a two-zone tariff (G12) with a share in the cheap zone.

    Notes
    -----
    .. math:: \\bar p = (1 - s)\\,p_{day} + s\\,p_{night}
    """
    return _out((1.0 - night_share) * day_pln_per_kwh + night_share * night_pln_per_kwh)


def district_heat_energy_cost_pln_per_year(
    heat_bought_gj_per_year: Numeric, heat_pln_per_gj: Numeric, transmission_pln_per_gj: Numeric
) -> Numeric:
    """Variable part of a district heat bill: heat and transmission per GJ.

    Notes
    -----
    .. math:: C = H_{GJ}\\,(p_{heat} + p_{trans})
    """
    return _out(heat_bought_gj_per_year * (heat_pln_per_gj + transmission_pln_per_gj))


def capacity_charges_pln_per_year(ordered_power_kw: Numeric, capacity_pln_per_kw_month: Numeric) -> Numeric:
    """District heat charges for the ordered heat power over a year.

    Notes
    -----
    .. math:: C_{cap} = 12\\,P_{ordered}\\,c_{kW,month}
    """
    return _out(ordered_power_kw * capacity_pln_per_kw_month * MONTHS_PER_YEAR)


def connection_cost_pln(distance_m: Numeric, fixed_pln: Numeric, per_metre_pln: Numeric) -> Numeric:
    """Cost of a connection to a network a distance away.

    Notes
    -----
    .. math:: C = C_{fixed} + c_{m}\\,d
    """
    return _out(fixed_pln + per_metre_pln * distance_m)


def banded_cost_pln(heat_power_kw: float, bands: Sequence[tuple[float | None, float]]) -> float:
    """Installed cost from a table of bands ``(max_heat_power_kw, cost_pln)`` in ascending order: the first
    band whose maximum is at least the power; a maximum of ``None`` is open-ended.

    Notes
    -----
    .. math:: C = C_b,\\quad b = \\min\\{\\,i : P \\le P_{max,i}\\,\\}
    """
    for max_power_kw, cost_pln in bands:
        if max_power_kw is None or heat_power_kw <= max_power_kw:
            return float(cost_pln)
    raise ValueError("the band table has no open-ended last band")


def per_unit_cost_pln(quantity: Numeric, cost_pln_per_unit: Numeric) -> Numeric:
    """Cost of something priced per unit (m² of installation, kW of heaters): :math:`C = n \\cdot c`."""
    return _out(quantity * cost_pln_per_unit)


def capped_share_pln(eligible_cost_pln: Numeric, rate: Numeric, cap_pln: Numeric) -> Numeric:
    """A grant of a share of the eligible cost, at most a cap.

    Notes
    -----
    .. math:: G = \\min(r\\,C, G_{max})
    """
    return _out(np.minimum(rate * eligible_cost_pln, cap_pln))


def annuity_payment_pln_per_month(principal_pln: Numeric, annual_rate: Numeric, years: Numeric) -> Numeric:
    """Monthly payment of a loan repaid in equal instalments (annuity).

    Parameters
    ----------
    principal_pln : numeric
        Amount borrowed [zł].
    annual_rate : numeric
        Nominal yearly interest rate as a fraction (0.08 for 8 %) [-].
    years : numeric
        Term [years].

    Returns
    -------
    payment_pln_per_month : numeric
        [zł/month]

    Notes
    -----
    With monthly rate :math:`r = R/12` and :math:`n = 12\\,T` instalments:

    .. math:: A = P\\,\\frac{r}{1 - (1 + r)^{-n}}, \\qquad A = P / n \\text{ when } r = 0

    :math:`1 - (1 + r)^{-n}` is computed as :math:`-\\operatorname{expm1}(-n \\log1p(r))`, exact also for
    very small rates.
    """
    principal = np.asarray(principal_pln, dtype=np.float64)
    rate = np.asarray(annual_rate, dtype=np.float64) / MONTHS_PER_YEAR
    months = np.asarray(years, dtype=np.float64) * MONTHS_PER_YEAR
    discount = -np.expm1(-months * np.log1p(rate))
    with np.errstate(divide="ignore", invalid="ignore"):
        payment = np.where(rate > 0, principal * rate / np.where(rate > 0, discount, 1.0), principal / months)
    return _out(payment)


def loan_total_interest_pln(principal_pln: Numeric, annual_rate: Numeric, years: Numeric) -> Numeric:
    """Interest paid over a loan's term.

    Notes
    -----
    .. math:: I = 12\\,T\\,A - P = P \\left(\\frac{n\\,r}{1 - (1 + r)^{-n}} - 1\\right) \\ge 0

    and exactly 0 at a zero rate. Written as a multiple of :math:`P` so that rounding cannot make a loan
    with a positive rate repay less than it lent.
    """
    rate = np.asarray(annual_rate, dtype=np.float64) / MONTHS_PER_YEAR
    months = np.asarray(years, dtype=np.float64) * MONTHS_PER_YEAR
    discount = -np.expm1(-months * np.log1p(rate))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(rate > 0, months * rate / np.where(rate > 0, discount, 1.0) - 1.0, 0.0)
    return _out(np.asarray(principal_pln, dtype=np.float64) * np.maximum(factor, 0.0))


def loan_total_repaid_pln(principal_pln: Numeric, annual_rate: Numeric, years: Numeric) -> Numeric:
    """Everything repaid over a loan's term: :math:`P + I`, exactly :math:`P` at a zero rate."""
    return _out(principal_pln + loan_total_interest_pln(principal_pln, annual_rate, years))


def emission_kg_per_year(fuel_energy_gj_per_year: Numeric, factor_g_per_gj: Numeric) -> Numeric:
    """Yearly emission of a pollutant from the fuel energy burnt and its factor.

    Notes
    -----
    .. math:: m_{kg} = E_{GJ} \\cdot f_{g/GJ} / 1000
    """
    return _out(fuel_energy_gj_per_year * factor_g_per_gj / 1000.0)


def co2_kg_per_year(quantity_per_year: Numeric, factor_kg_per_unit: Numeric) -> Numeric:
    """Yearly CO2 from a quantity (GJ of fuel or heat, kWh of electricity) and its factor:
    :math:`m = E \\cdot f`."""
    return _out(quantity_per_year * factor_kg_per_unit)


def cost_over_years_pln(
    net_investment_pln: Numeric,
    loan_interest_pln: Numeric,
    yearly_bill_pln: Numeric,
    years: Numeric = 15,
    bill_change_per_year: Numeric = 0.0,
) -> Numeric:
    """Total cost of a heating option over a horizon, in today's money.

    Parameters
    ----------
    net_investment_pln, loan_interest_pln : numeric
        What the resident pays for the investment after grants, and a loan's interest [zł].
    yearly_bill_pln : numeric
        The first year's bill [zł/year].
    years : numeric, default 15
        The horizon [years].
    bill_change_per_year : numeric, default 0
        How much the bill changes each year as a fraction (0.03 for +3 %); 0 holds prices constant.

    Notes
    -----
    With :math:`g` the yearly change, the bills of years :math:`0 \\ldots T-1` add up to

    .. math:: C_{T} = I_{net} + I_{loan} + B_{year} \\sum_{t=0}^{T-1} (1 + g)^t
              = I_{net} + I_{loan} + B_{year} \\frac{(1 + g)^T - 1}{g}, \\qquad T \\cdot B_{year}
              \\text{ when } g = 0

    :math:`(1 + g)^T - 1` is computed as :math:`\\operatorname{expm1}(T \\log1p(g))`, exact also for very
    small changes.
    """
    if isinstance(bill_change_per_year, float | int) and bill_change_per_year == 0:
        # Constant prices, the default: no array work for a single estimate.
        return _out(net_investment_pln + loan_interest_pln + years * yearly_bill_pln)
    change = np.asarray(bill_change_per_year, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bills_factor = np.where(
            change == 0, years, np.expm1(years * np.log1p(change)) / np.where(change == 0, 1.0, change)
        )
    return _out(net_investment_pln + loan_interest_pln + bills_factor * yearly_bill_pln)
