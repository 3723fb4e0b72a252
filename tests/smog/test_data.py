"""The shipped data set loads, every value is sourced and dated, and bad files are refused with the file,
the field and the reason."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cloud.smog.data import DATA_DIR, DATA_FILES, BandTable, SourcedValue, load_smog_data
from cloud.smog.errors import SmogDataError


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    for name in DATA_FILES:
        shutil.copy(DATA_DIR / f"{name}.yaml", tmp_path / f"{name}.yaml")
    return tmp_path


def _edit(directory: Path, name: str, path: list[str], value: object) -> None:
    file = directory / f"{name}.yaml"
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    node = document
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    file.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")


_DELETE = object()


def test_shipped_data_loads_with_a_version() -> None:
    data = load_smog_data()
    assert data.version == "2026.3"
    assert data.manifest.changelog[0].version == data.version


def test_every_value_has_a_source_and_a_date_from_2025_or_the_city_rule() -> None:
    data = load_smog_data()
    items = list(data.sourced_items())
    assert len(items) > 80
    for key, item in items:
        assert item.source.strip(), key
        # Prices and rules of 2025/2026; the city's grant rule is sourced to the 2020 calculator.
        assert item.as_of.year >= 2024 or key.startswith("subsidies.city_stop_smog"), key


def test_unconfirmed_values_say_why() -> None:
    data = load_smog_data()
    unconfirmed = data.unconfirmed_keys()
    assert "prices.district_heat.heat_pln_per_gj" in unconfirmed
    assert "subsidies.czyste_powietrze.tiers.highest.income_max_pln_per_person_month_multi" in unconfirmed
    assert "prices.natural_gas.fuel_pln_per_kwh" not in unconfirmed
    for key in unconfirmed:
        item = data.sourced(key)
        says_why = item.note or any(
            word in item.source for word in ("ESTIMATE", "UNCONFIRMED", "Not known", "assumed", "estimate")
        )
        assert says_why, key


def test_lookup_by_key() -> None:
    data = load_smog_data()
    price = data.sourced("prices.natural_gas.fuel_pln_per_kwh")
    assert isinstance(price, SourcedValue)
    assert price.value == pytest.approx(0.20426 * 1.23, abs=1e-5)
    assert isinstance(data.sourced("investments.heat_sources.heat_pump_air_water"), BandTable)
    with pytest.raises(KeyError):
        data.sourced("prices.natural_gas.nothing")


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"),
    [
        (
            "prices",
            ["wood_pellet", "price_pln_per_tonne", "value"],
            -5,
            "prices.yaml: wood_pellet.price_pln_per_tonne.value",
        ),
        (
            "efficiencies",
            ["gas_condensing_boiler", "value"],
            1.07,
            "efficiencies.yaml: gas_condensing_boiler.value",
        ),
        (
            "efficiencies",
            ["heat_pump_air_water_scop", "value"],
            0.5,
            "efficiencies.yaml: heat_pump_air_water_scop.value",
        ),
        (
            "prices",
            ["lpg", "price_pln_per_litre", "source"],
            _DELETE,
            "prices.yaml: lpg.price_pln_per_litre.source",
        ),
        (
            "emissions",
            ["co2", "natural_gas_kg_per_gj", "as_of"],
            _DELETE,
            "emissions.yaml: co2.natural_gas_kg_per_gj.as_of",
        ),
        ("subsidies", ["city_stop_smog", "rate", "value"], 1.5, "subsidies.yaml: city_stop_smog.rate.value"),
        (
            "network",
            ["natural_gas", "max_distance_m", "value"],
            -1,
            "network.yaml: natural_gas.max_distance_m.value",
        ),
        ("demand", ["full_load_hours_h", "value"], 9000, "demand.yaml: full_load_hours_h"),
        ("manifest", ["version"], "2026.4", "manifest.yaml"),
    ],
)
def test_bad_values_are_refused_with_file_and_field(
    data_copy: Path, name: str, path: list[str], value: object, expected: str
) -> None:
    _edit(data_copy, name, path, value)
    with pytest.raises(SmogDataError) as refused:
        load_smog_data(data_copy)
    assert any(problem.startswith(expected) for problem in refused.value.problems), refused.value.problems


def test_reason_is_given(data_copy: Path) -> None:
    _edit(data_copy, "efficiencies", ["pellet_boiler", "value"], 1.2)
    with pytest.raises(SmogDataError) as refused:
        load_smog_data(data_copy)
    assert "less than or equal to 1" in str(refused.value)


def test_empty_source_is_refused(data_copy: Path) -> None:
    _edit(data_copy, "prices", ["hard_coal", "price_pln_per_tonne", "source"], "")
    with pytest.raises(SmogDataError, match=r"prices.yaml: hard_coal.price_pln_per_tonne.source"):
        load_smog_data(data_copy)


def test_bands_must_ascend_and_end_open(data_copy: Path) -> None:
    _edit(
        data_copy,
        "investments",
        ["heat_sources", "pellet_boiler", "bands"],
        [{"max_heat_power_kw": 25, "cost_pln": 1}, {"max_heat_power_kw": 15, "cost_pln": 2}],
    )
    with pytest.raises(SmogDataError, match=r"investments.yaml: heat_sources.pellet_boiler"):
        load_smog_data(data_copy)


def test_missing_file_and_several_problems_reported_together(data_copy: Path) -> None:
    (data_copy / "network.yaml").unlink()
    _edit(data_copy, "prices", ["lpg", "price_pln_per_litre", "value"], -1)
    with pytest.raises(SmogDataError) as refused:
        load_smog_data(data_copy)
    text = str(refused.value)
    assert "network.yaml: file is missing" in text
    assert "prices.yaml: lpg.price_pln_per_litre.value" in text


def test_a_key_given_twice_is_refused(data_copy: Path) -> None:
    file = data_copy / "network.yaml"
    file.write_text(
        file.read_text(encoding="utf-8") + "natural_gas:\n  max_distance_m: 5\n", encoding="utf-8"
    )
    with pytest.raises(SmogDataError, match=r"network.yaml: not valid YAML .*appears twice"):
        load_smog_data(data_copy)


def test_a_validity_ending_before_its_date_is_refused(data_copy: Path) -> None:
    _edit(data_copy, "prices", ["natural_gas", "fuel_pln_per_kwh", "valid_until"], "2025-06-30")
    with pytest.raises(SmogDataError, match=r"prices.yaml: natural_gas.fuel_pln_per_kwh.*before as_of"):
        load_smog_data(data_copy)


def test_figures_past_their_validity_are_named_with_what_a_person_calls_them() -> None:
    data = load_smog_data()
    gas_fuel = "prices.natural_gas.fuel_pln_per_kwh"
    assert data.sourced(gas_fuel).valid_until == dt.date(2026, 6, 30)
    assert gas_fuel not in data.expired_keys(dt.date(2026, 6, 30))
    assert gas_fuel in data.expired_keys(dt.date(2026, 7, 1))
    assert data.label_pl(gas_fuel) == "gaz ziemny z sieci"
    assert data.label_pl("efficiencies.pellet_boiler") == data.efficiencies.pellet_boiler.label_pl
    assert data.label_pl("network.natural_gas.max_distance_m") == "network.natural_gas.max_distance_m"


def check_data(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lokalnie", "smog", "check-data", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_city_checks_its_files_with_one_command(data_copy: Path) -> None:
    checked = check_data(data_copy)
    assert checked.returncode == 0, checked.stderr
    data = load_smog_data(data_copy)
    assert f"version {data.version}" in checked.stdout
    assert f"To confirm (unconfirmed: true): {len(data.unconfirmed_keys())}." in checked.stdout
    assert "Past its validity: prices.natural_gas.fuel_pln_per_kwh (valid until 2026-06-30)" in checked.stdout
    _edit(data_copy, "efficiencies", ["pellet_boiler", "value"], 1.2)
    _edit(data_copy, "prices", ["lpg", "price_pln_per_litre", "source"], "")
    refused = check_data(data_copy)
    assert refused.returncode == 1
    assert "efficiencies.yaml: pellet_boiler.value" in refused.stderr
    assert "prices.yaml: lpg.price_pln_per_litre.source" in refused.stderr
    assert "Traceback" not in refused.stderr
