"""``POST /api/v1/smog/estimate`` and ``GET /api/v1/smog/addresses`` on both databases: the answers are the
core's, and every bad input gets 422 naming the field in Polish."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.smog import EstimateRequest, estimate, shipped_data
from cloud.smog.tables import SmogAddress
from common.clock import parse_iso_ms
from tests.smog_api.conftest import SmogApi


def address_id(api: SmogApi, query: str = "Łaska 41") -> int:
    response = api.client.get("/api/v1/smog/addresses", params={"q": query})
    assert response.status_code == 200
    return int(response.json()[0]["id"])


def test_address_search_forgives_diacritics_and_prefixes(api: SmogApi) -> None:
    expected = api.client.get("/api/v1/smog/addresses", params={"q": "Łaska 41"}).json()[0]
    assert expected["street"] == "Łaska" and expected["number"] == "41"
    assert expected["label"] == "Łaska 41, 98-220 Zduńska Wola"
    for query in ("ul. laska 41", "UL. ŁASKA 41", "41 łaska", "al. Łaska 41", "ulica Łaska 41"):
        found = api.client.get("/api/v1/smog/addresses", params={"q": query}).json()
        assert found[0] == expected, query
    several = api.client.get("/api/v1/smog/addresses", params={"q": "lask", "limit": 3}).json()
    assert len(several) == 3 and all(item["street"] == "Łaska" for item in several)
    assert api.client.get("/api/v1/smog/addresses", params={"q": "Nieistniejąca 999"}).json() == []


@pytest.mark.parametrize(
    "extra",
    [
        {"heated_area_m2": 120, "building_standard": "before_1967"},
        {
            "heated_area_m2": 180,
            "building_standard": "1986_1992",
            "current_heating": "coal_boiler_old",
            "income_pln_per_person_month": 1200,
            "household_size": 4,
            "loan": {"share_of_net_investment": 1, "annual_rate_percent": 8.5, "years": 10},
        },
    ],
)
def test_estimate_is_the_cores_answer(api: SmogApi, extra: dict[str, Any]) -> None:
    payload = {"address_id": address_id(api), **extra}
    response = api.client.post("/api/v1/smog/estimate", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    with Session(api.engine) as session:
        golden = estimate(session, EstimateRequest.model_validate(payload)).model_dump(mode="json")
    assert body == golden
    assert body["data_version"] == shipped_data().manifest.version
    costs = [option["cost_15_years_pln"] for option in body["options"] if option["available"]]
    assert costs == sorted(costs) and len(costs) >= 4
    first = body["options"][0]
    assert first["data_keys"] and first["formulas"] and first["explanation_pl"]
    assert body["address"]["street"] == "Łaska"


def test_estimate_by_coordinates(api: SmogApi) -> None:
    payload = {"lat": 51.6, "lon": 18.94, "heated_area_m2": 100, "building_standard": "from_1997"}
    response = api.client.post("/api/v1/smog/estimate", json=payload)
    assert response.status_code == 200
    assert response.json()["options"]


BASE = {"heated_area_m2": 120, "building_standard": "before_1967"}


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"address_id": 987654}, ["body", "address_id"], "nie znaleziono adresu"),
        ({"heated_area_m2": 0}, ["body", "heated_area_m2"], "powierzchnia ogrzewana"),
        ({"heated_area_m2": 100_000}, ["body", "heated_area_m2"], "od 10 do 1\u00a0000\u00a0m²"),
        ({"income_pln_per_person_month": -1}, ["body", "income_pln_per_person_month"], "nie może być ujemne"),
        (
            {"applicant_income_pln_per_year": -5},
            ["body", "applicant_income_pln_per_year"],
            "nie może być ujemne",
        ),
        (
            {"loan": {"amount_pln": 10_000, "annual_rate_percent": 7, "years": 300}},
            ["body", "loan", "years"],
            "okres kredytu",
        ),
        ({"heated_area_m2": "sto"}, ["body", "heated_area_m2"], "musi być liczbą"),
        ({"current_heating": "atom"}, ["body", "current_heating"], "niedozwolona wartość"),
        ({"color": "red"}, ["body", "color"], "nieznane pole"),
        ({"building_standard": "castle"}, ["body", "building_standard"], "building_standard"),
    ],
)
def test_bad_estimate_input_is_422_in_polish_naming_the_field(
    api: SmogApi, change: dict[str, Any], loc: list[str], words: str
) -> None:
    payload = {"address_id": address_id(api), **BASE, **change}
    response = api.client.post("/api/v1/smog/estimate", json=payload)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == loc
    assert words in detail[0]["msg"]
    assert f"„{loc[-1]}" in detail[0]["msg"] or f"„{'.'.join(loc[1:])}" in detail[0]["msg"]


def test_missing_fields_and_broken_json_are_refused_in_polish(api: SmogApi) -> None:
    response = api.client.post("/api/v1/smog/estimate", json={"address_id": address_id(api)})
    assert response.status_code == 422
    messages = {tuple(item["loc"]): item["msg"] for item in response.json()["detail"]}
    assert (
        messages[("body", "heated_area_m2")]
        == "Pole „heated_area_m2” (powierzchnia ogrzewana): jest wymagane."
    )
    broken = api.client.post(
        "/api/v1/smog/estimate", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422 and "nieprawidłowy JSON" in broken.json()["detail"][0]["msg"]
    no_query = api.client.get("/api/v1/smog/addresses")
    assert no_query.status_code == 422
    assert no_query.json()["detail"][0] == {
        "loc": ["query", "q"],
        "msg": "Pole „q” (szukany adres): jest wymagane.",
        "type": "missing",
    }


def test_the_api_judges_the_figures_current_on_its_clock_s_day(api: SmogApi) -> None:
    with Session(api.engine) as session:
        # The house nearest the gas network: its estimate uses the gas price.
        near_gas = session.scalar(select(SmogAddress.id).order_by(SmogAddress.distance_gas_m).limit(1))
    payload = {"address_id": near_gas, "heated_area_m2": 100, "building_standard": "before_1967"}
    assert api.client.post("/api/v1/smog/estimate", json=payload).json()["expired_keys"] == []
    asyncio.run(api.clock.advance_to(parse_iso_ms("2026-07-01T00:30:00+02:00")))
    body = api.client.post("/api/v1/smog/estimate", json=payload).json()
    assert body["expired_keys"] == ["prices.natural_gas.fuel_pln_per_kwh"]
    assert "gaz ziemny z sieci (ważne do 30.06.2026" in body["prices_assumption_pl"]
