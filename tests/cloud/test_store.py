"""The store on both databases: samples, duplicates, dead letters, counter readings, intervals and links."""

from __future__ import annotations

import json
import logging
import random
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db.models import CounterReading, DeadLetter, Interval, Link
from cloud.db.models import Sample as SampleRow
from cloud.ingest.bulk import Bulk
from cloud.ingest.counters import QUARTER_HOUR_MS
from cloud.ingest.intervals import INTERVAL_COLUMNS, Series, SeriesReadings, interval_rows
from cloud.ingest.store import Message, TelemetryStore, known_school_ids
from common.wire import COUNTERS, Channel, LinkState, Status, encode, school_topic
from tests.cloud.conftest import NOW_MS, CloudDb, make_batch, meter_sample, pv_sample

Q = QUARTER_HOUR_MS
DAY_MS = 24 * 3600 * 1000


def telemetry(school_id: str, payload: bytes, topic_school: str | None = None) -> Message:
    return Message(school_topic(topic_school or school_id, Channel.TELEMETRY), payload, NOW_MS)


def store_for(db: CloudDb) -> TelemetryStore:
    return TelemetryStore(db.engine, db.clock, known_school_ids(db.engine))


def count(db: CloudDb, model: type, *where: object) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model).where(*where)).scalar_one())  # type: ignore[arg-type]


def intervals_of(db: CloudDb, school_id: str) -> list[Interval]:
    with Session(db.engine) as session:
        query = select(Interval).where(Interval.school_id == school_id).order_by(Interval.start_ms)
        return list(session.scalars(query))


def dead_letters(db: CloudDb) -> list[DeadLetter]:
    with Session(db.engine) as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def test_the_schools_of_the_site_files_are_known(cloud_db: CloudDb) -> None:
    assert set(cloud_db.school_ids) <= known_school_ids(cloud_db.engine)


def test_samples_on_boundaries_give_intervals_of_exact_differences(cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    start = NOW_MS - 4 * Q
    pv = [pv_sample(k + 1, start + k * Q, 1000.0 + 100.0 * k * k) for k in range(5)]
    grid = [meter_sample(k + 11, start + k * Q, 500.0 + 30.0 * k, 20.0 + 5.0 * k) for k in range(5)]
    report = store_for(cloud_db).store([telemetry(school, encode(make_batch(school, pv + grid)))])
    assert (report.samples_stored, report.duplicates, report.dead_letters) == (10, 0, 0)
    assert count(cloud_db, SampleRow, SampleRow.school_id == school) == 10
    assert count(cloud_db, CounterReading, CounterReading.school_id == school) == 15
    intervals = intervals_of(cloud_db, school)
    assert [row.start_ms for row in intervals] == [start + k * Q for k in range(4)]
    pv_counter = [1000.0 + 100.0 * k * k for k in range(5)]
    for k, row in enumerate(intervals):
        assert row.pv_wh == pv_counter[k + 1] - pv_counter[k]
        assert row.import_wh == 30.0
        assert row.export_wh == 5.0
        assert row.consumption_wh == row.pv_wh + row.import_wh - row.export_wh
        assert row.complete


def test_a_message_twice_and_its_samples_in_a_new_message_are_stored_once(cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    samples = [pv_sample(1, NOW_MS - Q, 10.0), pv_sample(2, NOW_MS, 20.0)]
    message = telemetry(school, encode(make_batch(school, samples)))
    store = store_for(cloud_db)
    first = store.store([message, message])
    assert (first.samples_stored, first.duplicates) == (2, 2)
    again = store.store(
        [telemetry(school, encode(make_batch(school, [*samples, pv_sample(3, NOW_MS + 10, 21.0)])))]
    )
    assert (again.samples_stored, again.duplicates) == (1, 2)
    assert count(cloud_db, SampleRow, SampleRow.school_id == school) == 3
    # The same seq in another stream is another sample.
    other_stream = store.store([telemetry(school, encode(make_batch(school, samples, stream="ffff0000")))])
    assert other_stream.samples_stored == 2


def test_bad_messages_become_dead_letters_and_good_samples_of_a_batch_are_kept(
    cloud_db: CloudDb, caplog: pytest.LogCaptureFixture
) -> None:
    school, other = cloud_db.school_ids
    good = pv_sample(1, NOW_MS - 60_000, 10.0)
    future = pv_sample(2, NOW_MS + 2 * DAY_MS, 11.0)
    ancient = pv_sample(3, NOW_MS - 401 * DAY_MS, 9.0)
    mixed = json.loads(encode(make_batch(school, [good, future, ancient])))
    mixed["samples"].append({"seq": 4, "device": "inverter", "kind": "pv_inverter", "values": {}})  # no ts_ms
    mixed["samples"].append(json.loads(pv_sample(5, NOW_MS - 30_000, 12.0).model_dump_json()))
    messages = [
        telemetry(school, b"{not json"),
        telemetry(school, b'{"v": 1, "school": "x"}'),
        telemetry(school, encode(make_batch(other, [good]))),
        telemetry("nosuchschool", encode(make_batch("nosuchschool", [good]))),
        Message("lokalnie/v1/" + school + "/bogus", b"{}", NOW_MS),
        Message("elsewhere/topic", b"{}", NOW_MS),
        telemetry(school, json.dumps(mixed).encode()),
    ]
    with caplog.at_level(logging.WARNING, logger="cloud.ingest.store"):
        report = store_for(cloud_db).store(messages)
    assert report.samples_stored == 2
    with cloud_db.engine.connect() as connection:
        seqs = connection.execute(select(SampleRow.seq).where(SampleRow.school_id == school)).scalars().all()
    assert sorted(seqs) == [1, 5]
    reasons = [letter.reason for letter in dead_letters(cloud_db)]
    assert len(reasons) == report.dead_letters == 9
    assert "not valid" in reasons[0].lower() or "json" in reasons[0].lower()
    assert "samples" in reasons[1] or "stream" in reasons[1]
    assert "does not match the topic" in reasons[2]
    assert "unknown school 'nosuchschool'" in reasons[3]
    assert "bogus" in reasons[4]
    assert "not under" in reasons[5]
    joined = "\n".join(reasons[6:])
    assert "seq 2: ts_ms" in joined and "ahead of the clock" in joined
    assert "seq 3: ts_ms" in joined and "behind the clock" in joined
    assert "samples.3: field 'ts_ms'" in joined
    # One log line per refused message, never the payload.
    refused_lines = [record for record in caplog.records if "refused" in record.getMessage()]
    assert len(refused_lines) == len(messages)
    assert all("not json" not in record.getMessage() for record in refused_lines)
    letters = dead_letters(cloud_db)
    assert letters[0].payload == b"{not json" and letters[0].payload_bytes == 9
    assert json.loads(letters[6].payload)["seq"] in (2, 3, 4)


def test_dead_letter_payloads_are_truncated(cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    payload = b"x" * 10_000
    store_for(cloud_db).store([telemetry(school, payload)])
    (letter,) = dead_letters(cloud_db)
    assert len(letter.payload) == 4096 and letter.payload_bytes == 10_000


def test_values_that_are_not_finite_are_stored_as_unread(cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    payload = encode(make_batch(school, [pv_sample(1, NOW_MS, 100.0)])).replace(b"100.0", b"NaN")
    report = store_for(cloud_db).store([telemetry(school, payload)])
    assert report.samples_stored == 1
    with cloud_db.engine.connect() as connection:
        values = connection.execute(
            select(SampleRow.values).where(SampleRow.school_id == school)
        ).scalar_one()
    assert values == {"energy_wh": None, "power_w": 1000.0}
    assert count(cloud_db, CounterReading, CounterReading.school_id == school) == 0


def test_late_samples_give_the_same_intervals_as_all_samples_at_once(cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    rng = random.Random(5)
    start = NOW_MS - 8 * Q
    pv_times = sorted(rng.sample(range(start, NOW_MS, 1000), 40))
    grid_times = sorted(rng.sample(range(start, NOW_MS, 1000), 40))
    samples = [pv_sample(i + 1, ts, 5000.0 + 3.0 * i * i) for i, ts in enumerate(pv_times)] + [
        meter_sample(100 + i, ts, 900.0 + 7.0 * i, 50.0 + (i % 3)) for i, ts in enumerate(grid_times)
    ]
    # The meter's export counter resets half-way.
    samples = [
        s if s.seq < 120 else s.model_copy(update={"values": {**s.values, "export_wh": float(s.seq)}})
        for s in samples
    ]
    rng.shuffle(samples)
    store = store_for(cloud_db)
    for chunk in range(0, len(samples), 7):
        store.store([telemetry(school, encode(make_batch(school, samples[chunk : chunk + 7])))])
    readings: dict[Series, SeriesReadings] = {}
    for sample in samples:
        for quantity in COUNTERS[sample.kind]:
            data = readings.setdefault(Series(sample.device, sample.kind.value, quantity), SeriesReadings())
            data.ts_ms.append(sample.ts_ms)
            data.value_wh.append(float(sample.values[quantity]))  # type: ignore[arg-type]
    expected, resets = interval_rows(readings, start - Q, NOW_MS + Q)
    assert resets
    stored = intervals_of(cloud_db, school)
    assert [row.start_ms for row in stored] == [row["start_ms"] for row in expected]
    for row, want in zip(stored, expected, strict=True):
        assert row.pv_wh == pytest.approx(want["pv_wh"])
        assert row.import_wh == pytest.approx(want["import_wh"])
        assert row.export_wh == pytest.approx(want["export_wh"])
        assert row.complete == want["complete"]
        assert row.export_wh >= 0
    assert any(row.complete for row in stored) and not all(row.complete for row in stored)


def test_an_interval_is_complete_only_with_pv_import_and_export(cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    store = store_for(cloud_db)
    store.store(
        [
            telemetry(
                school,
                encode(make_batch(school, [pv_sample(1, NOW_MS - Q, 0.0), pv_sample(2, NOW_MS, 50.0)])),
            )
        ]
    )
    (only_pv,) = intervals_of(cloud_db, school)
    assert only_pv.pv_wh == 50.0 and not only_pv.complete
    store.store(
        [
            telemetry(
                school,
                encode(
                    make_batch(school, [meter_sample(3, NOW_MS - Q, 0, 0), meter_sample(4, NOW_MS, 10, 5)])
                ),
            )
        ]
    )
    (both,) = intervals_of(cloud_db, school)
    assert (both.pv_wh, both.import_wh, both.export_wh, both.consumption_wh, both.complete) == (
        50.0,
        10.0,
        5.0,
        55.0,
        True,
    )


def test_status_messages_set_the_link_and_older_ones_change_nothing(cloud_db: CloudDb) -> None:
    school = cloud_db.school_ids[0]
    topic = school_topic(school, Channel.STATUS)
    store = store_for(cloud_db)

    def link() -> tuple[str, int]:
        with cloud_db.engine.connect() as connection:
            row = connection.execute(select(Link.state, Link.since_ms).where(Link.school_id == school)).one()
        return row[0], row[1]

    online = Status(school=school, state=LinkState.ONLINE, since_ms=NOW_MS - 5000, agent="edge 1")
    assert store.store([Message(topic, encode(online), NOW_MS)]).statuses == 1
    assert link() == ("online", NOW_MS - 5000)
    will = Status(school=school, state=LinkState.OFFLINE)
    store.store([Message(topic, encode(will), NOW_MS - 1000)])
    assert link() == ("offline", NOW_MS - 1000)
    store.store([Message(topic, encode(online), NOW_MS)])
    assert link() == ("offline", NOW_MS - 1000)
    wrong_school = Status(school=cloud_db.school_ids[1], state=LinkState.ONLINE, since_ms=NOW_MS)
    report = store.store([Message(topic, encode(wrong_school), NOW_MS), Message(topic, b"[]", NOW_MS)])
    assert report.dead_letters == 2 and report.statuses == 0


def test_transactions_on_one_school_take_turns_on_postgresql(cloud_db: CloudDb) -> None:
    if not cloud_db.settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite has a single writer anyway")
    school = cloud_db.school_ids[0]
    store = store_for(cloud_db)
    message = telemetry(school, encode(make_batch(school, [pv_sample(1, NOW_MS, 1.0)])))
    with cloud_db.engine.connect() as other:
        other.begin()
        Bulk(other).lock_schools([school])
        worker = threading.Thread(target=store.store, args=([message],))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive(), "the store did not wait for the other transaction on the school"
        other.commit()
    worker.join(10)
    assert not worker.is_alive()
    assert count(cloud_db, SampleRow, SampleRow.school_id == school) == 1


def test_a_message_stored_by_two_transactions_at_once_is_stored_once(cloud_db: CloudDb) -> None:
    """On PostgreSQL new rows go in by a plain insert first: the second transaction waits for the first's
    uncommitted keys, then finds them stored and counts its samples as duplicates."""
    school = cloud_db.school_ids[0]
    samples = [pv_sample(1, NOW_MS - Q, 10.0), pv_sample(2, NOW_MS, 20.0), meter_sample(3, NOW_MS, 5.0, 1.0)]
    message = telemetry(school, encode(make_batch(school, samples)))
    store = store_for(cloud_db)
    reports = []
    with cloud_db.engine.connect() as first:
        first.begin()
        Bulk(first).insert_samples(
            [
                (school, "a1b2c3d4", s.seq, s.device, s.kind.value, s.ts_ms, False, NOW_MS, "{}")
                for s in samples
            ]
        )
        second = threading.Thread(target=lambda: reports.append(store.store([message])))
        second.start()
        second.join(0.5)
        if cloud_db.settings.database_url.startswith("postgresql"):
            assert second.is_alive(), "the second transaction did not wait for the first's keys"
        first.commit()
    second.join(10)
    assert not second.is_alive()
    [report] = reports
    assert (report.samples_stored, report.duplicates) == (0, 3)
    assert count(cloud_db, SampleRow, SampleRow.school_id == school) == 3


def test_every_counter_of_the_wire_contract_feeds_an_interval_column() -> None:
    assert set(INTERVAL_COLUMNS) == {
        (kind, quantity) for kind, names in COUNTERS.items() for quantity in names
    }
