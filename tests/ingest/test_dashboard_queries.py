"""Every query of the energy officer's Grafana dashboards run by a real InfluxQL engine over what the ingest
spools for the time-series database: two schools' telemetry, one counter reset among it, stored by the real
store; the outbox's lines written to InfluxDB 1.x (Debian's package; InfluxDB 2.x answers the same InfluxQL
through the v1 mapping the deployment creates). Each panel gets data, and the totals add up.

Grafana's macros are replaced as Grafana replaces them for InfluxQL: ``$timeFilter`` by the dashboard's time
range in milliseconds, ``$__interval`` by an interval, ``$school`` by a school of the variable's query; and
``now()`` by the test's clock, which the stored readings follow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.ingest import stats
from cloud.ingest.store import Message
from cloud.timeseries import outbox
from common.wire import DeviceKind, Sample, TelemetryBatch, encode
from tests.ingest.conftest import NOW_MS, IngestDb
from tests.ingest.load import SchoolStream
from tests.ingest.servers import InfluxDB1, influxdb_v1
from tests.ingest.test_dashboards import DASHBOARDS, queries

pytestmark = pytest.mark.integration
Q = 15 * 60 * 1000
POLL_MS = 5 * 60 * 1000
# Two hours of polls, the last one at the clock's time (the "now" panel looks five minutes back).
POLLS = 8 * Q // POLL_MS + 1
RANGE = (NOW_MS - 9 * Q, NOW_MS)


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB1]:
    with influxdb_v1(tmp_path / "influxdb") as server:
        yield server


def school_day(school_ids: list[str]) -> list[Message]:
    """Each school's polls, one message each, then a reset of the first school's inverter counter."""
    schools = [
        SchoolStream(school_id, "0a1b2c3d", NOW_MS - 8 * Q, poll_period_ms=POLL_MS, offset=index)
        for index, school_id in enumerate(school_ids)
    ]
    out = [
        Message(school.topic, encode(school.batch(poll)), NOW_MS)
        for poll in range(POLLS - 1)
        for school in schools
    ]
    first = schools[0]
    inverter, meter = first.poll(POLLS - 1)
    reset = Sample(
        seq=inverter.seq,
        device=inverter.device,
        kind=DeviceKind.PV_INVERTER,
        ts_ms=inverter.ts_ms,
        values={**inverter.values, "energy_wh": 12.0},
    )
    batch = TelemetryBatch(
        school=first.school_id, stream=first.stream, sent_ms=NOW_MS, samples=[reset, meter]
    )
    out.append(Message(first.topic, encode(batch), NOW_MS))
    out.extend(Message(school.topic, encode(school.batch(POLLS - 1)), NOW_MS) for school in schools[1:])
    return out


def send_outbox(ingest_db: IngestDb, influxdb: InfluxDB1) -> int:
    """Write every spooled line to InfluxDB, as the sink would; the number of lines."""
    written = 0
    while lease := outbox.claim(ingest_db.engine, "test", NOW_MS, 60_000, max_lines=10**6):
        influxdb.write(lease.body)
        outbox.sent(ingest_db.engine, lease, None)
        written += lease.lines
    return written


def as_grafana_sends_it(query: str, school: str) -> str:
    return (
        query.replace("$timeFilter", f"time >= {RANGE[0]}ms and time <= {RANGE[1]}ms")
        .replace("$__interval", "5m")
        .replace("$school", re.escape(school))
        .replace("now()", f"{NOW_MS}ms")
    )


def cells(result: dict[str, Any]) -> list[object]:
    """Every non-null value of every series of a result, times left out."""
    return [
        value
        for series in result.get("series", [])
        for row in series["values"]
        for value in row[1:]
        if value is not None
    ]


def values(result: dict[str, Any]) -> list[float]:
    """Every number of every series of a result."""
    return [value for value in cells(result) if isinstance(value, int | float)]


def test_every_panel_shows_the_ingest_s_data_and_the_totals_add_up(
    ingest_db: IngestDb, influxdb: InfluxDB1
) -> None:
    if not ingest_db.url.startswith("sqlite"):
        pytest.skip("the lines are the same whichever database spools them")
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)
    store = ingest_db.store(timeseries=True, worker_id="w1")
    store.store(school_day(ingest_db.school_ids))
    assert send_outbox(ingest_db, influxdb) > 0

    schools = influxdb.query('SHOW TAG VALUES FROM "energy_15min" WITH KEY = "school"')
    assert sorted(row[1] for row in schools["series"][0]["values"]) == sorted(ingest_db.school_ids)  # type: ignore[index]
    school = ingest_db.school_ids[0]
    empty = []
    for path in DASHBOARDS:
        for query in queries(json.loads(path.read_text())):
            result = influxdb.query(as_grafana_sends_it(query, school))
            assert "error" not in result, f"{path.name}: {query}: {result['error']}"
            if not cells(result):
                empty.append(f"{path.name}: {query}")
    assert empty == [], "panels without data"

    def first_value(query: str) -> float:
        return values(influxdb.query(as_grafana_sends_it(query, school)))[0]

    total_kwh = first_value('SELECT sum("pv_wh") / 1000 FROM "energy_15min" WHERE $timeFilter')
    by_school = values(
        influxdb.query(
            as_grafana_sends_it(
                'SELECT sum("pv_wh") / 1000 FROM "energy_15min" WHERE $timeFilter GROUP BY "school"', school
            )
        )
    )
    assert len(by_school) == 2 and sum(by_school) == pytest.approx(total_kwh)
    stored_wh = ingest_db.scalar("SELECT SUM(pv_wh) FROM intervals WHERE complete")
    assert total_kwh == pytest.approx(float(stored_wh) / 1000)  # type: ignore[arg-type]
    corrections = first_value(
        'SELECT count("counted_wh") FROM "counter_corrections" WHERE $timeFilter GROUP BY "school"'
    )
    assert corrections == 1
