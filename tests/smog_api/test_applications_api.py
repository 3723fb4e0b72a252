"""``/api/v1/smog/applications`` on both databases: filing (idempotent, refusals store nothing), the status
link and PDF, the officer's endpoints, encryption at rest, logs without personal data, the retention purge."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cloud.applications.service import purge_expired
from cloud.applications.tables import SmogApplication, SmogApplicationEvent
from cloud.db.models import AuditEntry
from tests.smog_api.conftest import NOW_MS as NOW
from tests.smog_api.conftest import OFFICER, PDF, PNG, SmogApi, proof_file
from tests.smog_api.test_estimate_api import address_id

PESEL = "44051401359"  # born 1944-05-14, check digit 9
ROOT = "/api/v1/smog/applications"


def form(api: SmogApi, **change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "first_name": "Zofia",
        "last_name": "Wróblewska",
        "pesel": PESEL,
        "phone": "601 234 567",
        "email": "zofia.wroblewska@example.pl",
        "address_id": address_id(api),
        "flat_number": "",
        "plot_number": "123/4",
        "cadastral_district": "Obręb 5",
        "usable_area_m2": "110",
        "current_heating": "coal_stove",
        "current_heating_age_years": "30",
        "heat_source": "heat_pump_g12",
        "planned_completion": "2026-09-30",
        "estimated_cost_pln": "42000",
        "bank_account": "61 1090 1014 0000 0712 1981 2874",
        "consent": "true",
    }
    fields.update(change)
    return {key: value for key, value in fields.items() if value is not None}


def file(
    api: SmogApi, data: dict[str, Any], files: dict[str, object] | None = None, key: str | None = None
) -> Any:
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    return api.client.post(
        ROOT, data=data, files=files if files is not None else proof_file(), headers=headers
    )


def stored(api: SmogApi) -> int:
    with Session(api.engine) as session:
        return int(session.scalar(select(func.count()).select_from(SmogApplication)) or 0)


def test_filing_answers_a_case_number_a_status_link_and_a_pdf(api: SmogApi) -> None:
    response = file(api, form(api))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["case_number"] == "SS/2026/000001" and body["status"] == "submitted"
    assert body["replayed"] is False
    token = body["status_url"].rsplit("/", 1)[1]
    assert len(token) >= 22 and body["status_url"] == f"{ROOT}/status/{token}"
    status = api.client.get(body["status_url"]).json()
    assert status["case_number"] == "SS/2026/000001"
    assert status["status_label_pl"] == "złożony" and status["submitted"] == "2026-03-02T10:00:00Z"
    assert [event["status"] for event in status["history"]] == ["submitted"]
    assert PESEL not in str(status) and "Wróblewska" not in str(status)
    pdf = api.client.get(body["pdf_url"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert b"SS/2026/000001" in pdf.content  # the document's title
    assert len(pdf.content) > 5_000  # the embedded font subset with the Polish letters
    assert file(api, form(api, first_name="Jan")).json()["case_number"] == "SS/2026/000002"
    assert api.client.get(f"{ROOT}/status/{'x' * 43}").status_code == 404


def test_the_pdf_reads_as_the_filled_in_form(api: SmogApi) -> None:
    """The text extracted from the PDF (as a screen reader or a copy-paste would get it) holds every field,
    Polish letters included, each label apart from its value (a long label once ran over its value)."""
    from pypdf import PdfReader

    details = {
        "current_heating_power_kw": "12",
        "current_fuel_use_t_per_year": "4.5",
        "planned_power_kw": "9",
        "planned_consumption_per_year": "8000",
        "planned_consumption_unit": "kWh",
        "business_share_percent": "10",
        "investor_type": "natural_person_business",
        "de_minimis_aid_pln": "0",
    }
    body = file(api, form(api, **details)).json()
    reader = PdfReader(io.BytesIO(api.client.get(body["pdf_url"]).content))
    pages = (page.extract_text() or "" for page in reader.pages)
    text = " ".join(" ".join(page.replace("\u00a0", " ").split()) for page in pages)
    assert reader.metadata is not None and reader.metadata.title == "Wniosek Stop Smog SS/2026/000001"
    for expected in (
        "Wniosek o dofinansowanie wymiany źródła ciepła – program „Stop Smog”, Zduńska Wola",
        "Numer sprawy: SS/2026/000001",
        "Zofia",
        "Wróblewska",
        PESEL,
        "Telefon 601234567",
        "zofia.wroblewska@example.pl",
        "Numer rachunku bankowego 61109010140000071219812874",
        "Obręb 5",
        "123/4",
        "Pompa ciepła powietrze-woda, taryfa G12",
        "Szacowany koszt [zł] 42 000",
        "Moc [kW] 12",
        "Roczne zużycie paliwa [t] 4,5",
        "Moc [kW] 9",
        "Planowane roczne zużycie 8 000 kWh",
        "Część na działalność gospodarczą [%] 10",
        "Rodzaj inwestora osoba fizyczna prowadząca działalność gospodarczą",
        "Pomoc de minimis z ostatnich 3 lat [zł] 0",
        "Zgoda na przetwarzanie danych osobowych tak",
        "złożony",
    ):
        assert expected in text, f"{expected!r} is not in the PDF's text: {text}"


def test_a_double_click_files_one_application(api: SmogApi) -> None:
    key = str(uuid.uuid4())
    first = file(api, form(api), key=key)
    again = file(api, form(api), key=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "replayed": True}
    different = file(api, form(api, heat_source="pellet_boiler"), key=key)
    assert different.status_code == 409 and "Idempotency-Key" in different.json()["detail"]
    other_file = file(api, form(api), files=proof_file(PDF, "piec.pdf", "application/pdf"), key=key)
    assert other_file.status_code == 409
    assert stored(api) == 1
    missing = api.client.post(ROOT, data=form(api), files=proof_file())
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


@pytest.mark.parametrize(
    ("change", "files", "loc", "words"),
    [
        ({"pesel": "44051401358"}, None, ["body", "pesel"], "cyfra kontrolna"),
        ({"pesel": "44053201350"}, None, ["body", "pesel"], "daty urodzenia"),
        ({"pesel": "4405140135"}, None, ["body", "pesel"], "11 cyfr"),
        ({"address_id": "987654"}, None, ["body", "address_id"], "nie znaleziono adresu"),
        ({"usable_area_m2": "0"}, None, ["body", "usable_area_m2"], "od 10 do 1\u00a0000\u00a0m²"),
        ({"usable_area_m2": "100000"}, None, ["body", "usable_area_m2"], "od 10 do 1\u00a0000\u00a0m²"),
        (
            {"current_heating_power_kw": "500"},
            None,
            ["body", "current_heating_power_kw"],
            "od 1 do 200\u00a0kW",
        ),
        ({"current_fuel_use_t_per_year": "-2"}, None, ["body", "current_fuel_use_t_per_year"], "od 0 do 100"),
        ({"planned_consumption_per_year": "8000"}, None, ["body", "planned_consumption_unit"], "z jednostką"),
        ({"planned_consumption_unit": "kWh"}, None, ["body", "planned_consumption_per_year"], "z jednostką"),
        (
            {"planned_consumption_per_year": "8", "planned_consumption_unit": "MWh"},
            None,
            ["body", "planned_consumption_unit"],
            "niedozwolona wartość",
        ),
        ({"investor_type": "natural_person_business"}, None, ["body", "de_minimis_aid_pln"], "de minimis"),
        ({"business_share_percent": "20"}, None, ["body", "de_minimis_aid_pln"], "de minimis"),
        ({"investor_type": "company"}, None, ["body", "investor_type"], "niedozwolona wartość"),
        ({"phone": None, "email": None}, None, ["body", "phone"], "telefonu albo adres e-mail"),
        ({"email": "zofia"}, None, ["body", "email"], "adres e-mail"),
        ({"consent": None}, None, ["body", "consent"], "bez zgody"),
        ({"heat_source": "coal"}, None, ["body", "heat_source"], "niedozwolona wartość"),
        ({"last_name": None}, None, ["body", "last_name"], "jest wymagane"),
        (
            {"bank_account": "61 1090 1014 0000 0712 1981 2875"},
            None,
            ["body", "bank_account"],
            "suma kontrolna",
        ),
        ({}, proof_file(b"just some text, not a photo", "piec.png", "image/png"), ["body", "proof"], "JPEG"),
        ({}, proof_file(b"GIF89a" + b"\x00" * 100, "piec.gif", "image/gif"), ["body", "proof"], "PDF"),
        ({}, proof_file(PNG + b"\x00" * 64 * 1024), ["body", "proof"], "za duży"),
        ({}, proof_file(b"", "piec.png"), ["body", "proof"], "pusty"),
        ({}, {}, ["body", "proof"], "jest wymagane"),
    ],
)
def test_refused_applications_are_422_in_polish_and_store_nothing(
    api: SmogApi, change: dict[str, Any], files: dict[str, object] | None, loc: list[str], words: str
) -> None:
    data = form(api)
    for key, value in change.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    response = file(api, data, files)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc
    assert words in detail["msg"] and f"„{loc[-1]}”" in detail["msg"]
    assert stored(api) == 0


def test_a_pdf_proof_is_accepted_whatever_type_the_browser_declared(api: SmogApi) -> None:
    response = file(api, form(api), proof_file(PDF, "skan", "application/octet-stream"))
    assert response.status_code == 201
    api.as_officer()
    ref = response.json()["case_number"].replace("/", "-")
    proof = api.client.get(f"{ROOT}/{ref}/proof")
    assert proof.content == PDF and proof.headers["content-type"] == "application/pdf"


def test_officer_endpoints_are_refused_anonymously(api: SmogApi) -> None:
    ref = file(api, form(api)).json()["case_number"].replace("/", "-")
    for method, path in [
        ("GET", ROOT),
        ("GET", f"{ROOT}/{ref}"),
        ("GET", f"{ROOT}/{ref}/proof"),
        ("PATCH", f"{ROOT}/{ref}"),
    ]:
        response = api.client.request(method, path, json={"status": "in_review"})
        assert response.status_code == 401, (method, path)
        assert PESEL not in response.text
    with Session(api.engine) as session:
        assert session.scalar(select(SmogApplication.status)) == "submitted"


def test_officer_lists_reads_and_moves_an_application(api: SmogApi) -> None:
    filed = file(api, form(api)).json()
    file(api, form(api, heat_source="district_heat", first_name="Adam"))
    api.as_officer()
    listed = api.client.get(ROOT).json()
    assert listed["total"] == 2 and [item["case_number"] for item in listed["items"]] == [
        "SS/2026/000002",
        "SS/2026/000001",
    ]
    assert "first_name" not in str(listed) and PESEL not in str(listed)
    only = api.client.get(ROOT, params={"heat_source": "heat_pump_g12", "status": "submitted"}).json()
    assert [item["case_number"] for item in only["items"]] == ["SS/2026/000001"]
    page = api.client.get(ROOT, params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and [item["case_number"] for item in page["items"]] == ["SS/2026/000001"]
    later = api.client.get(ROOT, params={"submitted_from": "2026-03-03T00:00:00Z"}).json()
    assert later["total"] == 0

    ref = "SS-2026-000001"
    detail = api.client.get(f"{ROOT}/{ref}").json()
    assert detail["applicant"]["pesel"] == PESEL and detail["applicant"]["last_name"] == "Wróblewska"
    assert detail["applicant"]["phone"] == "601234567"
    assert detail["applicant"]["address_label"] == "Łaska 41, 98-220 Zduńska Wola"
    assert detail["applicant"]["investor_type"] == "natural_person"
    assert detail["applicant"]["de_minimis_aid_pln"] is None
    assert api.client.get(f"{ROOT}/{ref}/proof").content == PNG
    assert api.client.get(f"{ROOT}/SS-2026-999999").status_code == 404

    too_early = api.client.patch(f"{ROOT}/{ref}", json={"status": "accepted"})
    assert too_early.status_code == 409 and "in_review" in too_early.json()["detail"]
    api.clock._now_ms += 3_600_000
    assert api.client.patch(f"{ROOT}/{ref}", json={"status": "in_review"}).status_code == 200
    moved = api.client.patch(
        f"{ROOT}/{ref}", json={"status": "needs_info", "note": "Proszę dosłać zdjęcie pieca."}
    )
    assert moved.status_code == 200
    assert [(event["status"], event["actor"]) for event in moved.json()["history"]] == [
        ("submitted", "applicant"),
        ("in_review", OFFICER),
        ("needs_info", OFFICER),
    ]
    bad = api.client.patch(f"{ROOT}/{ref}", json={"status": "done"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "status"]

    with Session(api.engine) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(entry.action, entry.actor_name, entry.target) for entry in entries] == [
        ("smog.application.view", OFFICER, "application:SS/2026/000001"),
        ("smog.application.proof", OFFICER, "application:SS/2026/000001"),
        ("smog.application.status", OFFICER, "application:SS/2026/000001"),
        ("smog.application.status", OFFICER, "application:SS/2026/000001"),
    ]  # the refused change left no entry
    assert entries[-1].details == {"from": "in_review", "to": "needs_info", "note": True}
    assert entries[-1].area == "smog" and entries[-1].at_ms == api.clock.now_ms()

    status = api.client.get(filed["status_url"]).json()
    assert status["status"] == "needs_info" and status["status_label_pl"] == "wymaga uzupełnienia"
    assert status["history"][-1]["note"] == "Proszę dosłać zdjęcie pieca."
    assert status["updated"] == "2026-03-02T11:00:00Z"


def test_personal_data_is_encrypted_at_rest(api: SmogApi) -> None:
    file(api, form(api))
    api.as_officer()
    api.client.patch(f"{ROOT}/SS-2026-000001", json={"status": "in_review", "note": "Wróblewska dzwoniła"})
    with api.engine.connect() as connection:
        rows = [
            *connection.execute(text("SELECT * FROM smog_applications")).all(),
            *connection.execute(text("SELECT * FROM smog_application_events")).all(),
        ]
    dump = repr(rows).encode()
    blobs = b"".join(bytes(value) for row in rows for value in row if isinstance(value, bytes | memoryview))
    for secret in (PESEL, "Wróblewska", "Wroblewska", "601234567", "zofia.wroblewska", "Łaska", "123/4"):
        assert secret.encode() not in dump and secret.encode() not in blobs, secret
    assert PNG not in blobs


def test_an_application_filed_under_earlier_rules_stays_readable(api: SmogApi) -> None:
    """A record is read as it was filed: a form stored before the de minimis rule (business share, no aid
    given, no investor type) still opens for the officer and as a PDF."""
    body = file(api, form(api)).json()
    cipher = api.config.cipher()
    legacy = {
        key: value
        for key, value in form(api).items()
        if key not in ("investor_type", "de_minimis_aid_pln", "consent")
    }
    legacy.update(usable_area_m2=110.0, business_share_percent=20.0, phone="601234567", consent=True)
    with Session(api.engine) as session, session.begin():
        application = session.scalars(select(SmogApplication)).one()
        application.personal_data_encrypted = cipher.encrypt(
            json.dumps({"form": legacy, "address_label": "Łaska 41, 98-220 Zduńska Wola"}).encode()
        )
    api.as_officer()
    detail = api.client.get(f"{ROOT}/SS-2026-000001")
    assert detail.status_code == 200, detail.text
    assert detail.json()["applicant"]["business_share_percent"] == 20.0
    assert detail.json()["applicant"]["de_minimis_aid_pln"] is None
    assert api.client.get(body["pdf_url"]).status_code == 200


def test_logs_of_a_full_flow_hold_no_personal_data(api: SmogApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    filed = file(api, form(api)).json()
    file(api, form(api, pesel="44051401358"))
    api.client.get(filed["status_url"])
    api.client.get(filed["pdf_url"])
    api.as_officer()
    api.client.get(ROOT)
    api.client.get(f"{ROOT}/SS-2026-000001")
    api.client.patch(f"{ROOT}/SS-2026-000001", json={"status": "in_review"})
    with Session(api.engine) as session:
        purge_expired(session, api.clock.now_ms() + 10 * 86_400_000, 1)
    assert "SS/2026/000001" in caplog.text  # the logs do say what happened, by case number
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    for secret in (
        PESEL,
        "Zofia",
        "Wróblewska",
        "601234567",
        "601 234 567",
        "zofia.wroblewska",
        "Łaska",
        "10901014",
    ):
        assert secret not in logged, secret


def test_retention_purge_deletes_expired_applications_with_their_files(api: SmogApi) -> None:
    old = file(api, form(api)).json()
    api.clock._now_ms += 20 * 86_400_000
    young = file(api, form(api, first_name="Adam")).json()
    with Session(api.engine) as session:
        deleted = purge_expired(session, api.clock.now_ms() + 15 * 86_400_000, 30)
    assert deleted == [old["case_number"]]
    assert api.client.get(old["status_url"]).status_code == 404
    assert api.client.get(old["pdf_url"]).status_code == 404
    assert api.client.get(young["status_url"]).status_code == 200
    with Session(api.engine) as session:
        remaining = session.scalars(select(SmogApplication.case_number)).all()
        events = session.scalars(select(SmogApplicationEvent.application_id)).all()
    assert remaining == [young["case_number"]] and len(events) == 1


def test_purge_command_reads_the_database_and_the_retention(
    api: SmogApi, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloud.applications.cli import smog_purge_command

    file(api, form(api))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOKALNIE_ENV", "development")
    monkeypatch.setenv("LOKALNIE_APPLICATIONS_RETENTION_DAYS", "36500")
    smog_purge_command()
    assert stored(api) == 1
    smog_purge_command(retention_days=1)  # the application is from 2 March 2026, the command's now is later
    assert stored(api) == 0


def test_case_numbers_follow_the_pattern(api: SmogApi) -> None:
    numbers = [file(api, form(api, first_name=name)).json()["case_number"] for name in ("Ala", "Ola", "Ela")]
    assert all(re.fullmatch(r"SS/2026/\d{6}", number) for number in numbers)
    assert numbers == ["SS/2026/000001", "SS/2026/000002", "SS/2026/000003"]


def test_concurrent_filings_get_distinct_numbers_and_one_key_one_case(api: SmogApi) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cloud.applications.form import ApplicationForm
    from cloud.applications.service import submit_application

    cipher = api.config.cipher()
    base = form(api)
    base["consent"] = True

    def submit(name: str, key: str) -> str:
        application = ApplicationForm.model_validate({**base, "first_name": name})
        with Session(api.engine) as session:
            return submit_application(session, cipher, application, PNG, "image/png", key, NOW).case_number

    names = ["Ala", "Ola", "Ela", "Iza", "Ula", "Eda"]
    with ThreadPoolExecutor(len(names)) as pool:
        distinct = list(pool.map(submit, names, [f"key-{name}-0001" for name in names]))
        same = list(pool.map(submit, ["Ewa"] * 6, ["key-shared-0001"] * 6))
    assert sorted(distinct) == [f"SS/2026/{n:06d}" for n in range(1, 7)]
    assert len(set(same)) == 1 and stored(api) == 7


def test_filing_is_rate_limited_per_client(api: SmogApi) -> None:
    from tests.smog_api.conftest import build_app

    app = build_app(api.engine, api.clock, api.config, rate_limits={"applications": "2/hour"})
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        limited = SmogApi(client, app, api.engine, api.clock, api.config)
        assert [file(limited, form(api)).status_code for _ in range(3)] == [201, 201, 429]
    assert stored(api) == 2
