"""The estimate for one house: for each heat source, whether it is available at the address, what it costs to
install, which grants apply, the yearly bill, a loan, CO2 and dust against today's stove, and the cost over 15
years, sorted from the cheapest. Request and response are the API's models: English snake_case field names
with units, Polish text for the resident.

Prices are held constant in today's money over the 15 years: no forecast of coal, gas, pellet or electricity
prices is reliable enough to rank options by, and the first calculator's yearly escalation made the ranking
depend on a guessed rate more than on the house. A resident may ask "what if energy gets dearer?" with their
own yearly change (``price_change_percent_per_year``), applied to every source's bill alike.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from cloud.smog import formulas
from cloud.smog.addresses import AddressMatch, in_poland
from cloud.smog.data import SmogData, shipped_data
from cloud.smog.errors import SmogInputError
from cloud.smog.geo import Numeric
from cloud.smog.networks import distances_for_point
from cloud.smog.sites import AddressSites, Site, site_of_address
from cloud.smog.subsidies import (
    CostItem,
    SubsidyLine,
    TierDecision,
    city_grant,
    clean_air_grant,
    clean_air_tier,
)
from cloud.smog.trace import DataReference, Trace
from cloud.smog.wording import NBSP, figure_pl, number_pl, out_of_bounds_pl, pln

HORIZON_YEARS = 15
HEATED_AREA_M2 = (10.0, 1000.0)
LOAN_RATE_PERCENT = (0.0, 30.0)
LOAN_YEARS = (1, 30)
PRICE_CHANGE_PERCENT = (-10.0, 20.0)
HOUSEHOLD_SIZE = (1, 30)

CurrentHeatingKind = Literal["coal_stove", "coal_boiler_old", "coal_boiler_class5", "wood_stove"]
OptionKind = Literal[
    "district_heat",
    "network_gas",
    "heat_pump_g12",
    "heat_pump_g11",
    "electric_heaters",
    "pellet_boiler",
    "lpg",
]
OPTION_KINDS: tuple[OptionKind, ...] = (
    "district_heat",
    "network_gas",
    "heat_pump_g12",
    "heat_pump_g11",
    "electric_heaters",
    "pellet_boiler",
    "lpg",
)
OPTION_LABELS_PL: dict[OptionKind, str] = {
    "district_heat": "Ciepło systemowe (sieć ciepłownicza)",
    "network_gas": "Kocioł gazowy kondensacyjny (gaz z sieci)",
    "heat_pump_g12": "Pompa ciepła powietrze-woda, taryfa G12",
    "heat_pump_g11": "Pompa ciepła powietrze-woda, taryfa G11",
    "electric_heaters": "Grzejniki elektryczne, taryfa G12",
    "pellet_boiler": "Kocioł na pellet",
    "lpg": "Kocioł kondensacyjny na gaz płynny LPG",
}
# Today's heating: appliance (efficiencies and emissions key), fuel (prices key) and CO2 factor key.
_CURRENT: dict[CurrentHeatingKind, tuple[str, str, str]] = {
    "coal_stove": ("coal_stove", "hard_coal", "hard_coal_kg_per_gj"),
    "coal_boiler_old": ("coal_boiler_old", "hard_coal", "hard_coal_kg_per_gj"),
    "coal_boiler_class5": ("coal_boiler_class5", "eco_pea_coal", "eco_pea_coal_kg_per_gj"),
    "wood_stove": ("wood_stove", "firewood", "wood_kg_per_gj"),
}


def _polish(field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("smog_input", "{message}", {"message": message, "field": field})


def _bounded(field: str, label_pl: str, value: float, bounds: tuple[float, float], unit: str = "") -> float:
    low, high = bounds
    if not (math.isfinite(value) and low <= value <= high):
        raise _polish(field, f"Pole „{field}” ({label_pl}): {out_of_bounds_pl(value, low, high, unit)}")
    return value


# --- request ---------------------------------------------------------------------------------------------


class LoanRequest(BaseModel):
    """A loan for the part of the investment the grants leave: an amount or a share of it."""

    model_config = ConfigDict(extra="forbid")

    amount_pln: float | None = Field(default=None, json_schema_extra={"minimum": 0})
    share_of_net_investment: float | None = Field(
        default=None, json_schema_extra={"minimum": 0, "maximum": 1}
    )
    annual_rate_percent: float = Field(json_schema_extra={"minimum": 0, "maximum": 30})
    years: int = Field(json_schema_extra={"minimum": 1, "maximum": 30})

    @field_validator("amount_pln")
    @classmethod
    def _amount(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value < 0):
            raise _polish(
                "loan.amount_pln",
                f"Pole „loan.amount_pln” (kwota kredytu): nie może być ujemne, podano {value}.",
            )
        return value

    @field_validator("share_of_net_investment")
    @classmethod
    def _share(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= 1:
            raise _polish(
                "loan.share_of_net_investment",
                "Pole „loan.share_of_net_investment” (część inwestycji na kredyt): musi być od 0 do 1, "
                f"podano {value}.",
            )
        return value

    @field_validator("annual_rate_percent")
    @classmethod
    def _rate(cls, value: float) -> float:
        return _bounded(
            "loan.annual_rate_percent", "oprocentowanie kredytu", value, LOAN_RATE_PERCENT, "% rocznie"
        )

    @field_validator("years")
    @classmethod
    def _years(cls, value: int) -> int:
        _bounded("loan.years", "okres kredytu w latach", value, LOAN_YEARS)
        return value

    @model_validator(mode="after")
    def _one_amount(self) -> LoanRequest:
        if (self.amount_pln is None) == (self.share_of_net_investment is None):
            raise _polish(
                "loan",
                "Pole „loan” (kredyt): podaj albo kwotę (amount_pln), albo część inwestycji "
                "(share_of_net_investment), nie oba i nie żadne.",
            )
        return self


class EstimateRequest(BaseModel):
    """A resident's house: where it is, how big, how old, how it is heated today, the household's income and
    an optional loan."""

    model_config = ConfigDict(extra="forbid")

    address_id: int | None = Field(default=None, description="Id of an address from the address search.")
    lat: float | None = Field(default=None, description="Latitude (WGS84), when no address id is given.")
    lon: float | None = Field(default=None, description="Longitude (WGS84), when no address id is given.")
    heated_area_m2: float = Field(
        description="Heated floor area [m²].", json_schema_extra={"minimum": 10, "maximum": 1000}
    )
    building_standard: str = Field(
        description="Construction period or insulation standard, a key of demand.yaml (e.g. before_1967)."
    )
    current_heating: CurrentHeatingKind = "coal_stove"
    has_central_heating: bool | None = Field(
        default=None,
        description="Whether the house has water central heating (radiators) already; "
        "by default no for stoves, yes for boilers.",
    )
    income_pln_per_person_month: float | None = Field(
        default=None,
        description="Household income per person a month [zł].",
        json_schema_extra={"minimum": 0},
    )
    household_size: int = Field(default=1, json_schema_extra={"minimum": 1, "maximum": 30})
    hot_water: bool = Field(
        default=False,
        description="Whether the heat source heats the household's water too, today and after the change; "
        "its heat follows household_size.",
    )
    applicant_income_pln_per_year: float | None = Field(
        default=None,
        description="Applicant's yearly income [zł] (basic Czyste Powietrze tier).",
        json_schema_extra={"minimum": 0},
    )
    loan: LoanRequest | None = None
    price_change_percent_per_year: float = Field(
        default=0.0,
        description="The resident's own assumption of how energy and fuel prices change a year above "
        "inflation [%], applied to every source's bill alike; 0 holds them constant.",
        json_schema_extra={"minimum": -10, "maximum": 20},
    )

    @field_validator("price_change_percent_per_year")
    @classmethod
    def _price_change(cls, value: float) -> float:
        return _bounded(
            "price_change_percent_per_year",
            "zmiana cen energii",
            value,
            PRICE_CHANGE_PERCENT,
            "% rocznie",
        )

    @field_validator("heated_area_m2")
    @classmethod
    def _area(cls, value: float) -> float:
        return _bounded("heated_area_m2", "powierzchnia ogrzewana", value, HEATED_AREA_M2, "m²")

    @field_validator("income_pln_per_person_month", "applicant_income_pln_per_year")
    @classmethod
    def _income(cls, value: float | None, info: Any) -> float | None:
        if value is not None and not (math.isfinite(value) and value >= 0):
            name = info.field_name
            raise _polish(name, f"Pole „{name}” (dochód): nie może być ujemne, podano {value:g} zł.")
        return value

    @field_validator("household_size")
    @classmethod
    def _household(cls, value: int) -> int:
        _bounded("household_size", "liczba osób w gospodarstwie", value, HOUSEHOLD_SIZE)
        return value

    @model_validator(mode="after")
    def _place(self) -> EstimateRequest:
        if self.address_id is None and (self.lat is None or self.lon is None):
            raise _polish(
                "address_id",
                "Pole „address_id” (adres): wybierz adres z wyszukiwarki albo podaj współrzędne lat i lon.",
            )
        if (
            self.address_id is None
            and self.lat is not None
            and self.lon is not None
            and not in_poland(self.lat, self.lon)
        ):
            raise _polish(
                "lat", f"Pola „lat” i „lon” (współrzędne): punkt ({self.lat}, {self.lon}) leży poza Polską."
            )
        return self

    @property
    def central_heating(self) -> bool:
        if self.has_central_heating is not None:
            return self.has_central_heating
        return self.current_heating in ("coal_boiler_old", "coal_boiler_class5")


def parse_estimate_request(payload: Mapping[str, Any]) -> EstimateRequest:
    """An ``EstimateRequest`` from untrusted input; any problem raises ``SmogInputError`` in Polish naming
    the first field at fault."""
    try:
        return EstimateRequest.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(żądanie)"
        if first["type"] == "smog_input":
            context = first.get("ctx") or {}
            raise SmogInputError(str(context.get("field", field)), str(context["message"])) from error
        raise SmogInputError(field, f"Pole „{field}”: nieprawidłowa wartość ({first['msg']}).") from error


# --- response --------------------------------------------------------------------------------------------


class CostLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    label_pl: str
    amount_pln: float


class InvestmentBreakdown(BaseModel):
    model_config = ConfigDict(frozen=True)

    connection_length_m: float | None
    connection_pln: float
    heat_source_pln: float
    internal_installation_pln: float
    old_stove_removal_pln: float
    total_pln: float
    lines: list[CostLine]


class LoanResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    principal_pln: float
    annual_rate_percent: float
    years: int
    monthly_payment_pln: float
    total_repaid_pln: float
    total_interest_pln: float


class YearlyBill(BaseModel):
    model_config = ConfigDict(frozen=True)

    energy_pln: float
    fixed_pln: float
    total_pln: float


class Emissions(BaseModel):
    """Yearly emissions; ``None`` where the factor is not known. Dust and B(a)P are those of the building
    itself (local emission)."""

    model_config = ConfigDict(frozen=True)

    co2_kg_per_year: float
    pm10_kg_per_year: float | None
    pm25_kg_per_year: float | None
    bap_g_per_year: float | None


class EnergyUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    final_energy_kwh_per_year: float
    quantity_per_year: float
    quantity_unit: str


class HeatingOption(BaseModel):
    """One heat source for the house; figures are ``None`` when it is not available here."""

    model_config = ConfigDict(frozen=True)

    kind: OptionKind
    label_pl: str
    available: bool
    reason_pl: str | None
    investment: InvestmentBreakdown | None
    subsidies: list[SubsidyLine]
    subsidies_total_pln: float | None
    net_investment_pln: float | None
    loan: LoanResult | None
    energy: EnergyUse | None
    yearly_bill: YearlyBill | None
    emissions: Emissions | None
    emissions_change: Emissions | None
    cost_15_years_pln: float | None
    explanation_pl: str
    data_keys: list[str]
    formulas: list[str]
    unconfirmed_keys: list[str]


class CurrentHeatingSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: CurrentHeatingKind
    label_pl: str
    energy: EnergyUse
    yearly_bill: YearlyBill
    emissions: Emissions
    cost_15_years_pln: float
    data_keys: list[str]
    formulas: list[str]


class Building(BaseModel):
    model_config = ConfigDict(frozen=True)

    heated_area_m2: float
    building_standard: str
    building_standard_label_pl: str
    heat_demand_kwh_per_m2_year: float
    heat_demand_kwh_per_year: float
    hot_water_heat_kwh_per_year: float = Field(
        description="Useful heat of the household's hot water, counted in every source's energy; 0 unless "
        "the request's hot_water."
    )
    full_load_hours_h: float
    design_heat_power_kw: float
    has_central_heating: bool


class EstimateResponse(BaseModel):
    """The estimate: options sorted by their cost over 15 years (available ones first)."""

    model_config = ConfigDict(frozen=True)

    data_version: str
    address: AddressMatch | None
    lat: float
    lon: float
    distance_gas_m: float | None
    distance_heat_m: float | None
    building: Building
    current_heating: CurrentHeatingSummary
    subsidy_tier: str | None
    subsidy_tier_explanation_pl: str
    options: list[HeatingOption]
    horizon_years: int
    prices_assumption_pl: str
    explanation_pl: str
    other_programmes_pl: list[str]
    unconfirmed_keys: list[str]
    expired_keys: list[str] = Field(
        description="Data keys this estimate used whose validity (valid_until) ended before its day: figures "
        "the city has not yet replaced; prices_assumption_pl says so in Polish."
    )
    data_used: list[DataReference] = Field(
        description="Every data key any figure used, once, with the value taken, its source and date."
    )


# --- computation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _House:
    request: EstimateRequest
    heat_demand_kwh_per_year: float
    hot_water_heat_kwh_per_year: float
    design_heat_power_kw: float
    central_heating: bool


def _bill_change(house: _House) -> float:
    """The resident's yearly change of every bill, as a fraction."""
    return house.request.price_change_percent_per_year / 100.0


def _money(value: float) -> float:
    return round(value, 2)


def _emissions(trace: Trace, appliance: str, fuel_gj: float, co2_kg: float) -> Emissions:
    base = f"emissions.appliances.{appliance}"
    pollutant = trace.formula(formulas.emission_kg_per_year)

    def kilograms(key: str) -> float | None:
        factor = trace.optional_value(f"{base}.{key}")
        return None if factor is None else round(float(pollutant(fuel_gj, factor)), 3)

    bap_factor = trace.optional_value(f"{base}.bap_g_per_gj")
    return Emissions(
        co2_kg_per_year=round(co2_kg, 1),
        pm10_kg_per_year=kilograms("pm10_g_per_gj"),
        pm25_kg_per_year=kilograms("pm25_g_per_gj"),
        bap_g_per_year=None if bap_factor is None else round(fuel_gj * bap_factor, 3),
    )


def _change(option: Emissions, current: Emissions) -> Emissions:
    def delta(new: float | None, old: float | None) -> float | None:
        return None if new is None or old is None else round(new - old, 3)

    return Emissions(
        co2_kg_per_year=round(option.co2_kg_per_year - current.co2_kg_per_year, 1),
        pm10_kg_per_year=delta(option.pm10_kg_per_year, current.pm10_kg_per_year),
        pm25_kg_per_year=delta(option.pm25_kg_per_year, current.pm25_kg_per_year),
        bap_g_per_year=delta(option.bap_g_per_year, current.bap_g_per_year),
    )


def _current(trace: Trace, house: _House) -> CurrentHeatingSummary:
    kind = house.request.current_heating
    appliance, fuel, co2_key = _CURRENT[kind]
    final_kwh, fuel_gj = _final(trace, house, f"efficiencies.{appliance}")
    energy, bill, co2 = _bought_fuel(trace, final_kwh, fuel_gj, fuel, co2_key, "t")
    label = getattr(trace.data.efficiencies, appliance).label_pl or appliance
    return CurrentHeatingSummary(
        kind=kind,
        label_pl=label,
        energy=energy,
        yearly_bill=YearlyBill(energy_pln=_money(bill), fixed_pln=0.0, total_pln=_money(bill)),
        emissions=_emissions(trace, appliance, fuel_gj, co2),
        cost_15_years_pln=_money(
            float(
                trace.formula(formulas.cost_over_years_pln)(
                    0.0, 0.0, bill, HORIZON_YEARS, _bill_change(house)
                )
            )
        ),
        data_keys=trace.keys,
        formulas=trace.formulas,
    )


@dataclass
class _Figures:
    """What an option's own computation yields before grants and the loan are applied."""

    heat_source_lines: list[CostLine]
    internal_pln: float
    removal_pln: float
    clean_air_items: list[CostItem]
    energy: EnergyUse
    energy_pln: float
    emissions: Emissions
    fixed_pln: float = 0.0
    connection_length_m: float | None = None
    connection_pln: float = 0.0
    # Why the "Czyste Powietrze" programme pays nothing for this source, when it does not.
    clean_air_excluded_pl: str | None = None


def _cost_line(key: str, label_pl: str, amount_pln: float) -> CostLine:
    """A line of the investment, named by the data key its cost comes from."""
    return CostLine(key=key, label_pl=label_pl, amount_pln=_money(amount_pln))


def _energy_use(final_kwh: float, quantity: float, unit: str, decimals: int = 1) -> EnergyUse:
    return EnergyUse(
        final_energy_kwh_per_year=round(final_kwh, 1),
        quantity_per_year=round(quantity, decimals),
        quantity_unit=unit,
    )


def _common_costs(trace: Trace, house: _House, needs_central_heating: bool) -> tuple[float, float]:
    internal = 0.0
    if needs_central_heating and not house.central_heating:
        internal = float(
            trace.formula(formulas.per_unit_cost_pln)(
                house.request.heated_area_m2, trace.value("investments.internal_installation_pln_per_m2")
            )
        )
    removal = trace.value("investments.old_stove_removal_pln")
    return internal, removal


def _band(trace: Trace, key: str, power_kw: float) -> float:
    table = trace.bands(key)
    cost = trace.formula(formulas.banded_cost_pln)(
        power_kw, [(band.max_heat_power_kw, band.cost_pln) for band in table.bands]
    )
    trace.chose_band(key, cost)
    return cost


def _connection(trace: Trace, network: str, distance_m: float) -> float:
    base = f"investments.connections.{network}"
    return float(
        trace.formula(formulas.connection_cost_pln)(
            distance_m, trace.value(f"{base}.fixed_pln"), trace.value(f"{base}.per_metre_pln")
        )
    )


# Sources that heat water with another efficiency than rooms (a heat pump lifts water to 55 °C).
_HOT_WATER_EFFICIENCY = {"efficiencies.heat_pump_air_water_scop": "efficiencies.heat_pump_air_water_dhw_cop"}


def _final(trace: Trace, house: _House, efficiency_key: str) -> tuple[float, float]:
    """Final energy a source takes a year for the rooms and, when counted, the water [kWh], and in GJ."""
    final = trace.formula(formulas.final_energy_kwh_per_year)
    final_kwh = float(final(house.heat_demand_kwh_per_year, trace.value(efficiency_key)))
    if house.hot_water_heat_kwh_per_year:
        water_efficiency = trace.value(_HOT_WATER_EFFICIENCY.get(efficiency_key, efficiency_key))
        final_kwh += float(final(house.hot_water_heat_kwh_per_year, water_efficiency))
    return final_kwh, float(trace.formula(formulas.energy_gj)(final_kwh))


def _co2(trace: Trace, quantity: float, factor_key: str) -> float:
    """CO2 [kg a year] of a yearly quantity (GJ or kWh) by the emission factor at ``emissions.co2.<key>``."""
    factor = trace.value(f"emissions.co2.{factor_key}")
    return float(trace.formula(formulas.co2_kg_per_year)(quantity, factor))


def _fixed_charges(trace: Trace, monthly_key: str) -> float:
    """A tariff's fixed charges [zł a year] from the monthly charge at ``monthly_key``."""
    return float(trace.formula(formulas.fixed_charges_pln_per_year)(trace.value(monthly_key)))


# How a fuel bought by the tonne or by the litre is priced: (calorific value's key, price's key in
# prices.<fuel>, the formula from final energy to the quantity, decimals shown).
_BY_UNIT: dict[str, tuple[str, str, Callable[[Numeric, Numeric], Numeric], int]] = {
    "t": ("calorific_value_mj_per_kg", "price_pln_per_tonne", formulas.solid_fuel_tonnes_per_year, 3),
    "l": ("calorific_value_mj_per_litre", "price_pln_per_litre", formulas.lpg_litres_per_year, 1),
}


def _bought_fuel(
    trace: Trace, final_kwh: float, fuel_gj: float, fuel: str, co2_key: str, unit: Literal["t", "l"]
) -> tuple[EnergyUse, float, float]:
    """A fuel bought by the tonne or the litre: its yearly use, its yearly cost [zł] and its CO2 [kg]."""
    calorific_key, price_key, to_quantity, decimals = _BY_UNIT[unit]
    quantity = float(trace.formula(to_quantity)(final_kwh, trace.value(f"prices.{fuel}.{calorific_key}")))
    price = trace.value(f"prices.{fuel}.{price_key}")
    cost = float(trace.formula(formulas.quantity_cost_pln_per_year)(quantity, price))
    co2 = _co2(trace, fuel_gj, co2_key)
    return _energy_use(final_kwh, quantity, unit, decimals), cost, co2


def _with_central_heating(items: list[CostItem], internal: float) -> list[CostItem]:
    if internal > 0:
        items.append(CostItem("central_heating_installation", internal))
    return items


def _district_heat(trace: Trace, house: _House, site: Site) -> _Figures:
    distance = float(site.distance_heat_m or 0.0)
    connection = _connection(trace, "district_heat", distance)
    substation = _band(trace, "investments.heat_sources.district_heat_substation", house.design_heat_power_kw)
    internal, removal = _common_costs(trace, house, needs_central_heating=True)
    final_kwh, heat_gj = _final(trace, house, "efficiencies.district_heat_substation")
    energy_pln = float(
        trace.formula(formulas.district_heat_energy_cost_pln_per_year)(
            heat_gj,
            trace.value("prices.district_heat.heat_pln_per_gj"),
            trace.value("prices.district_heat.transmission_pln_per_gj"),
        )
    )
    fixed_pln = float(
        trace.formula(formulas.capacity_charges_pln_per_year)(
            house.design_heat_power_kw, trace.value("prices.district_heat.capacity_pln_per_kw_month")
        )
    ) + _fixed_charges(trace, "prices.district_heat.fixed_pln_per_month")
    co2 = _co2(trace, heat_gj, "district_heat_kg_per_gj")
    return _Figures(
        connection_length_m=round(distance, 1),
        connection_pln=connection,
        heat_source_lines=[
            _cost_line("investments.heat_sources.district_heat_substation", "węzeł cieplny", substation)
        ],
        internal_pln=internal,
        removal_pln=removal,
        clean_air_items=_with_central_heating(
            [CostItem("district_heat_connection_with_substation", connection + substation + removal)],
            internal,
        ),
        energy=_energy_use(final_kwh, heat_gj, "GJ", decimals=3),
        energy_pln=energy_pln,
        fixed_pln=fixed_pln,
        emissions=_emissions(trace, "district_heat_substation", heat_gj, co2),
    )


def _gas_exclusion(trace: Trace) -> str:
    since = trace.fact("subsidies.czyste_powietrze.gas_boilers_excluded_from")
    return (
        f"Kotły gazowe nie są dofinansowane z programu „Czyste Powietrze” od "
        f"{getattr(since, 'value', '2025-01-01')} (dyrektywa EPBD 2024/1275, art. 17 ust. 15)."
    )


def _network_gas(trace: Trace, house: _House, site: Site) -> _Figures:
    distance = float(site.distance_gas_m or 0.0)
    connection = _connection(trace, "natural_gas", distance)
    boiler = _band(trace, "investments.heat_sources.gas_condensing_boiler", house.design_heat_power_kw)
    internal, removal = _common_costs(trace, house, needs_central_heating=True)
    final_kwh, fuel_gj = _final(trace, house, "efficiencies.gas_condensing_boiler")
    energy_pln = float(
        trace.formula(formulas.network_gas_energy_cost_pln_per_year)(
            final_kwh,
            trace.value("prices.natural_gas.fuel_pln_per_kwh"),
            trace.value("prices.natural_gas.distribution_pln_per_kwh"),
        )
    )
    fixed_pln = _fixed_charges(trace, "prices.natural_gas.fixed_pln_per_month")
    co2 = _co2(trace, fuel_gj, "natural_gas_kg_per_gj")
    return _Figures(
        connection_length_m=round(distance, 1),
        connection_pln=connection,
        heat_source_lines=[
            _cost_line(
                "investments.heat_sources.gas_condensing_boiler",
                "kocioł gazowy kondensacyjny z montażem",
                boiler,
            )
        ],
        internal_pln=internal,
        removal_pln=removal,
        clean_air_items=[],
        clean_air_excluded_pl=_gas_exclusion(trace),
        energy=_energy_use(final_kwh, final_kwh, "kWh"),
        energy_pln=energy_pln,
        fixed_pln=fixed_pln,
        emissions=_emissions(trace, "gas_condensing_boiler", fuel_gj, co2),
    )


def _electricity_price(trace: Trace, tariff: Literal["g11", "g12"]) -> tuple[float, float]:
    """Mean price per kWh and incremental fixed charges a year of a tariff."""
    if tariff == "g11":
        price = trace.value("prices.electricity_g11.price_pln_per_kwh")
    else:
        price = float(
            trace.formula(formulas.g12_mean_price_pln_per_kwh)(
                trace.value("prices.electricity_g12.day_pln_per_kwh"),
                trace.value("prices.electricity_g12.night_pln_per_kwh"),
                trace.value("prices.electricity_g12.night_share"),
            )
        )
    return price, _fixed_charges(trace, f"prices.electricity_{tariff}.fixed_pln_per_month")


def _electric(
    trace: Trace,
    house: _House,
    efficiency_key: str,
    appliance: str,
    tariff: Literal["g11", "g12"],
    heat_source_lines: list[CostLine],
    clean_air_items: list[CostItem],
    internal: float,
    removal: float,
) -> _Figures:
    final_kwh, final_gj = _final(trace, house, efficiency_key)
    price, fixed = _electricity_price(trace, tariff)
    energy_pln = float(trace.formula(formulas.quantity_cost_pln_per_year)(final_kwh, price))
    co2 = _co2(trace, final_kwh, "electricity_kg_per_kwh")
    return _Figures(
        heat_source_lines=heat_source_lines,
        internal_pln=internal,
        removal_pln=removal,
        clean_air_items=clean_air_items,
        energy=_energy_use(final_kwh, final_kwh, "kWh"),
        energy_pln=energy_pln,
        fixed_pln=fixed,
        emissions=_emissions(trace, appliance, final_gj, co2),
    )


def _heat_pump(tariff: Literal["g11", "g12"]) -> Callable[[Trace, _House, Site], _Figures]:
    def compute(trace: Trace, house: _House, site: Site) -> _Figures:
        pump = _band(trace, "investments.heat_sources.heat_pump_air_water", house.design_heat_power_kw)
        internal, removal = _common_costs(trace, house, needs_central_heating=True)
        items = _with_central_heating([CostItem("heat_pump_air_water", pump + removal)], internal)
        lines = [
            _cost_line(
                "investments.heat_sources.heat_pump_air_water", "pompa ciepła powietrze-woda z montażem", pump
            )
        ]
        return _electric(
            trace,
            house,
            "efficiencies.heat_pump_air_water_scop",
            "heat_pump_air_water",
            tariff,
            lines,
            items,
            internal,
            removal,
        )

    return compute


def _electric_heaters(trace: Trace, house: _House, site: Site) -> _Figures:
    heaters = float(
        trace.formula(formulas.per_unit_cost_pln)(
            house.design_heat_power_kw, trace.value("investments.electric_heaters.per_kw_pln")
        )
    )
    wiring = trace.value("investments.electric_heaters.wiring_pln")
    # Room heaters need no water central heating, so no internal installation is counted.
    internal, removal = _common_costs(trace, house, needs_central_heating=False)
    lines = [
        _cost_line("investments.electric_heaters.per_kw_pln", "grzejniki elektryczne z montażem", heaters),
        _cost_line("investments.electric_heaters.wiring_pln", "obwody elektryczne grzejników", wiring),
    ]
    items = [CostItem("electric_heating", heaters + wiring + removal)]
    return _electric(
        trace,
        house,
        "efficiencies.electric_heaters",
        "electric_heaters",
        "g12",
        lines,
        items,
        internal,
        removal,
    )


def _pellet(trace: Trace, house: _House, site: Site) -> _Figures:
    boiler = _band(trace, "investments.heat_sources.pellet_boiler", house.design_heat_power_kw)
    internal, removal = _common_costs(trace, house, needs_central_heating=True)
    final_kwh, fuel_gj = _final(trace, house, "efficiencies.pellet_boiler")
    energy, energy_pln, co2 = _bought_fuel(trace, final_kwh, fuel_gj, "wood_pellet", "wood_kg_per_gj", "t")
    return _Figures(
        heat_source_lines=[
            _cost_line("investments.heat_sources.pellet_boiler", "kocioł na pellet z montażem", boiler)
        ],
        internal_pln=internal,
        removal_pln=removal,
        clean_air_items=_with_central_heating([CostItem("pellet_boiler", boiler + removal)], internal),
        energy=energy,
        energy_pln=energy_pln,
        emissions=_emissions(trace, "pellet_boiler", fuel_gj, co2),
    )


def _lpg(trace: Trace, house: _House, site: Site) -> _Figures:
    boiler = _band(trace, "investments.heat_sources.lpg_condensing_boiler", house.design_heat_power_kw)
    tank = trace.value("investments.lpg_tank_pln")
    internal, removal = _common_costs(trace, house, needs_central_heating=True)
    final_kwh, fuel_gj = _final(trace, house, "efficiencies.lpg_condensing_boiler")
    energy, energy_pln, co2 = _bought_fuel(trace, final_kwh, fuel_gj, "lpg", "lpg_kg_per_gj", "l")
    return _Figures(
        heat_source_lines=[
            _cost_line(
                "investments.heat_sources.lpg_condensing_boiler",
                "kocioł kondensacyjny LPG z montażem",
                boiler,
            ),
            _cost_line("investments.lpg_tank_pln", "zbiornik LPG z montażem", tank),
        ],
        internal_pln=internal,
        removal_pln=removal,
        clean_air_items=[],
        clean_air_excluded_pl=_gas_exclusion(trace),
        energy=energy,
        energy_pln=energy_pln,
        emissions=_emissions(trace, "lpg_condensing_boiler", fuel_gj, co2),
    )


_COMPUTE: dict[OptionKind, Callable[[Trace, _House, Site], _Figures]] = {
    "district_heat": _district_heat,
    "network_gas": _network_gas,
    "heat_pump_g12": _heat_pump("g12"),
    "heat_pump_g11": _heat_pump("g11"),
    "electric_heaters": _electric_heaters,
    "pellet_boiler": _pellet,
    "lpg": _lpg,
}
_NETWORK_OF: dict[OptionKind, tuple[str, str, str]] = {
    # option: (network.yaml key, Site attribute, Polish name of the network)
    "district_heat": ("district_heat", "distance_heat_m", "sieci ciepłowniczej"),
    "network_gas": ("natural_gas", "distance_gas_m", "sieci gazowej"),
}


def _availability(trace: Trace, kind: OptionKind, site: Site) -> str | None:
    """Why the option is not available here, in Polish, or ``None`` when it is."""
    if kind not in _NETWORK_OF:
        return None
    network, attribute, name_pl = _NETWORK_OF[kind]
    limit = trace.value(f"network.{network}.max_distance_m")
    distance: float | None = getattr(site, attribute)
    if distance is None:
        return f"Brak danych o przebiegu {name_pl} w tym miejscu; zapytaj operatora sieci."
    if distance > limit:
        return (
            f"Budynek jest {number_pl(distance)} m od {name_pl}; przyłącze możliwe do {number_pl(limit)} m."
        )
    return None


def _loan(trace: Trace, request: LoanRequest | None, net_investment: float) -> LoanResult | None:
    if request is None or net_investment <= 0:
        return None
    if request.amount_pln is not None:
        # A loan larger than what is left to pay would only cost interest.
        principal = min(request.amount_pln, net_investment)
    else:
        principal = net_investment * float(request.share_of_net_investment or 0.0)
    rate = request.annual_rate_percent / 100.0
    payment = float(trace.formula(formulas.annuity_payment_pln_per_month)(principal, rate, request.years))
    repaid = float(trace.formula(formulas.loan_total_repaid_pln)(principal, rate, request.years))
    interest = float(trace.formula(formulas.loan_total_interest_pln)(principal, rate, request.years))
    return LoanResult(
        principal_pln=_money(principal),
        annual_rate_percent=request.annual_rate_percent,
        years=request.years,
        monthly_payment_pln=_money(payment),
        total_repaid_pln=_money(repaid),
        total_interest_pln=_money(interest),
    )


def _option(
    base: Trace,
    kind: OptionKind,
    house: _House,
    site: Site,
    tier: TierDecision,
    current: CurrentHeatingSummary,
) -> HeatingOption:
    trace = base.child()
    label = OPTION_LABELS_PL[kind]
    reason = _availability(trace, kind, site)
    if reason is not None:
        return HeatingOption(
            kind=kind,
            label_pl=label,
            available=False,
            reason_pl=reason,
            investment=None,
            subsidies=[],
            subsidies_total_pln=None,
            net_investment_pln=None,
            loan=None,
            energy=None,
            yearly_bill=None,
            emissions=None,
            emissions_change=None,
            cost_15_years_pln=None,
            explanation_pl=f"{label}: niedostępne. {reason}",
            data_keys=trace.keys,
            formulas=trace.formulas,
            unconfirmed_keys=trace.unconfirmed_keys,
        )
    figures = _COMPUTE[kind](trace, house, site)
    heat_source = sum(line.amount_pln for line in figures.heat_source_lines)
    total = figures.connection_pln + heat_source + figures.internal_pln + figures.removal_pln
    lines = list(figures.heat_source_lines)
    if figures.connection_pln:
        network = _NETWORK_OF[kind][0]
        length = number_pl(figures.connection_length_m or 0)
        lines.insert(
            0,
            _cost_line(
                f"investments.connections.{network}", f"przyłącze ({length} m)", figures.connection_pln
            ),
        )
    if figures.internal_pln:
        lines.append(
            _cost_line(
                "investments.internal_installation_pln_per_m2",
                "instalacja centralnego ogrzewania",
                figures.internal_pln,
            )
        )
    lines.append(
        _cost_line("investments.old_stove_removal_pln", "demontaż starego pieca", figures.removal_pln)
    )
    investment = InvestmentBreakdown(
        connection_length_m=figures.connection_length_m,
        connection_pln=_money(figures.connection_pln),
        heat_source_pln=_money(heat_source),
        internal_installation_pln=_money(figures.internal_pln),
        old_stove_removal_pln=_money(figures.removal_pln),
        total_pln=_money(total),
        lines=lines,
    )
    subsidies: list[SubsidyLine] = []
    clean_air = clean_air_grant(trace, tier, figures.clean_air_items, figures.clean_air_excluded_pl)
    if clean_air is not None:
        subsidies.append(clean_air)
    subsidies.append(city_grant(trace, total, sum(line.amount_pln for line in subsidies)))
    granted = sum(line.amount_pln for line in subsidies)
    net = max(total - granted, 0.0)
    loan = _loan(trace, house.request.loan, net)
    interest = loan.total_interest_pln if loan else 0.0
    bill_total = figures.energy_pln + figures.fixed_pln
    cost_15 = float(
        trace.formula(formulas.cost_over_years_pln)(
            net, interest, bill_total, HORIZON_YEARS, _bill_change(house)
        )
    )
    change = _change(figures.emissions, current.emissions)
    return HeatingOption(
        kind=kind,
        label_pl=label,
        available=True,
        reason_pl=None,
        investment=investment,
        subsidies=[line.in_grosze() for line in subsidies],
        subsidies_total_pln=_money(granted),
        net_investment_pln=_money(net),
        loan=loan,
        energy=figures.energy,
        yearly_bill=YearlyBill(
            energy_pln=_money(figures.energy_pln),
            fixed_pln=_money(figures.fixed_pln),
            total_pln=_money(bill_total),
        ),
        emissions=figures.emissions,
        emissions_change=change,
        cost_15_years_pln=_money(cost_15),
        explanation_pl=_explain_option(
            label, investment, granted, net, bill_total, cost_15, loan, change, figures.emissions
        ),
        data_keys=trace.keys,
        formulas=trace.formulas,
        unconfirmed_keys=trace.unconfirmed_keys,
    )


def _explain_option(
    label: str,
    investment: InvestmentBreakdown,
    granted: float,
    net: float,
    bill: float,
    cost_15: float,
    loan: LoanResult | None,
    change: Emissions,
    emissions: Emissions,
) -> str:
    parts = ", ".join(f"{line.label_pl} {pln(line.amount_pln)}" for line in investment.lines)
    text = (
        f"{label}: inwestycja {pln(investment.total_pln)} ({parts}); dotacje {pln(granted)}, "
        f"do zapłaty {pln(net)}. Rachunek ok. {pln(bill)} rocznie. "
    )
    if loan is not None:
        text += (
            f"Kredyt {pln(loan.principal_pln)} na {loan.years} lat: rata {pln(loan.monthly_payment_pln)} "
            f"miesięcznie, odsetki razem {pln(loan.total_interest_pln)}. "
        )
    text += f"Koszt w {HORIZON_YEARS} lat: {pln(cost_15)}. "
    sign = "+" if change.co2_kg_per_year > 0 else "−"
    text += f"CO2: {sign}{number_pl(abs(change.co2_kg_per_year))} kg rocznie"
    if change.pm10_kg_per_year is not None and emissions.pm10_kg_per_year is not None:
        text += (
            f"; pył PM10 z komina domu: {number_pl(emissions.pm10_kg_per_year, 1)} kg rocznie zamiast "
            f"{number_pl(emissions.pm10_kg_per_year - change.pm10_kg_per_year, 1)} kg"
        )
    return text + "."


def estimate_for_site(
    request: EstimateRequest, site: Site, data: SmogData | None = None, today: dt.date | None = None
) -> EstimateResponse:
    """The estimate for a house at a known site (distances already known); pure apart from reading data.
    ``today`` is the day the figures are judged current on (no judgement without it)."""
    data = data or shipped_data()
    standards = data.demand.standards
    if request.building_standard not in standards:
        known = ", ".join(standards)
        raise SmogInputError(
            "building_standard",
            f"Pole „building_standard” (okres budowy lub standard ocieplenia): nieznana wartość "
            f"„{request.building_standard}”; dozwolone: {known}.",
        )
    trace = Trace(data)
    specific = trace.value(f"demand.standards.{request.building_standard}.heat_demand_kwh_per_m2_year")
    demand = float(trace.formula(formulas.heat_demand_kwh_per_year)(request.heated_area_m2, specific))
    hours = trace.value("demand.full_load_hours_h")
    power = float(trace.formula(formulas.design_heat_power_kw)(demand, hours))
    house = _House(request, demand, _hot_water(trace, request), power, request.central_heating)
    current = _current(trace.child(), house)
    tier_trace = trace.child()
    tier = clean_air_tier(
        tier_trace,
        request.income_pln_per_person_month,
        request.household_size,
        request.applicant_income_pln_per_year,
    )
    options = [_option(tier_trace, kind, house, site, tier, current) for kind in OPTION_KINDS]
    options.sort(key=lambda option: (not option.available, option.cost_15_years_pln or 0.0))
    unconfirmed = sorted(
        {key for option in options for key in option.unconfirmed_keys}
        | set(trace.unconfirmed_keys)
        | set(tier_trace.unconfirmed_keys)
    )
    building = Building(
        heated_area_m2=request.heated_area_m2,
        building_standard=request.building_standard,
        building_standard_label_pl=standards[request.building_standard].label_pl,
        heat_demand_kwh_per_m2_year=specific,
        heat_demand_kwh_per_year=round(demand, 1),
        hot_water_heat_kwh_per_year=round(house.hot_water_heat_kwh_per_year, 1),
        full_load_hours_h=hours,
        design_heat_power_kw=round(power, 2),
        has_central_heating=house.central_heating,
    )
    used = trace.ledger
    expired = _expired(data, used, today)
    return EstimateResponse(
        data_version=data.version,
        address=site.address,
        lat=site.lat,
        lon=site.lon,
        distance_gas_m=site.distance_gas_m,
        distance_heat_m=site.distance_heat_m,
        building=building,
        current_heating=current,
        subsidy_tier=tier.tier,
        subsidy_tier_explanation_pl=tier.explanation_pl,
        options=options,
        horizon_years=HORIZON_YEARS,
        prices_assumption_pl=_prices_assumption(request, data.version) + _expired_notice(data, expired),
        explanation_pl=_explain_overall(building, current, options, tier),
        other_programmes_pl=[f"{item.label_pl}: {item.text_pl}" for item in data.subsidies.informational],
        unconfirmed_keys=unconfirmed,
        expired_keys=expired,
        data_used=used,
    )


def _expired(data: SmogData, used: Sequence[DataReference], today: dt.date | None) -> list[str]:
    """The keys among ``used`` whose validity ended before ``today``."""
    if today is None:
        return []
    by_day = data.memo("expired")
    expired = by_day.get(today)
    if expired is None:
        expired = by_day[today] = frozenset(data.expired_keys(today))
    return [reference.key for reference in used if reference.key in expired]


def _expired_notice(data: SmogData, keys: list[str]) -> str:
    if not keys:
        return ""
    figures = ", ".join(
        f"{data.label_pl(key)} (ważne do {_date_pl(data.sourced(key).valid_until)})" for key in keys
    )
    return (
        f" Uwaga: część danych straciła ważność: {figures}. Miasto nie wprowadziło jeszcze nowych, "
        "więc kwoty z nich policzone mogą odbiegać od dzisiejszych."
    )


def _date_pl(day: dt.date | None) -> str:
    return "" if day is None else f"{day.day:02d}.{day.month:02d}.{day.year}{NBSP}r."


def _prices_assumption(request: EstimateRequest, version: str) -> str:
    change = request.price_change_percent_per_year
    if change == 0:
        return (
            f"Ceny energii i paliw przyjęto stałe przez {HORIZON_YEARS} lat, w dzisiejszych złotych (wersja "
            f"danych {version}); nie prognozujemy ich wzrostu, bo żadna prognoza nie jest dość pewna, "
            "a ranking zależałby od niej bardziej niż od domu."
        )
    direction = "rosną" if change > 0 else "maleją"
    rate = f"{figure_pl(abs(change))}{NBSP}% rocznie"
    return (
        f"Na Twoje życzenie rachunki za energię i paliwa {direction} o {rate} "
        f"ponad inflację, tak samo dla każdego źródła, przez {HORIZON_YEARS} lat; kwoty w dzisiejszych "
        f"złotych (ceny wyjściowe z danych w wersji {version}). To założenie, nie prognoza."
    )


def _hot_water(trace: Trace, request: EstimateRequest) -> float:
    """The household's hot water heat [kWh a year] when the heat source heats it, else 0."""
    if not request.hot_water:
        return 0.0
    base = "demand.hot_water"
    return float(
        trace.formula(formulas.hot_water_heat_kwh_per_year)(
            request.household_size,
            trace.value(f"{base}.litres_per_person_day"),
            trace.value(f"{base}.supply_temperature_c"),
            trace.value(f"{base}.cold_water_temperature_c"),
        )
    )


def _explain_overall(
    building: Building, current: CurrentHeatingSummary, options: list[HeatingOption], tier: TierDecision
) -> str:
    available = [option for option in options if option.available]
    text = (
        f"Dom {number_pl(building.heated_area_m2)} m² ({building.building_standard_label_pl}) potrzebuje ok. "
        f"{number_pl(building.heat_demand_kwh_per_year)} kWh ciepła rocznie (moc ok. "
        f"{number_pl(building.design_heat_power_kw, 1)} kW)"
    )
    if building.hot_water_heat_kwh_per_year:
        text += (
            f", a ciepła woda dla domowników ok. {number_pl(building.hot_water_heat_kwh_per_year)} kWh; "
            "wszystkie źródła liczone z ogrzewaniem wody"
        )
    text += (
        f". Dziś ({current.label_pl}) ogrzewanie kosztuje ok. {pln(current.yearly_bill.total_pln)} rocznie. "
    )
    if available:
        best = available[0]
        text += f"Najtańsza w {HORIZON_YEARS} lat: {best.label_pl} ({pln(best.cost_15_years_pln or 0.0)})"
        if len(available) > 1:
            second = available[1]
            text += f", następnie {second.label_pl} ({pln(second.cost_15_years_pln or 0.0)})"
        text += ". "
    unavailable = [option.label_pl for option in options if not option.available]
    if unavailable:
        text += "Niedostępne pod tym adresem: " + ", ".join(unavailable) + ". "
    text += tier.explanation_pl
    return text


def estimate(
    session: Session | None,
    request: EstimateRequest,
    data: SmogData | None = None,
    sites: AddressSites | None = None,
    today: dt.date | None = None,
) -> EstimateResponse:
    """The estimate for a request: the address (by id, from the database, through ``sites`` when given) or
    the coordinates (distances to the networks stored in the database, when a session is given), with its
    figures judged current on ``today``."""
    if request.address_id is not None:
        if session is None:
            raise SmogInputError("address_id", "Pole „address_id” (adres): baza adresów jest niedostępna.")
        found = (
            sites.get(session, request.address_id)
            if sites is not None
            else site_of_address(session, request.address_id)
        )
        if found is None:
            raise SmogInputError(
                "address_id",
                f"Pole „address_id” (adres): nie znaleziono adresu o identyfikatorze {request.address_id}.",
            )
        site = found
    else:
        lat, lon = float(request.lat or 0.0), float(request.lon or 0.0)
        distances = (
            distances_for_point(session, lat, lon) if session is not None else {"gas": None, "heat": None}
        )
        site = Site(lat, lon, distances["gas"], distances["heat"])
    return estimate_for_site(request, site, data, today)
