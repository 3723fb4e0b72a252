"""The calculator's data set (prices, efficiencies, investments, emissions, subsidies, demand, network limits)
read from the YAML files in ``cloud/smog/data`` and validated: every value carries its source and date, and a
value the calculator cannot use is refused with the file, the field and the reason.

A value is addressed by a dotted key, ``<file>.<path>`` (``prices.natural_gas.fuel_pln_per_kwh``); each
estimate lists the keys it used, so that every figure it shows can be traced to a line of a file.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from cloud.smog.errors import SmogDataError

DATA_DIR = Path(__file__).resolve().parent / "data"
DATA_FILES = (
    "manifest",
    "prices",
    "efficiencies",
    "investments",
    "emissions",
    "subsidies",
    "demand",
    "network",
)

NonEmptyText = Annotated[str, Field(min_length=3)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Model):
    """Where a figure comes from: publication (and URL when known), the date it holds for, the last day it
    holds when its source says (a tariff's period), and whether it is an estimate that the city should
    confirm."""

    source: NonEmptyText
    url: str | None = None
    as_of: dt.date
    valid_until: dt.date | None = None
    unconfirmed: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _valid_after_as_of(self) -> Sourced:
        if self.valid_until is not None and self.valid_until < self.as_of:
            raise ValueError(f"valid_until {self.valid_until} is before as_of {self.as_of}")
        return self


class SourcedValue(Sourced):
    """A number with its source; subclasses narrow the allowed range."""

    value: float


class NonNegativeValue(SourcedValue):
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PositiveValue(SourcedValue):
    value: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class FractionValue(SourcedValue):
    """A share in [0, 1]."""

    value: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class EfficiencyValue(SourcedValue):
    """A boiler's or stove's seasonal efficiency in (0, 1]: no appliance burning fuel delivers more heat than
    the fuel holds."""

    label_pl: str | None = None
    value: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class ScopValue(SourcedValue):
    """A heat pump's seasonal coefficient of performance."""

    label_pl: str | None = None
    value: Annotated[float, Field(ge=1, le=8, allow_inf_nan=False)]


class OptionalFactorValue(Sourced):
    """An emission factor that may be unknown (``value: null``)."""

    value: Annotated[float | None, Field(ge=0, allow_inf_nan=False)]


class SourcedDate(Sourced):
    value: dt.date


class Band(_Model):
    max_heat_power_kw: Annotated[float | None, Field(gt=0)]
    cost_pln: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class BandTable(Sourced):
    """Installed costs by design heat power: the first band whose ``max_heat_power_kw`` is at least the
    power applies; the last band is open-ended."""

    bands: Annotated[list[Band], Field(min_length=1)]

    @model_validator(mode="after")
    def _ascending_and_open(self) -> BandTable:
        limits = [band.max_heat_power_kw for band in self.bands]
        if limits[-1] is not None:
            raise ValueError("the last band must be open-ended (max_heat_power_kw: null)")
        closed = limits[:-1]
        if any(limit is None for limit in closed):
            raise ValueError("only the last band may be open-ended")
        values = [float(limit) for limit in closed if limit is not None]
        if any(b <= a for a, b in itertools.pairwise(values)):
            raise ValueError("bands must be in ascending order of max_heat_power_kw")
        return self


# --- manifest.yaml ---------------------------------------------------------------------------------------


class ChangelogEntry(_Model):
    version: str
    date: dt.date
    author: str
    change: NonEmptyText


class ManifestFile(_Model):
    version: Annotated[str, Field(pattern=r"^\d{4}\.\d+$")]
    changelog: Annotated[list[ChangelogEntry], Field(min_length=1)]

    @model_validator(mode="after")
    def _version_logged(self) -> ManifestFile:
        if self.changelog[0].version != self.version:
            raise ValueError(
                f"the newest changelog entry must be for version {self.version!r}, "
                f"found {self.changelog[0].version!r}"
            )
        return self


# --- prices.yaml -----------------------------------------------------------------------------------------


class SolidFuelPrice(_Model):
    label_pl: str
    price_pln_per_tonne: NonNegativeValue
    calorific_value_mj_per_kg: PositiveValue


class LpgPrice(_Model):
    label_pl: str
    price_pln_per_litre: NonNegativeValue
    calorific_value_mj_per_litre: PositiveValue


class GasTariff(_Model):
    label_pl: str
    fuel_pln_per_kwh: NonNegativeValue
    distribution_pln_per_kwh: NonNegativeValue
    fixed_pln_per_month: NonNegativeValue


class DistrictHeatTariff(_Model):
    label_pl: str
    operator: str
    heat_pln_per_gj: NonNegativeValue
    transmission_pln_per_gj: NonNegativeValue
    capacity_pln_per_kw_month: NonNegativeValue
    fixed_pln_per_month: NonNegativeValue


class G11Tariff(_Model):
    label_pl: str
    price_pln_per_kwh: NonNegativeValue
    fixed_pln_per_month: NonNegativeValue


class G12Tariff(_Model):
    label_pl: str
    day_pln_per_kwh: NonNegativeValue
    night_pln_per_kwh: NonNegativeValue
    night_share: FractionValue
    fixed_pln_per_month: NonNegativeValue


class PricesFile(_Model):
    hard_coal: SolidFuelPrice
    eco_pea_coal: SolidFuelPrice
    wood_pellet: SolidFuelPrice
    firewood: SolidFuelPrice
    lpg: LpgPrice
    natural_gas: GasTariff
    district_heat: DistrictHeatTariff
    electricity_g11: G11Tariff
    electricity_g12: G12Tariff


# --- efficiencies.yaml -----------------------------------------------------------------------------------


class EfficienciesFile(_Model):
    coal_stove: EfficiencyValue
    coal_boiler_old: EfficiencyValue
    coal_boiler_class5: EfficiencyValue
    wood_stove: EfficiencyValue
    gas_condensing_boiler: EfficiencyValue
    lpg_condensing_boiler: EfficiencyValue
    district_heat_substation: EfficiencyValue
    heat_pump_air_water_scop: ScopValue
    heat_pump_air_water_dhw_cop: ScopValue
    pellet_boiler: EfficiencyValue
    electric_heaters: EfficiencyValue


# --- investments.yaml ------------------------------------------------------------------------------------


class ConnectionCost(_Model):
    fixed_pln: NonNegativeValue
    per_metre_pln: NonNegativeValue


class Connections(_Model):
    natural_gas: ConnectionCost
    district_heat: ConnectionCost


class HeatSourceBands(_Model):
    gas_condensing_boiler: BandTable
    lpg_condensing_boiler: BandTable
    district_heat_substation: BandTable
    heat_pump_air_water: BandTable
    pellet_boiler: BandTable


class ElectricHeatersCost(_Model):
    per_kw_pln: NonNegativeValue
    wiring_pln: NonNegativeValue


class InvestmentsFile(_Model):
    connections: Connections
    heat_sources: HeatSourceBands
    electric_heaters: ElectricHeatersCost
    lpg_tank_pln: NonNegativeValue
    internal_installation_pln_per_m2: NonNegativeValue
    old_stove_removal_pln: NonNegativeValue


# --- emissions.yaml --------------------------------------------------------------------------------------


class Co2Factors(_Model):
    hard_coal_kg_per_gj: NonNegativeValue
    eco_pea_coal_kg_per_gj: NonNegativeValue
    natural_gas_kg_per_gj: NonNegativeValue
    lpg_kg_per_gj: NonNegativeValue
    wood_kg_per_gj: NonNegativeValue
    electricity_kg_per_kwh: NonNegativeValue
    district_heat_kg_per_gj: NonNegativeValue


class ApplianceEmissions(_Model):
    pm10_g_per_gj: OptionalFactorValue
    pm25_g_per_gj: OptionalFactorValue
    bap_g_per_gj: OptionalFactorValue


class ApplianceEmissionTable(_Model):
    coal_stove: ApplianceEmissions
    coal_boiler_old: ApplianceEmissions
    coal_boiler_class5: ApplianceEmissions
    wood_stove: ApplianceEmissions
    pellet_boiler: ApplianceEmissions
    gas_condensing_boiler: ApplianceEmissions
    lpg_condensing_boiler: ApplianceEmissions
    heat_pump_air_water: ApplianceEmissions
    electric_heaters: ApplianceEmissions
    district_heat_substation: ApplianceEmissions


class EmissionsFile(_Model):
    co2: Co2Factors
    appliances: ApplianceEmissionTable


# --- subsidies.yaml --------------------------------------------------------------------------------------


class CityGrant(_Model):
    label_pl: str
    rate: FractionValue
    cap_pln: NonNegativeValue


class BasicTier(_Model):
    label_pl: str
    rate: FractionValue
    cap_pln: NonNegativeValue
    applicant_income_max_pln_per_year: NonNegativeValue


class IncomeTier(_Model):
    label_pl: str
    rate: FractionValue
    cap_pln: NonNegativeValue
    income_max_pln_per_person_month_multi: NonNegativeValue
    income_max_pln_per_person_month_single: NonNegativeValue


class CleanAirTiers(_Model):
    basic: BasicTier
    increased: IncomeTier
    highest: IncomeTier


class SubsidyItem(_Model):
    label_pl: str
    max_eligible_cost_pln: NonNegativeValue


class CleanAirItems(_Model):
    district_heat_connection_with_substation: SubsidyItem
    heat_pump_air_water: SubsidyItem
    pellet_boiler: SubsidyItem
    electric_heating: SubsidyItem
    central_heating_installation: SubsidyItem


class CleanAir(_Model):
    label_pl: str
    url: str
    tiers: CleanAirTiers
    items: CleanAirItems
    gas_boilers_excluded_from: SourcedDate


class InformationalProgramme(Sourced):
    key: str
    label_pl: str
    text_pl: str


class SubsidiesFile(_Model):
    city_stop_smog: CityGrant
    czyste_powietrze: CleanAir
    informational: list[InformationalProgramme]


# --- demand.yaml -----------------------------------------------------------------------------------------


class BuildingStandard(_Model):
    label_pl: str
    heat_demand_kwh_per_m2_year: PositiveValue


class HoursPerYearValue(SourcedValue):
    """Hours in a year: a heat source cannot run at full power longer than the year's 8,760 hours."""

    value: Annotated[float, Field(gt=0, le=8760, allow_inf_nan=False)]


class HotWaterDemand(_Model):
    """A household's hot water: litres a person uses a day, heated from the cold water's temperature to the
    supply temperature."""

    litres_per_person_day: PositiveValue
    supply_temperature_c: PositiveValue
    cold_water_temperature_c: PositiveValue

    @model_validator(mode="after")
    def _heated(self) -> HotWaterDemand:
        if self.supply_temperature_c.value <= self.cold_water_temperature_c.value:
            raise ValueError("supply_temperature_c must be above cold_water_temperature_c")
        return self


class DemandFile(_Model):
    standards: Annotated[dict[str, BuildingStandard], Field(min_length=1)]
    full_load_hours_h: HoursPerYearValue
    hot_water: HotWaterDemand


# --- network.yaml ----------------------------------------------------------------------------------------


class NetworkLimit(_Model):
    max_distance_m: NonNegativeValue


class NetworkFile(_Model):
    natural_gas: NetworkLimit
    district_heat: NetworkLimit


_FILE_MODELS: dict[str, type[_Model]] = {
    "manifest": ManifestFile,
    "prices": PricesFile,
    "efficiencies": EfficienciesFile,
    "investments": InvestmentsFile,
    "emissions": EmissionsFile,
    "subsidies": SubsidiesFile,
    "demand": DemandFile,
    "network": NetworkFile,
}


class SmogData(_Model):
    """The whole validated data set; ``version`` is the manifest's."""

    manifest: ManifestFile
    prices: PricesFile
    efficiencies: EfficienciesFile
    investments: InvestmentsFile
    emissions: EmissionsFile
    subsidies: SubsidiesFile
    demand: DemandFile
    network: NetworkFile
    # The data set never changes once loaded, so what is derived from it can be kept: an estimate asks for a
    # few hundred keys, and walking the dotted path each time was a third of its cost.
    _memos: dict[str, dict[Any, Any]] = PrivateAttr(default_factory=dict)

    @property
    def version(self) -> str:
        return self.manifest.version

    def lookup(self, key: str) -> Any:
        """The object at a dotted key (``prices.natural_gas.fuel_pln_per_kwh``); ``KeyError`` if none."""
        node: Any = self
        for part in key.split("."):
            if isinstance(node, dict):
                if part not in node:
                    raise KeyError(key)
                node = node[part]
            elif isinstance(node, list):
                matches = [item for item in node if getattr(item, "key", None) == part]
                if not matches:
                    raise KeyError(key)
                node = matches[0]
            elif isinstance(node, BaseModel) and part in type(node).model_fields:
                node = getattr(node, part)
            else:
                raise KeyError(key)
        return node

    def memo(self, purpose: str) -> dict[Any, Any]:
        """A cache of values derived from this data set, one per purpose (it never changes once loaded)."""
        return self._memos.setdefault(purpose, {})

    def sourced(self, key: str) -> Sourced:
        """The sourced value or band table at ``key``."""
        by_key = self.memo("sourced")
        cached = by_key.get(key)
        if cached is not None:
            return cast(Sourced, cached)
        node = self.lookup(key)
        if not isinstance(node, Sourced):
            raise KeyError(f"{key} is not a sourced value")
        by_key[key] = node
        return node

    def sourced_items(self) -> Iterator[tuple[str, Sourced]]:
        """Every sourced value of the data set with its dotted key."""
        yield from _walk(self, "")

    def unconfirmed_keys(self) -> list[str]:
        """The keys of every value marked ``unconfirmed: true``."""
        return [key for key, item in self.sourced_items() if item.unconfirmed]

    def expired_keys(self, today: dt.date) -> list[str]:
        """The keys of every value whose ``valid_until`` is before ``today``: figures the city has not yet
        replaced by their successors."""
        return [
            key
            for key, item in self.sourced_items()
            if item.valid_until is not None and item.valid_until < today
        ]

    def label_pl(self, key: str) -> str:
        """What a person calls the figure at ``key``: the Polish label of it or of the nearest group holding
        it (``prices.natural_gas.fuel_pln_per_kwh`` → "gaz ziemny z sieci"); the key when none has one."""
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            label = getattr(self.lookup(".".join(parts[:end])), "label_pl", None)
            if isinstance(label, str) and label:
                return label
        return key


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, Sourced]]:
    if isinstance(node, Sourced):
        yield prefix, node
        return
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _walk(getattr(node, name), f"{prefix}.{name}" if prefix else name)
    elif isinstance(node, dict):
        for name, child in node.items():
            yield from _walk(child, f"{prefix}.{name}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            name = getattr(child, "key", str(index))
            yield from _walk(child, f"{prefix}.{name}")


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the second would silently win)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_data_file(name: str, path: Path) -> _Model:
    """One data file validated by its model; ``SmogDataError`` names the file, the field and the reason."""
    model = _FILE_MODELS[name]
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError as error:
        raise SmogDataError([f"{path.name}: file is missing"]) from error
    except yaml.YAMLError as error:
        raise SmogDataError([f"{path.name}: not valid YAML ({error})"]) from error
    if not isinstance(raw, dict):
        raise SmogDataError([f"{path.name}: (top level): must be a mapping of fields"])
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = [f"{path.name}: {_location(item['loc'])}: {item['msg']}" for item in error.errors()]
        raise SmogDataError(problems) from error


def load_smog_data(directory: Path | None = None) -> SmogData:
    """Read and validate every data file of ``directory`` (the shipped ``cloud/smog/data`` by default).

    All files are checked before anything is refused, so the city sees every problem at once.
    """
    directory = directory or DATA_DIR
    loaded: dict[str, _Model] = {}
    problems: list[str] = []
    for name in DATA_FILES:
        try:
            loaded[name] = load_data_file(name, directory / f"{name}.yaml")
        except SmogDataError as error:
            problems.extend(error.problems)
    if problems:
        raise SmogDataError(problems)
    return SmogData.model_validate(loaded)


@lru_cache(maxsize=1)
def shipped_data() -> SmogData:
    """The shipped data set, read once per process."""
    return load_smog_data(DATA_DIR)
