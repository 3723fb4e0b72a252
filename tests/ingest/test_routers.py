"""The ingest's routers mounted on a small app over both databases: ``/metrics`` in Prometheus' text format,
a school's corrections and events, and the ingest's part of ``/healthz``. Access
rules are the app's business (tests/api); here each route must declare exactly one, and it is waived."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from cloud.api import security
from cloud.api.routes import corrections, events, health, metrics
from cloud.db.engine import make_session_factory
from cloud.ingest import stats
from cloud.ingest.store import Message
from common.wire import (
    Channel,
    DeviceKind,
    HealthEvent,
    LinkState,
    Sample,
    Severity,
    Status,
    encode,
    school_topic,
)
from tests.ingest.conftest import NOW_MS, IngestDb, telemetry

Q = 15 * 60 * 1000
_SAMPLE_LINE = re.compile(r'^([a-z_:][a-z0-9_:]*)(\{([a-z_]+="[^"]*",?)*\})? (-?[0-9.e+]+|\+Inf|NaN)$')


@pytest.fixture
def client(ingest_db: IngestDb) -> Iterator[TestClient]:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.sessions = make_session_factory(ingest_db.engine)
    app.state.clock = ingest_db.clock
    for module in (metrics, corrections, events, health):
        app.include_router(module.router)
    for permission in security.route_permissions(app):
        app.dependency_overrides[permission.rule] = lambda: None
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def parse_prometheus(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text exposition by its name with labels; fails on a malformed line,
    a sample without a TYPE before it, or a family declared twice."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in typed, f"{name} declared twice"
            typed.add(name)
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = _SAMPLE_LINE.match(line)
        assert match, f"not a sample line: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", match.group(1))
        assert match.group(1) in typed or family in typed, f"{line!r} has no TYPE"
        samples[line.rsplit(" ", 1)[0]] = float(match.group(4))
    return samples


def inverter(seq: int, ts_ms: int, energy_wh: float) -> Sample:
    return Sample(
        seq=seq,
        device="inverter",
        kind=DeviceKind.PV_INVERTER,
        ts_ms=ts_ms,
        values={"energy_wh": energy_wh, "power_w": 100.0},
    )


def test_every_route_declares_one_access_rule(client: TestClient) -> None:
    rules = {(p.method, p.path): p.rule.who() for p in security.route_permissions(client.app)}  # type: ignore[arg-type]
    assert rules == {
        ("GET", "/metrics"): "energy_officer, monitoring",
        ("GET", "/api/v1/schools/{school_id}/corrections"): "school_admin (own school), energy_officer",
        ("GET", "/api/v1/schools/{school_id}/events"): "school_admin (own school), energy_officer",
        ("GET", "/healthz"): "public",
    }


def test_metrics_show_every_workers_counters_the_lag_and_the_spool(
    client: TestClient, ingest_db: IngestDb
) -> None:
    school = ingest_db.school_ids[0]
    with ingest_db.engine.begin() as connection:
        for worker in ("w1", "w2"):
            stats.register_worker(connection, worker, "g", 0)
    ingest_db.clock.set(NOW_MS + 4000)
    first = ingest_db.store(worker_id="w1", timeseries=True)
    first.store([telemetry(school, [inverter(1, NOW_MS - 2000, 10.0), inverter(2, NOW_MS, 20.0)])])
    second = ingest_db.store(worker_id="w2")
    second.store([telemetry(school, [inverter(2, NOW_MS, 20.0)]), Message("bad/topic", b"", NOW_MS)])

    with ingest_db.engine.begin() as connection:
        stats.record_broker_certificate(connection, "w1", NOW_MS + 86_400_000)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse_prometheus(response.text)
    assert samples['lokalnie_ingest_samples_total{worker="w1"}'] == 2
    assert samples['lokalnie_ingest_readings_total{worker="w1"}'] == 4
    assert samples['lokalnie_ingest_duplicate_samples_total{worker="w2"}'] == 1
    assert samples['lokalnie_ingest_dead_letters_total{worker="w2"}'] == 1
    assert samples['lokalnie_ingest_messages_total{worker="w2"}'] == 2
    assert samples['lokalnie_ingest_newest_reading_timestamp_seconds{worker="w1"}'] == NOW_MS / 1000
    # Behind the clock by 4 s; committed 4 s and 6 s after their times.
    assert samples["lokalnie_ingest_lag_seconds"] == 4.0
    assert samples['lokalnie_ingest_commit_lag_seconds{worker="w1"}'] == 4.0
    assert samples['lokalnie_ingest_sample_lag_seconds_count{worker="w1"}'] == 2
    assert samples['lokalnie_ingest_sample_lag_seconds_bucket{worker="w1",le="3"}'] == 0
    assert samples['lokalnie_ingest_sample_lag_seconds_bucket{worker="w1",le="5"}'] == 1
    assert samples['lokalnie_ingest_sample_lag_seconds_bucket{worker="w1",le="+Inf"}'] == 2
    assert samples['lokalnie_ingest_sample_lag_seconds_sum{worker="w1"}'] == 10.0
    assert samples["lokalnie_timeseries_spool_lines"] == 2
    assert samples["lokalnie_timeseries_spool_batches"] == 1
    assert samples['lokalnie_ingest_up{worker="w1",group="g"}'] == 1
    assert samples['lokalnie_ingest_broker_certificate_expiry_timestamp_seconds{worker="w1"}'] == (
        NOW_MS / 1000 + 86_400
    )
    assert 'lokalnie_ingest_broker_certificate_expiry_timestamp_seconds{worker="w2"}' not in samples


def test_metrics_show_how_long_each_device_has_been_silent_and_each_school_s_link(
    client: TestClient, ingest_db: IngestDb
) -> None:
    """What the alerts watch (deploy/monitoring/alerts.yaml): a device of the register whose newest sample is
    old, a school whose agent is offline. A device that never sent has no age."""
    quiet, silent = ingest_db.school_ids
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)
    store = ingest_db.store(worker_id="w1")
    store.store([telemetry(quiet, [inverter(1, NOW_MS - 3_600_000, 1.0), inverter(2, NOW_MS - 60_000, 2.0)])])
    store.store([telemetry(silent, [inverter(1, NOW_MS - 7_200_000, 1.0)])])
    for school, state in ((quiet, LinkState.ONLINE), (silent, LinkState.OFFLINE)):
        status = Status(school=school, state=state, since_ms=NOW_MS - 7_200_000)
        store.store([Message(school_topic(school, Channel.STATUS), encode(status), NOW_MS)])
    ingest_db.clock.set(NOW_MS + 5000)

    samples = parse_prometheus(client.get("/metrics").text)
    ages = {key: value for key, value in samples.items() if key.startswith("lokalnie_device_sample_age")}
    age = 'lokalnie_device_sample_age_seconds{{school="{}",device="inverter",kind="pv_inverter"}}'
    assert ages == {age.format(quiet): 65.0, age.format(silent): 7205.0}, (
        "the newest sample of each device counts; the meters never sent"
    )
    assert samples[f'lokalnie_school_link_up{{school="{quiet}"}}'] == 1
    assert samples[f'lokalnie_school_link_up{{school="{silent}"}}'] == 0


def test_the_public_health_answer_reads_no_table_that_grows_with_the_schools(
    client: TestClient, ingest_db: IngestDb
) -> None:
    """/healthz is public and polled by every health check: its cost must not grow with the register (the
    per-device figures are for /metrics, which only the officer and the monitor read)."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(ingest_db.engine, "before_cursor_execute", record)
    try:
        assert client.get("/healthz").status_code == 200
        health_statements = list(statements)
        assert client.get("/metrics").status_code == 200
    finally:
        event.remove(ingest_db.engine, "before_cursor_execute", record)
    assert health_statements
    for table in ("samples", "devices", "links", "event_states"):
        read = re.compile(rf"\b(FROM|JOIN)\s+{table}\b", re.IGNORECASE)
        assert not any(read.search(statement) for statement in health_statements), table
        assert any(read.search(statement) for statement in statements), f"/metrics reads {table}"


def test_health_says_ok_idle_or_degraded_and_why(client: TestClient, ingest_db: IngestDb) -> None:
    def answer() -> dict[str, Any]:
        response = client.get("/healthz")
        assert response.status_code == 200, "a degraded ingest leaves the API serving"
        return response.json()  # type: ignore[no-any-return]

    assert answer()["ingest"]["status"] == "idle"
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)
    ingest_db.clock.set(NOW_MS + 600_000)
    ingest_db.store(worker_id="w1").store([telemetry(ingest_db.school_ids[0], [inverter(1, NOW_MS, 1.0)])])
    degraded = answer()
    assert degraded["status"] == "degraded"
    ingest = degraded["ingest"]
    assert ingest["status"] == "degraded"
    assert ingest["problems"] == ["the newest reading is 600 s old"]
    assert (ingest["samples"], ingest["readings"], ingest["lag_s"]) == (1, 2, 600.0)
    assert [worker["alive"] for worker in ingest["workers"]] == [True]
    ingest_db.clock.set(NOW_MS + 1000)
    assert answer()["status"] == "ok"
    assert answer()["ingest"]["status"] == "ok"


def test_a_schools_corrections_newest_first_within_the_period(
    client: TestClient, ingest_db: IngestDb
) -> None:
    school = ingest_db.school_ids[0]
    start = NOW_MS - 8 * Q
    ingest_db.store().store(
        [
            telemetry(
                school,
                [
                    inverter(1, start, 5_000_000.0),
                    inverter(2, start + Q, 100.0),
                    inverter(3, start + 2 * Q, 9e9),
                    inverter(4, start + 3 * Q, 9e9 + 1.0),
                ],
            )
        ]
    )
    body = client.get(f"/api/v1/schools/{school}/corrections").json()
    assert [(item["correction"], item["counted_wh"], item["step_wh"]) for item in body] == [
        ("jump", 0.0, 9e9 - 100.0),
        ("reset", 0.0, 100.0 - 5_000_000.0),
    ]
    assert body[0]["time"] == "2026-03-02T08:30:00Z" and body[0]["previous_time"] == "2026-03-02T08:15:00Z"
    assert body[0]["quantity"] == "energy_wh" and body[0]["kind"] == "pv_inverter"
    narrow = client.get(
        f"/api/v1/schools/{school}/corrections",
        params={"from": "2026-03-02T08:00Z", "to": "2026-03-02T08:30Z"},
    ).json()
    assert [item["correction"] for item in narrow] == ["reset"]
    assert (
        client.get(f"/api/v1/schools/{school}/corrections", params={"limit": 1}).json()[0]["correction"]
        == "jump"
    )
    assert client.get("/api/v1/schools/nosuch/corrections").status_code == 404
    assert client.get(f"/api/v1/schools/{school}/corrections", params={"limit": 0}).status_code == 422


def test_a_schools_events_raised_now_and_recent(client: TestClient, ingest_db: IngestDb) -> None:
    school = ingest_db.school_ids[0]

    def event(seq: int, minutes_ago: int, code: str, active: bool, device: str | None = "meter") -> Message:
        payload = HealthEvent(
            school=school,
            stream="e0e0e0e0",
            seq=seq,
            device=device,
            code=code,
            severity=Severity.CRITICAL if code == "inverter_fault" else Severity.WARNING,
            active=active,
            ts_ms=NOW_MS - minutes_ago * 60_000,
            message_pl=f"{code} {'trwa' if active else 'minął'}",
        )
        return Message(school_topic(school, Channel.EVENTS), encode(payload), NOW_MS)

    ingest_db.store().store(
        [
            event(1, 50, "device_unreachable", True),
            event(2, 40, "device_unreachable", False),
            event(3, 30, "clock_jump", True, device=None),
            event(4, 20, "inverter_fault", True, device="inverter"),
        ]
    )
    body = client.get(f"/api/v1/schools/{school}/events", params={"limit": 3}).json()
    assert [(c["code"], c["device_id"]) for c in body["active"]] == [
        ("inverter_fault", "inverter"),
        ("clock_jump", None),
    ]
    assert body["active"][0]["since"] == "2026-03-02T09:40:00Z"
    assert [(e["code"], e["active"]) for e in body["recent"]] == [
        ("inverter_fault", True),
        ("clock_jump", True),
        ("device_unreachable", False),
    ]
    assert client.get("/api/v1/schools/nosuch/events").status_code == 404

    # The same conditions at /metrics, for the alerts: raised 1, cleared 0, the agent's own without a device.
    samples = parse_prometheus(client.get("/metrics").text)
    conditions = {
        key.split("{", 1)[1]: value
        for key, value in samples.items()
        if key.startswith("lokalnie_school_condition")
    }
    assert conditions == {
        f'school="{school}",device="",code="clock_jump",severity="warning"}}': 1,
        f'school="{school}",device="inverter",code="inverter_fault",severity="critical"}}': 1,
        f'school="{school}",device="meter",code="device_unreachable",severity="warning"}}': 0,
    }
