"""Golden cases worked out by hand from the shipped YAML files, properties of the estimate, and the resident's
input errors in Polish."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cloud.smog import formulas
from cloud.smog.data import DATA_DIR, SourcedValue, shipped_data
from cloud.smog.errors import SmogInputError
from cloud.smog.estimate import (
    EstimateRequest,
    EstimateResponse,
    Site,
    estimate,
    estimate_for_site,
    parse_estimate_request,
)

YAML = {
    name: yaml.safe_load((DATA_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    for name in (
        "prices",
        "efficiencies",
        "investments",
        "emissions",
        "subsidies",
        "demand",
        "network",
        "manifest",
    )
}


def v(name: str, *path: str) -> float:
    """The value at a path of a shipped file, read straight from the YAML."""
    node: Any = YAML[name]
    for part in path:
        node = node[part]
    return float(node["value"])


def band(key: str, power_kw: float) -> float:
    for row in YAML["investments"]["heat_sources"][key]["bands"]:
        if row["max_heat_power_kw"] is None or power_kw <= row["max_heat_power_kw"]:
            return float(row["cost_pln"])
    raise AssertionError("no band")


@dataclass(frozen=True)
class House:
    area_m2: float
    standard: str
    central_heating: bool
    distance_gas_m: float
    distance_heat_m: float
    tier: str | None  # Czyste Powietrze tier the income gives
    loan_rate: float | None = None  # share 1.0 of the net investment, 10 years
    loan_years: int = 10


def hand_costs(house: House) -> dict[str, float | None]:
    """Each option's 15-year cost, worked out with plain arithmetic from the YAML values."""
    q = house.area_m2 * v("demand", "standards", house.standard, "heat_demand_kwh_per_m2_year")
    power = q / v("demand", "full_load_hours_h")
    internal = (
        0.0 if house.central_heating else house.area_m2 * v("investments", "internal_installation_pln_per_m2")
    )
    removal = v("investments", "old_stove_removal_pln")
    cp = YAML["subsidies"]["czyste_powietrze"]

    def clean_air(items: list[tuple[str, float]]) -> float:
        if house.tier is None or not items:
            return 0.0
        rate = float(cp["tiers"][house.tier]["rate"]["value"])
        total = sum(
            rate * min(cost, float(cp["items"][item]["max_eligible_cost_pln"]["value"]))
            for item, cost in items
        )
        return min(total, float(cp["tiers"][house.tier]["cap_pln"]["value"]))

    def net_and_interest(total: float, items: list[tuple[str, float]]) -> tuple[float, float]:
        grant_cp = clean_air(items)
        city = min(
            v("subsidies", "city_stop_smog", "cap_pln"), v("subsidies", "city_stop_smog", "rate") * total
        )
        city = min(city, total - grant_cp)
        net = total - grant_cp - city
        interest = 0.0
        if house.loan_rate is not None and net > 0:
            r = house.loan_rate / 12
            n = house.loan_years * 12
            payment = net * r / (1 - (1 + r) ** -n) if r > 0 else net / n
            interest = payment * n - net
        return net, interest

    def with_ch(items: list[tuple[str, float]]) -> list[tuple[str, float]]:
        return [*items, ("central_heating_installation", internal)] if internal else items

    costs: dict[str, float | None] = {}
    g12 = (1 - v("prices", "electricity_g12", "night_share")) * v(
        "prices", "electricity_g12", "day_pln_per_kwh"
    ) + v("prices", "electricity_g12", "night_share") * v("prices", "electricity_g12", "night_pln_per_kwh")

    # District heat
    if house.distance_heat_m <= v("network", "district_heat", "max_distance_m"):
        connection = v(
            "investments", "connections", "district_heat", "fixed_pln"
        ) + house.distance_heat_m * v("investments", "connections", "district_heat", "per_metre_pln")
        substation = band("district_heat_substation", power)
        total = connection + substation + internal + removal
        net, interest = net_and_interest(
            total, with_ch([("district_heat_connection_with_substation", connection + substation + removal)])
        )
        gj = q / v("efficiencies", "district_heat_substation") * 0.0036
        bill = gj * (
            v("prices", "district_heat", "heat_pln_per_gj")
            + v("prices", "district_heat", "transmission_pln_per_gj")
        )
        bill += 12 * power * v("prices", "district_heat", "capacity_pln_per_kw_month")
        bill += 12 * v("prices", "district_heat", "fixed_pln_per_month")
        costs["district_heat"] = net + interest + 15 * bill
    else:
        costs["district_heat"] = None

    # Network gas: Czyste Powietrze does not pay for gas boilers.
    if house.distance_gas_m <= v("network", "natural_gas", "max_distance_m"):
        connection = v("investments", "connections", "natural_gas", "fixed_pln") + house.distance_gas_m * v(
            "investments", "connections", "natural_gas", "per_metre_pln"
        )
        total = connection + band("gas_condensing_boiler", power) + internal + removal
        net, interest = net_and_interest(total, [])
        kwh = q / v("efficiencies", "gas_condensing_boiler")
        bill = kwh * (
            v("prices", "natural_gas", "fuel_pln_per_kwh")
            + v("prices", "natural_gas", "distribution_pln_per_kwh")
        )
        bill += 12 * v("prices", "natural_gas", "fixed_pln_per_month")
        costs["network_gas"] = net + interest + 15 * bill
    else:
        costs["network_gas"] = None

    # Heat pump on G12 and on G11
    pump = band("heat_pump_air_water", power)
    total = pump + internal + removal
    net, interest = net_and_interest(total, with_ch([("heat_pump_air_water", pump + removal)]))
    kwh = q / v("efficiencies", "heat_pump_air_water_scop")
    costs["heat_pump_g12"] = net + interest + 15 * kwh * g12
    costs["heat_pump_g11"] = net + interest + 15 * kwh * v("prices", "electricity_g11", "price_pln_per_kwh")

    # Electric heaters (no water central heating needed), G12
    heaters = power * v("investments", "electric_heaters", "per_kw_pln") + v(
        "investments", "electric_heaters", "wiring_pln"
    )
    total = heaters + removal
    net, interest = net_and_interest(total, [("electric_heating", heaters + removal)])
    costs["electric_heaters"] = net + interest + 15 * (q / v("efficiencies", "electric_heaters")) * g12

    # Pellet boiler
    boiler = band("pellet_boiler", power)
    total = boiler + internal + removal
    net, interest = net_and_interest(total, with_ch([("pellet_boiler", boiler + removal)]))
    tonnes = (
        q
        / v("efficiencies", "pellet_boiler")
        * 3.6
        / v("prices", "wood_pellet", "calorific_value_mj_per_kg")
        / 1000
    )
    costs["pellet_boiler"] = net + interest + 15 * tonnes * v("prices", "wood_pellet", "price_pln_per_tonne")

    # LPG: boiler and tank; not subsidised by Czyste Powietrze.
    total = band("lpg_condensing_boiler", power) + v("investments", "lpg_tank_pln") + internal + removal
    net, interest = net_and_interest(total, [])
    litres = (
        q
        / v("efficiencies", "lpg_condensing_boiler")
        * 3.6
        / v("prices", "lpg", "calorific_value_mj_per_litre")
    )
    costs["lpg"] = net + interest + 15 * litres * v("prices", "lpg", "price_pln_per_litre")
    return costs


# House A: 100 m² from before 1967 heated by room stoves, 12 m from the gas main, far from district heat,
# no income given (basic tier assumed).
HOUSE_A = House(100, "before_1967", False, distance_gas_m=12, distance_heat_m=450, tier="basic")
REQUEST_A = EstimateRequest(lat=51.6015, lon=18.9402, heated_area_m2=100, building_standard="before_1967")
# House B: 120 m² of 1967–1985 with an old coal boiler and radiators, 35 m from district heat, 60 m from gas;
# four people at 1,200 zł each a month (highest tier); the whole net cost on a 10-year loan at 8 %.
HOUSE_B = House(120, "1967_1985", True, distance_gas_m=60, distance_heat_m=35, tier="highest", loan_rate=0.08)
REQUEST_B = EstimateRequest(
    lat=51.6030,
    lon=18.9300,
    heated_area_m2=120,
    building_standard="1967_1985",
    current_heating="coal_boiler_old",
    income_pln_per_person_month=1200,
    household_size=4,
    loan={"share_of_net_investment": 1.0, "annual_rate_percent": 8, "years": 10},
)
# House C: 150 m² of 1986–1992 with stoves, far from both networks; one person earning 3,000 zł a month
# (increased tier for a single-person household).
HOUSE_C = House(150, "1986_1992", False, distance_gas_m=800, distance_heat_m=1500, tier="increased")
REQUEST_C = EstimateRequest(
    lat=51.5870,
    lon=18.9420,
    heated_area_m2=150,
    building_standard="1986_1992",
    income_pln_per_person_month=3000,
    household_size=1,
)
GOLDEN = [(HOUSE_A, REQUEST_A), (HOUSE_B, REQUEST_B), (HOUSE_C, REQUEST_C)]


def _run(house: House, request: EstimateRequest) -> EstimateResponse:
    site = Site(request.lat or 0.0, request.lon or 0.0, house.distance_gas_m, house.distance_heat_m)
    return estimate_for_site(request, site)


@pytest.mark.parametrize(("house", "request_"), GOLDEN, ids=["near_gas", "near_heat", "far"])
def test_golden_costs_and_ranking(house: House, request_: EstimateRequest) -> None:
    expected = hand_costs(house)
    response = _run(house, request_)
    assert response.data_version == YAML["manifest"]["version"]
    got = {option.kind: option.cost_15_years_pln for option in response.options}
    for kind, cost in expected.items():
        if cost is None:
            assert got[kind] is None, kind
        else:
            assert got[kind] == pytest.approx(cost, abs=0.05), kind
    ranking = [
        kind for kind, cost in sorted(expected.items(), key=lambda item: (item[1] is None, item[1] or 0))
    ]
    assert [option.kind for option in response.options] == ranking
    assert response.subsidy_tier == house.tier


def test_golden_near_gas_details() -> None:
    response = _run(HOUSE_A, REQUEST_A)
    gas = next(option for option in response.options if option.kind == "network_gas")
    assert gas.available and gas.investment is not None and gas.yearly_bill is not None
    connection = v("investments", "connections", "natural_gas", "fixed_pln") + 12 * v(
        "investments", "connections", "natural_gas", "per_metre_pln"
    )
    assert gas.investment.connection_pln == pytest.approx(connection)
    assert gas.investment.connection_length_m == 12
    assert gas.investment.internal_installation_pln == pytest.approx(100 * 120.0)
    clean_air = next(line for line in gas.subsidies if line.programme == "czyste_powietrze")
    assert clean_air.amount_pln == 0 and "nie są dofinansowane" in clean_air.rule_pl
    city = next(line for line in gas.subsidies if line.programme == "city_stop_smog")
    assert city.amount_pln == pytest.approx(5000) and city.unconfirmed
    kwh = 30000 / v("efficiencies", "gas_condensing_boiler")
    assert gas.yearly_bill.fixed_pln == pytest.approx(12 * v("prices", "natural_gas", "fixed_pln_per_month"))
    assert gas.emissions is not None
    assert gas.emissions.co2_kg_per_year == pytest.approx(kwh * 0.0036 * 56.1, abs=0.1)
    heat = next(option for option in response.options if option.kind == "district_heat")
    assert not heat.available
    assert heat.reason_pl == "Budynek jest 450 m od sieci ciepłowniczej; przyłącze możliwe do 100 m."
    # Today's stove: 60,000 kWh of coal at 25 MJ/kg; PM10 450 g/GJ.
    current = response.current_heating
    coal_gj = 30000 / 0.5 * 0.0036
    assert current.yearly_bill.total_pln == pytest.approx(coal_gj / 25.0 * 1450)
    assert current.emissions.pm10_kg_per_year == pytest.approx(coal_gj * 450 / 1000, abs=0.01)
    assert gas.emissions_change is not None and gas.emissions_change.pm10_kg_per_year is not None
    assert gas.emissions_change.pm10_kg_per_year < -90
    # Every figure traceable.
    assert "prices.natural_gas.fuel_pln_per_kwh" in gas.data_keys
    assert "investments.connections.natural_gas.per_metre_pln" in gas.data_keys
    assert "demand.standards.before_1967.heat_demand_kwh_per_m2_year" in gas.data_keys
    assert {"connection_cost_pln", "network_gas_energy_cost_pln_per_year", "cost_over_years_pln"} <= set(
        gas.formulas
    )
    assert "prices.natural_gas.distribution_pln_per_kwh" in gas.unconfirmed_keys
    assert "prices.natural_gas.fuel_pln_per_kwh" not in gas.unconfirmed_keys


def test_golden_near_heat_loan() -> None:
    response = _run(HOUSE_B, REQUEST_B)
    heat = next(option for option in response.options if option.kind == "district_heat")
    assert heat.available and heat.loan is not None and heat.net_investment_pln is not None
    principal = heat.net_investment_pln
    r, n = 0.08 / 12, 120
    payment = principal * r / (1 - (1 + r) ** -n)
    assert heat.loan.monthly_payment_pln == pytest.approx(payment, abs=0.01)
    assert heat.loan.total_interest_pln == pytest.approx(payment * n - principal, abs=0.05)
    clean_air = next(line for line in heat.subsidies if line.programme == "czyste_powietrze")
    assert clean_air.tier == "highest" and "poziom najwyższy" in clean_air.rule_pl
    # Radiators exist: no internal installation.
    assert heat.investment is not None and heat.investment.internal_installation_pln == 0
    gas = next(option for option in response.options if option.kind == "network_gas")
    assert gas.reason_pl == "Budynek jest 60 m od sieci gazowej; przyłącze możliwe do 20 m."


def test_golden_hot_water_near_gas() -> None:
    """House A with four people whose water the heat source heats: every source's energy grows by the
    water's heat over its own efficiency (the heat pump's hot-water COP), and nothing else changes."""
    without = _run(HOUSE_A, REQUEST_A.model_copy(update={"household_size": 4}))
    response = _run(HOUSE_A, REQUEST_A.model_copy(update={"household_size": 4, "hot_water": True}))
    water = YAML["demand"]["hot_water"]
    lift_k = water["supply_temperature_c"]["value"] - water["cold_water_temperature_c"]["value"]
    water_kwh = 4 * water["litres_per_person_day"]["value"] * 365 * 4.19 / 3600 * lift_k
    assert water_kwh == pytest.approx(3823.4, abs=0.1)  # 4 people, 50 l a day, 10 -> 55 °C
    assert response.building.hot_water_heat_kwh_per_year == pytest.approx(water_kwh, abs=0.05)
    assert without.building.hot_water_heat_kwh_per_year == 0
    assert response.building.design_heat_power_kw == without.building.design_heat_power_kw
    efficiency = {
        "network_gas": v("efficiencies", "gas_condensing_boiler"),
        "heat_pump_g12": v("efficiencies", "heat_pump_air_water_dhw_cop"),
        "heat_pump_g11": v("efficiencies", "heat_pump_air_water_dhw_cop"),
        "electric_heaters": v("efficiencies", "electric_heaters"),
        "pellet_boiler": v("efficiencies", "pellet_boiler"),
        "lpg": v("efficiencies", "lpg_condensing_boiler"),
    }
    before = {option.kind: option for option in without.options}
    for option in response.options:
        if option.kind not in efficiency:
            assert not option.available
            continue
        assert option.energy is not None and before[option.kind].energy is not None
        grown = option.energy.final_energy_kwh_per_year - before[option.kind].energy.final_energy_kwh_per_year
        assert grown == pytest.approx(water_kwh / efficiency[option.kind], abs=0.15), option.kind
        assert option.investment == before[option.kind].investment, option.kind
    gas = next(option for option in response.options if option.kind == "network_gas")
    assert gas.yearly_bill is not None and before["network_gas"].yearly_bill is not None
    price = v("prices", "natural_gas", "fuel_pln_per_kwh") + v(
        "prices", "natural_gas", "distribution_pln_per_kwh"
    )
    assert gas.yearly_bill.total_pln - before["network_gas"].yearly_bill.total_pln == pytest.approx(
        water_kwh / efficiency["network_gas"] * price, abs=0.02
    )
    coal_gj = (30000 + water_kwh) / v("efficiencies", "coal_stove") * 0.0036
    assert response.current_heating.yearly_bill.total_pln == pytest.approx(coal_gj / 25.0 * 1450, abs=0.01)
    pump = next(option for option in response.options if option.kind == "heat_pump_g12")
    assert "demand.hot_water.litres_per_person_day" in pump.data_keys
    assert "efficiencies.heat_pump_air_water_dhw_cop" in pump.unconfirmed_keys
    assert "hot_water_heat_kwh_per_year" in pump.formulas
    assert "ciepła woda dla domowników ok. 3" in response.explanation_pl
    assert "hot_water_heat_kwh_per_year" not in {f for o in without.options for f in o.formulas}


@settings(max_examples=40, deadline=None)
@given(st.floats(10, 1000), st.integers(1, 30), st.sampled_from(["before_1967", "from_1997"]))
def test_heating_the_water_too_never_lowers_a_bill(area: float, people: int, standard: str) -> None:
    request = EstimateRequest(
        lat=51.6, lon=18.94, heated_area_m2=area, building_standard=standard, household_size=people
    )
    site = Site(51.6, 18.94, 5.0, 50.0)
    without = estimate_for_site(request, site)
    with_water = estimate_for_site(request.model_copy(update={"hot_water": True}), site)
    bills = {option.kind: option.yearly_bill for option in without.options}
    for option in with_water.options:
        before = bills[option.kind]
        if option.yearly_bill is None or before is None:
            assert option.yearly_bill is None and before is None
            continue
        assert option.yearly_bill.total_pln > before.total_pln, option.kind
    assert with_water.current_heating.yearly_bill.total_pln > without.current_heating.yearly_bill.total_pln


def test_golden_rising_prices_near_gas() -> None:
    """House A with bills rising 3 % a year: each 15-year cost is the net investment and interest plus the
    first year's bill times (1.03^15 - 1) / 0.03, the ranking follows, and the assumption is stated."""
    constant = _run(HOUSE_A, REQUEST_A)
    rising = _run(HOUSE_A, REQUEST_A.model_copy(update={"price_change_percent_per_year": 3.0}))
    factor = (1.03**15 - 1) / 0.03  # 18.599
    before = {option.kind: option for option in constant.options}
    for option in rising.options:
        if not option.available:
            continue
        base = before[option.kind]
        assert base.yearly_bill is not None and base.net_investment_pln is not None
        interest = base.loan.total_interest_pln if base.loan else 0.0
        expected = base.net_investment_pln + interest + factor * base.yearly_bill.total_pln
        assert option.cost_15_years_pln == pytest.approx(expected, abs=0.1), option.kind
        assert option.yearly_bill == base.yearly_bill
    assert rising.current_heating.cost_15_years_pln == pytest.approx(
        factor * constant.current_heating.yearly_bill.total_pln, abs=0.1
    )
    costs = [option.cost_15_years_pln for option in rising.options if option.available]
    assert costs == sorted(costs)
    assert "rosną o 3\u00a0% rocznie" in rising.prices_assumption_pl
    assert "stałe" in constant.prices_assumption_pl


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1e6), st.floats(0, 1e5), st.floats(-10, 20), st.floats(-10, 20), st.integers(1, 30))
def test_dearer_energy_never_lowers_a_cost_over_years(
    investment: float, bill: float, change: float, more: float, years: int
) -> None:
    low, high = sorted((change / 100, more / 100))
    cheaper = formulas.cost_over_years_pln(investment, 0.0, bill, years, low)
    dearer = formulas.cost_over_years_pln(investment, 0.0, bill, years, high)
    assert dearer >= cheaper - 1e-6 * max(1.0, cheaper)
    constant = formulas.cost_over_years_pln(investment, 0.0, bill, years, 0.0)
    assert constant == pytest.approx(investment + years * bill)
    assert formulas.cost_over_years_pln(investment, 0.0, bill, years, 1e-12) == pytest.approx(constant)


def test_golden_costs_can_be_printed_for_the_report() -> None:
    for house, request in GOLDEN:
        response = _run(house, request)
        assert [option.cost_15_years_pln for option in response.options if option.available] == sorted(
            option.cost_15_years_pln or 0.0 for option in response.options if option.available
        )


@settings(max_examples=60, deadline=None)
@given(
    st.floats(10, 999),
    st.floats(0.1, 400),
    st.sampled_from(["before_1967", "1967_1985", "1986_1992", "1993_1996", "from_1997", "thermomodernised"]),
    st.booleans(),
)
def test_a_larger_area_never_lowers_a_bill(area: float, extra: float, standard: str, radiators: bool) -> None:
    larger = min(area + extra, 1000.0)
    site = Site(51.6, 18.94, 5.0, 50.0)
    small = estimate_for_site(
        EstimateRequest(
            lat=51.6,
            lon=18.94,
            heated_area_m2=area,
            building_standard=standard,
            has_central_heating=radiators,
        ),
        site,
    )
    big = estimate_for_site(
        EstimateRequest(
            lat=51.6,
            lon=18.94,
            heated_area_m2=larger,
            building_standard=standard,
            has_central_heating=radiators,
        ),
        site,
    )
    bills_small = {
        option.kind: option.yearly_bill.total_pln for option in small.options if option.yearly_bill
    }
    bills_big = {option.kind: option.yearly_bill.total_pln for option in big.options if option.yearly_bill}
    assert bills_small.keys() == bills_big.keys()
    for kind, bill in bills_small.items():
        assert bills_big[kind] >= bill - 0.01, kind
    assert big.current_heating.yearly_bill.total_pln >= small.current_heating.yearly_bill.total_pln - 0.01


@settings(max_examples=60, deadline=None)
@given(
    st.floats(10, 1000),
    st.one_of(st.none(), st.floats(0, 10000)),
    st.integers(1, 8),
    st.floats(0, 2000),
    st.floats(0, 2000),
)
def test_grants_never_exceed_the_investment(
    area: float, income: float | None, size: int, gas_m: float, heat_m: float
) -> None:
    response = estimate_for_site(
        EstimateRequest(
            lat=51.6,
            lon=18.94,
            heated_area_m2=area,
            building_standard="1967_1985",
            income_pln_per_person_month=income,
            household_size=size,
        ),
        Site(51.6, 18.94, gas_m, heat_m),
    )
    for option in response.options:
        if not option.available:
            continue
        assert option.investment is not None and option.subsidies_total_pln is not None
        assert option.subsidies_total_pln <= option.investment.total_pln + 0.01
        for line in option.subsidies:
            assert 0 <= line.amount_pln <= line.eligible_cost_pln + 0.01
        assert option.net_investment_pln is not None and option.net_investment_pln >= 0


# --- errors in Polish ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"heated_area_m2": 0}, "heated_area_m2", "powierzchnia ogrzewana"),
        ({"heated_area_m2": 100000}, "heated_area_m2", "od 10 do 1\u00a0000\u00a0m²"),
        ({"income_pln_per_person_month": -5}, "income_pln_per_person_month", "nie może być ujemne"),
        (
            {"loan": {"amount_pln": 10000, "annual_rate_percent": 5, "years": 300}},
            "loan.years",
            "okres kredytu",
        ),
        (
            {"loan": {"amount_pln": 10000, "annual_rate_percent": 45, "years": 10}},
            "loan.annual_rate_percent",
            "oprocentowanie",
        ),
        ({"loan": {"annual_rate_percent": 5, "years": 10}}, "loan", "podaj albo kwotę"),
        ({"household_size": 0}, "household_size", "liczba osób"),
        ({"price_change_percent_per_year": 50}, "price_change_percent_per_year", "zmiana cen energii"),
        ({"heated_area_m2": "dużo"}, "heated_area_m2", "nieprawidłowa wartość"),
        ({"address_id": None, "lat": None, "lon": None}, "address_id", "wybierz adres"),
        ({"lat": 48.8, "lon": 2.35, "address_id": None}, "lat", "poza Polską"),
    ],
)
def test_input_errors_name_the_field_in_polish(payload: dict[str, Any], field: str, words: str) -> None:
    base: dict[str, Any] = {"address_id": 1, "heated_area_m2": 100, "building_standard": "before_1967"}
    base.update(payload)
    with pytest.raises(SmogInputError) as refused:
        parse_estimate_request(base)
    assert refused.value.field == field
    assert words in refused.value.message_pl
    assert f"„{field}”" in refused.value.message_pl or f"„{field.split('.')[0]}”" in refused.value.message_pl


def test_unknown_building_standard_is_refused_in_polish() -> None:
    request = EstimateRequest(lat=51.6, lon=18.94, heated_area_m2=100, building_standard="1900")
    with pytest.raises(SmogInputError) as refused:
        estimate_for_site(request, Site(51.6, 18.94, None, None))
    assert refused.value.field == "building_standard" and "before_1967" in refused.value.message_pl


def test_unknown_address_is_refused_in_polish(tmp_path: Path) -> None:
    from cloud.smog.tables import create_smog_tables

    engine = create_engine(f"sqlite:///{tmp_path / 'smog.db'}")
    create_smog_tables(engine)
    with Session(engine) as session, pytest.raises(SmogInputError) as refused:
        estimate(
            session,
            parse_estimate_request(
                {"address_id": 999, "heated_area_m2": 90, "building_standard": "from_1997"}
            ),
        )
    assert refused.value.field == "address_id"
    assert "nie znaleziono adresu o identyfikatorze 999" in refused.value.message_pl
    engine.dispose()


def test_estimate_by_address_id_and_by_coordinates_from_the_sample(tmp_path: Path) -> None:
    from cloud.smog.importer import import_sample
    from cloud.smog.tables import SmogAddress, create_smog_tables

    engine = create_engine(f"sqlite:///{tmp_path / 'smog.db'}")
    create_smog_tables(engine)
    with Session(engine) as session, session.begin():
        import_sample(session)
    with Session(engine) as session:
        near_gas = session.scalars(select(SmogAddress).where(SmogAddress.distance_gas_m <= 20)).first()
        assert near_gas is not None
        by_id = estimate(
            session,
            EstimateRequest(address_id=near_gas.id, heated_area_m2=110, building_standard="1967_1985"),
        )
        assert by_id.address is not None and by_id.address.id == near_gas.id
        assert next(option for option in by_id.options if option.kind == "network_gas").available
        by_point = estimate(
            session,
            EstimateRequest(
                lat=near_gas.lat, lon=near_gas.lon, heated_area_m2=110, building_standard="1967_1985"
            ),
        )
        assert by_point.distance_gas_m == pytest.approx(near_gas.distance_gas_m, abs=0.05)
        # Stored distances are rounded to 1 cm: a connection priced per metre differs by at most a few zł.
        for a, b in zip(by_point.options, by_id.options, strict=True):
            assert a.kind == b.kind
            assert a.cost_15_years_pln == pytest.approx(b.cost_15_years_pln, abs=5.0)
    engine.dispose()


def test_response_is_json_ready_and_lists_unconfirmed() -> None:
    response = _run(HOUSE_A, REQUEST_A)
    document = response.model_dump(mode="json")
    assert document["data_version"] == "2026.3"
    assert "prices.district_heat.heat_pln_per_gj" not in document["unconfirmed_keys"]  # not available here
    assert "subsidies.city_stop_smog.rate" in document["unconfirmed_keys"]
    assert "Ceny energii i paliw przyjęto stałe" in document["prices_assumption_pl"]
    assert all(option["explanation_pl"] for option in document["options"])


def test_every_key_a_figure_used_is_in_data_used_once_with_its_value_and_source() -> None:
    response = _run(HOUSE_A, REQUEST_A)
    used = {reference.key: reference for reference in response.data_used}
    assert len(used) == len(response.data_used), "each key once"
    keys = set(response.current_heating.data_keys)
    for option in response.options:
        keys |= set(option.data_keys)
    assert keys <= set(used)
    data = shipped_data()
    for key in keys:
        reference = used[key]
        item = data.sourced(key)
        assert reference.source == item.source and reference.as_of == item.as_of.isoformat()
        assert reference.unconfirmed == item.unconfirmed
        if isinstance(item, SourcedValue):
            assert reference.value == item.value
    # A second estimate of the same data set answers with the same references, taken from the data's memo.
    again = _run(HOUSE_A, REQUEST_A)
    assert again.data_used == response.data_used


def test_an_estimate_names_the_figures_it_used_past_their_validity() -> None:
    site = Site(REQUEST_A.lat or 0.0, REQUEST_A.lon or 0.0, HOUSE_A.distance_gas_m, HOUSE_A.distance_heat_m)
    gas_fuel = "prices.natural_gas.fuel_pln_per_kwh"
    before = estimate_for_site(REQUEST_A, site, today=dt.date(2026, 6, 30))
    after = estimate_for_site(REQUEST_A, site, today=dt.date(2026, 12, 7))
    assert before.expired_keys == [] and estimate_for_site(REQUEST_A, site).expired_keys == []
    assert after.expired_keys == [gas_fuel]
    assert "Uwaga: część danych straciła ważność: gaz ziemny z sieci (ważne do 30.06.2026" in (
        after.prices_assumption_pl
    )
    assert after.prices_assumption_pl.startswith(before.prices_assumption_pl)
    # Only what this estimate used: far from the gas network, the gas price is not used.
    far = Site(REQUEST_A.lat or 0.0, REQUEST_A.lon or 0.0, 5_000.0, 5_000.0)
    assert estimate_for_site(REQUEST_A, far, today=dt.date(2026, 12, 7)).expired_keys == []
