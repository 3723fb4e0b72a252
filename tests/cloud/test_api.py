"""The API through FastAPI's test client on both databases: the register, live view, intervals, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cloud.api.main import create_app
from cloud.ingest.store import Message, TelemetryStore, known_school_ids
from common.clock import iso_from_ms
from common.wire import Channel, LinkState, Sample, Status, encode, school_topic
from tests.cloud.conftest import NOW_MS, CloudDb, Q, make_batch, meter_sample, pv_sample

# Midnight in Warsaw on the test's day: 2026-03-01T23:00:00Z (UTC+1 in winter).
MIDNIGHT_MS = NOW_MS - 11 * 3600 * 1000


@pytest.fixture
def client(cloud_db: CloudDb) -> Iterator[TestClient]:
    with TestClient(
        create_app(cloud_db.settings, cloud_db.clock), raise_server_exceptions=False
    ) as test_client:
        yield test_client


def store(db: CloudDb, *messages: Message) -> None:
    TelemetryStore(db.engine, db.clock, known_school_ids(db.engine)).store(list(messages))


def telemetry(school_id: str, samples: list[Sample]) -> Message:
    return Message(school_topic(school_id, Channel.TELEMETRY), encode(make_batch(school_id, samples)), NOW_MS)


def test_health_says_the_database_answers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    answer = response.json()
    assert (answer["status"], answer["database"]) == ("ok", "ok")
    assert answer["ingest"]["status"] == "idle", "no ingest worker ever ran against this database"


def test_the_list_has_the_registered_schools(client: TestClient, cloud_db: CloudDb) -> None:
    response = client.get("/api/v1/schools")
    assert response.status_code == 200
    by_id = {school["id"]: school for school in response.json()}
    assert set(by_id) == set(cloud_db.school_ids)
    school = by_id[cloud_db.school_ids[0]]
    assert school["type"] == "primary_school"
    assert school["pv_kwp"] == 40.0 and school["pupils"] == 300
    assert school["location"] == {"lat": 51.6, "lon": 18.94}
    assert school["name"].startswith("Szkoła testowa")


def test_live_of_a_school_without_data(client: TestClient, cloud_db: CloudDb) -> None:
    body = client.get(f"/api/v1/schools/{cloud_db.school_ids[0]}/live").json()
    assert body["link"] == {"state": "unknown", "since": None}
    assert [(d["device_id"], d["values"], d["age_s"]) for d in body["devices"]] == [
        ("inverter", None, None),
        ("meter", None, None),
    ]
    assert body["pv_power_w"] is None and body["grid_power_w"] is None and body["consumption_w"] is None
    assert body["today_pv_wh"] == 0.0
    assert body["now"] == "2026-03-02T10:00:00Z"
    assert body["today_start"] == "2026-03-01T23:00:00Z"


def test_live_shows_the_latest_samples_the_link_power_and_pv_since_local_midnight(
    client: TestClient, cloud_db: CloudDb
) -> None:
    school = cloud_db.school_ids[0]
    store(
        cloud_db,
        telemetry(
            school,
            [
                pv_sample(1, MIDNIGHT_MS - Q, 1000.0, power_w=0.0),
                pv_sample(2, MIDNIGHT_MS + Q, 1100.0, power_w=0.0),
                pv_sample(3, NOW_MS - 30_000, 5000.0, power_w=12_000.0),
                # Later than the clock: not live yet.
                pv_sample(4, NOW_MS + 60_000, 5100.0, power_w=1.0),
                meter_sample(5, NOW_MS - 5_000, 300.0, 50.0, power_w=-4_000.0),
            ],
        ),
        Message(
            school_topic(school, Channel.STATUS),
            encode(Status(school=school, state=LinkState.ONLINE, since_ms=NOW_MS - 3600_000)),
            NOW_MS,
        ),
    )
    body = client.get(f"/api/v1/schools/{school}/live").json()
    assert body["link"] == {"state": "online", "since": "2026-03-02T09:00:00Z"}
    inverter, meter = body["devices"]
    assert inverter["kind"] == "pv_inverter"
    assert inverter["values"] == {"energy_wh": 5000.0, "power_w": 12_000.0}
    assert inverter["time"] == iso_from_ms(NOW_MS - 30_000).replace(".000", "")
    assert inverter["age_s"] == 30.0
    assert meter["age_s"] == 5.0
    assert (body["pv_power_w"], body["grid_power_w"], body["consumption_w"]) == (12_000.0, -4_000.0, 8_000.0)
    # The counter at midnight lies half-way between 1000 and 1100 Wh.
    assert body["today_pv_wh"] == pytest.approx(5000.0 - 1050.0)


def test_intervals_default_to_today_in_warsaw(client: TestClient, cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    store(
        cloud_db,
        telemetry(
            school,
            [pv_sample(k + 1, MIDNIGHT_MS - Q + k * Q, 100.0 * k) for k in range(4)]
            + [meter_sample(k + 10, MIDNIGHT_MS - Q + k * Q, 10.0 * k, 1.0 * k) for k in range(4)],
        ),
    )
    body = client.get(f"/api/v1/schools/{school}/intervals").json()
    assert body["from"] == "2026-03-01T23:00:00Z" and body["to"] == "2026-03-02T23:00:00Z"
    assert [interval["start"] for interval in body["intervals"]] == [
        "2026-03-01T23:00:00Z",
        "2026-03-01T23:15:00Z",
    ]
    first = body["intervals"][0]
    assert first == {
        "start": "2026-03-01T23:00:00Z",
        "end": "2026-03-01T23:15:00Z",
        "pv_wh": 100.0,
        "import_wh": 10.0,
        "export_wh": 1.0,
        "consumption_wh": 109.0,
        "complete": True,
    }
    wider = client.get(
        f"/api/v1/schools/{school}/intervals",
        params={"from": "2026-03-01T23:45:00+01:00", "to": "2026-03-02T00:00Z"},
    ).json()
    assert [interval["start"] for interval in wider["intervals"]] == [
        "2026-03-01T22:45:00Z",
        "2026-03-01T23:00:00Z",
        "2026-03-01T23:15:00Z",
    ]


@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ({"from": "yesterday"}, "from", "datetime"),
        ({"to": "2026-13-01T00:00:00Z"}, "to", "datetime"),
        ({"from": "2026-03-02T10:00:00Z", "to": "2026-03-02T09:00:00Z"}, "to", "after 'from'"),
        ({"from": "2026-03-03T00:00:00Z"}, "from", "before 'to'"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:01Z"}, "to", "31 days"),
    ],
)
def test_bad_interval_parameters_are_422_naming_the_parameter(
    client: TestClient, cloud_db: CloudDb, params: dict[str, str], parameter: str, words: str
) -> None:
    response = client.get(f"/api/v1/schools/{cloud_db.school_ids[0]}/intervals", params=params)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", parameter]
    assert words in error["msg"]


@pytest.mark.parametrize("path", ["live", "intervals"])
def test_an_unknown_school_is_404_with_a_message(client: TestClient, path: str) -> None:
    response = client.get(f"/api/v1/schools/nosuchschool/{path}")
    assert response.status_code == 404
    assert response.json() == {"detail": "no school with id 'nosuchschool'"}


def test_an_internal_error_is_a_bare_500(
    client: TestClient, cloud_db: CloudDb, caplog: pytest.LogCaptureFixture
) -> None:
    with cloud_db.engine.begin() as connection:
        connection.execute(text("DROP TABLE intervals"))
    response = client.get(f"/api/v1/schools/{cloud_db.school_ids[0]}/intervals")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert "intervals failed" in caplog.text
