"""Properties of the formulas: loans, grants, energy and money relations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.smog import formulas
from cloud.smog.data import shipped_data
from cloud.smog.subsidies import CostItem, TierDecision, city_grant, clean_air_grant, clean_air_tier
from cloud.smog.trace import Trace

principal = st.floats(0.01, 500_000)
rate = st.floats(0.0, 0.30)
years = st.integers(1, 30)


@given(principal, rate, years)
def test_a_loan_repays_at_least_its_principal(amount: float, annual_rate: float, term: int) -> None:
    repaid = formulas.loan_total_repaid_pln(amount, annual_rate, term)
    assert repaid >= amount
    assert formulas.loan_total_interest_pln(amount, annual_rate, term) >= 0


@given(principal, years)
def test_a_zero_rate_loan_repays_exactly_its_principal(amount: float, term: int) -> None:
    assert formulas.loan_total_repaid_pln(amount, 0.0, term) == amount
    assert formulas.loan_total_interest_pln(amount, 0.0, term) == 0.0
    assert formulas.annuity_payment_pln_per_month(amount, 0.0, term) == pytest.approx(amount / (12 * term))


def test_annuity_known_value() -> None:
    # 100,000 zł at 6 % a year over 10 years: 1,110.21 zł a month (standard annuity tables).
    assert formulas.annuity_payment_pln_per_month(100_000, 0.06, 10) == pytest.approx(1110.205, abs=0.01)


@given(principal, st.floats(1e-12, 1e-6), years)
def test_tiny_rates_are_continuous_with_zero(amount: float, annual_rate: float, term: int) -> None:
    assert formulas.annuity_payment_pln_per_month(amount, annual_rate, term) == pytest.approx(
        amount / (12 * term), rel=1e-4
    )


def test_formulas_accept_arrays() -> None:
    areas = np.array([50.0, 100.0, 200.0])
    demand = formulas.heat_demand_kwh_per_year(areas, 150.0)
    assert np.allclose(demand, [7500, 15000, 30000])
    payments = formulas.annuity_payment_pln_per_month(np.array([1000.0, 1000.0]), np.array([0.0, 0.12]), 1)
    assert isinstance(payments, np.ndarray)
    assert payments[0] == pytest.approx(1000 / 12)
    assert payments[1] > payments[0]


def test_energy_conversions() -> None:
    assert formulas.energy_gj(1000.0) == pytest.approx(3.6)
    # 1 t of coal at 25 MJ/kg holds 25 GJ = 6,944.4 kWh.
    assert formulas.solid_fuel_tonnes_per_year(25_000 / 3.6, 25.0) == pytest.approx(1.0)
    assert formulas.lpg_litres_per_year(24.5 / 3.6 * 100, 24.5) == pytest.approx(100.0)
    assert formulas.g12_mean_price_pln_per_kwh(1.0, 0.5, 0.4) == pytest.approx(0.8)
    assert formulas.banded_cost_pln(15.0, [(15.0, 1.0), (None, 2.0)]) == 1.0
    assert formulas.banded_cost_pln(15.01, [(15.0, 1.0), (None, 2.0)]) == 2.0
    with pytest.raises(ValueError):
        formulas.banded_cost_pln(99.0, [(15.0, 1.0)])


item_keys = st.sampled_from(
    [
        "district_heat_connection_with_substation",
        "heat_pump_air_water",
        "pellet_boiler",
        "electric_heating",
        "central_heating_installation",
    ]
)
tiers = st.sampled_from(["highest", "increased", "basic"])


@given(
    st.lists(st.tuples(item_keys, st.floats(0, 300_000)), min_size=1, max_size=4, unique_by=lambda x: x[0]),
    tiers,
)
def test_clean_air_never_exceeds_eligible_cost_or_caps(items: list[tuple[str, float]], tier: str) -> None:
    data = shipped_data()
    programme = data.subsidies.czyste_powietrze
    trace = Trace(data)
    line = clean_air_grant(
        trace, TierDecision(tier, "", True), [CostItem(key, cost) for key, cost in items], None
    )  # type: ignore[arg-type]
    assert line is not None
    total_cost = sum(cost for _key, cost in items)
    tier_model = getattr(programme.tiers, tier)
    assert 0 <= line.amount_pln <= total_cost + 1e-6
    assert line.amount_pln <= tier_model.cap_pln.value + 1e-6
    item_caps = sum(
        tier_model.rate.value * getattr(programme.items, key).max_eligible_cost_pln.value
        for key, _cost in items
    )
    assert line.amount_pln <= item_caps + 1e-6
    assert line.amount_pln <= line.eligible_cost_pln + 1e-6


@given(st.floats(0, 1_000_000), st.floats(0, 1_000_000))
def test_city_grant_never_exceeds_its_cap_rate_or_what_is_left(investment: float, other: float) -> None:
    data = shipped_data()
    line = city_grant(Trace(data), investment, other)
    assert 0 <= line.amount_pln <= data.subsidies.city_stop_smog.cap_pln.value
    assert line.amount_pln <= data.subsidies.city_stop_smog.rate.value * investment + 1e-6
    assert line.amount_pln <= max(investment - other, 0.0) + 1e-6


def test_income_tiers() -> None:
    data = shipped_data()

    def tier(income: float | None, size: int, applicant: float | None = None) -> str | None:
        return clean_air_tier(Trace(data), income, size, applicant).tier

    assert tier(1300, 3) == "highest"
    assert tier(1300.01, 3) == "increased"
    assert tier(1800, 1) == "highest"
    assert tier(2250, 2) == "increased"
    assert tier(3150, 1) == "increased"
    assert tier(3150.01, 1) == "basic"
    assert tier(None, 1) == "basic"
    assert tier(5000, 2, applicant=140_000) is None
