"""The store on both databases beyond what tests/cloud covers: health events and their conditions, readings
refused one by one, oversized messages, the worker's counters in the same transaction, the time-series
outbox holding exactly what is new, and counter corrections recorded."""

from __future__ import annotations

import json
import threading
import time

import pytest

from cloud.ingest import stats
from cloud.ingest.bulk import Bulk
from cloud.ingest.store import CLEARED_BY_NEW_OUTBOX_PL, Message, StoreOptions, StoreReport, TelemetryStore
from common.wire import (
    MAX_PAYLOAD_BYTES,
    OUTBOX_CREATED,
    Channel,
    DeviceKind,
    HealthEvent,
    Sample,
    Severity,
    TelemetryBatch,
    encode,
    school_topic,
)
from tests.ingest.conftest import NOW_MS, IngestDb, telemetry
from tests.ingest.load import SchoolStream

Q = 15 * 60 * 1000


def event(
    school: str,
    seq: int,
    ts_ms: int,
    active: bool,
    code: str = "device_unreachable",
    *,
    stream: str = "e0e0e0e0",
    device: str | None = "meter",
) -> Message:
    payload = HealthEvent(
        school=school,
        stream=stream,
        seq=seq,
        device=device,
        code=code,
        severity=Severity.WARNING,
        active=active,
        ts_ms=ts_ms,
        message_pl="Licznik nie odpowiada.",
        details={"timeouts": 3.0},
    )
    return Message(school_topic(school, Channel.EVENTS), encode(payload), NOW_MS)


def inverter(seq: int, ts_ms: int, **values: float | None) -> Sample:
    return Sample(seq=seq, device="inverter", kind=DeviceKind.PV_INVERTER, ts_ms=ts_ms, values=values)


def test_events_are_stored_once_and_the_newest_decides_a_conditions_state(ingest_db: IngestDb) -> None:
    school = ingest_db.school_ids[0]
    store = ingest_db.store()
    raised = event(school, 1, NOW_MS - 60_000, active=True)
    first = store.store([raised, raised])
    assert (first.events_stored, first.event_duplicates) == (1, 1)
    state = ingest_db.rows(
        "SELECT active, since_ms, ts_ms FROM event_states WHERE school_id = :s AND device_id = 'meter'",
        s=school,
    )
    assert [(bool(a), since, ts) for a, since, ts in state] == [(True, NOW_MS - 60_000, NOW_MS - 60_000)]
    # Raised again later: still raised since the first time.
    store.store([event(school, 2, NOW_MS - 30_000, active=True)])
    # An older event arriving late changes nothing.
    store.store([event(school, 3, NOW_MS - 90_000, active=False)])
    state = ingest_db.rows("SELECT active, since_ms, ts_ms FROM event_states WHERE school_id = :s", s=school)
    assert [(bool(a), since, ts) for a, since, ts in state] == [(True, NOW_MS - 60_000, NOW_MS - 30_000)]
    store.store([event(school, 4, NOW_MS - 10_000, active=False)])
    state = ingest_db.rows("SELECT active, since_ms FROM event_states WHERE school_id = :s", s=school)
    assert [(bool(a), since) for a, since in state] == [(False, NOW_MS - 10_000)]
    again = store.store([event(school, 4, NOW_MS - 10_000, active=False)])
    assert (again.events_stored, again.event_duplicates) == (0, 1)
    assert ingest_db.scalar("SELECT COUNT(*) FROM events WHERE school_id = :s", s=school) == 4


def test_a_new_outbox_clears_what_its_school_raised_before_it(ingest_db: IngestDb) -> None:
    """A school's agent with a new outbox (a new SD card) cannot clear what the old one raised: its first
    event clears them in the cloud; what it raises itself afterwards, and other schools' conditions, stay."""
    school, other = ingest_db.school_ids[:2]
    store = ingest_db.store()
    store.store([event(school, 1, NOW_MS - 60_000, True), event(other, 1, NOW_MS - 60_000, True)])
    new = "f1f1f1f1"
    store.store(
        [
            event(school, 1, NOW_MS - 30_000, False, OUTBOX_CREATED, stream=new, device=None),
            event(school, 2, NOW_MS - 20_000, True, "clock_jump", stream=new, device=None),
        ]
    )
    # The old card's last events, arriving late, change nothing.
    store.store([event(school, 2, NOW_MS - 45_000, True)])
    states = ingest_db.rows(
        "SELECT school_id, device_id, code, active, since_ms, message_pl FROM event_states"
    )
    by_key = {(row[0], row[1] or None, row[2]): (bool(row[3]), row[4], row[5]) for row in states}
    assert by_key[(school, "meter", "device_unreachable")] == (
        False,
        NOW_MS - 30_000,
        CLEARED_BY_NEW_OUTBOX_PL,
    )
    assert by_key[(school, None, "clock_jump")][:2] == (True, NOW_MS - 20_000)
    assert by_key[(other, "meter", "device_unreachable")][:2] == (True, NOW_MS - 60_000)


def test_an_event_of_another_school_than_its_topic_is_a_dead_letter(ingest_db: IngestDb) -> None:
    school, other = ingest_db.school_ids
    wrong = Message(school_topic(school, Channel.EVENTS), event(other, 1, NOW_MS, True).payload, NOW_MS)
    report = ingest_db.store().store([wrong, Message(wrong.topic, b"{}", NOW_MS)])
    assert report.dead_letters == 2 and report.events_stored == 0
    reasons = [row[0] for row in ingest_db.rows("SELECT reason FROM dead_letters ORDER BY id")]
    assert "does not match the topic" in str(reasons[0]) and str(reasons[1]).startswith("event:")


def test_unbelievable_readings_are_refused_one_by_one_and_the_rest_is_kept(ingest_db: IngestDb) -> None:
    school = ingest_db.school_ids[0]
    payload = encode(
        TelemetryBatch(
            school=school,
            stream="a1b2c3d4",
            sent_ms=NOW_MS,
            samples=[
                inverter(1, NOW_MS - 20_000, power_w=2_000_000.0, energy_wh=1000.0, voltage_l1_v=231.0),
                inverter(2, NOW_MS - 10_000, power_w=1000.0, energy_wh=-5.0, frequency_hz=50.0),
                inverter(3, NOW_MS, power_w=1000.0, energy_wh=1010.0),
            ],
        )
    )
    # NaN is not JSON but some senders write it anyway.
    payload = payload.replace(b'"frequency_hz":50.0', b'"frequency_hz":NaN')
    report = ingest_db.store().store([Message(school_topic(school, Channel.TELEMETRY), payload, NOW_MS)])
    assert (report.samples_stored, report.refused_readings, report.dead_letters) == (3, 3, 2)
    assert report.readings_stored == 2 + 1 + 2
    values = {
        seq: json.loads(v) if isinstance(v, str) else v
        for seq, v in ingest_db.rows('SELECT seq, "values" FROM samples WHERE school_id = :s', s=school)
    }
    assert values[1] == {"power_w": None, "energy_wh": 1000.0, "voltage_l1_v": 231.0}
    assert values[2] == {"power_w": 1000.0, "energy_wh": None, "frequency_hz": None}
    reasons = [str(row[0]) for row in ingest_db.rows("SELECT reason FROM dead_letters ORDER BY id")]
    assert "power_w 2e+06 W is more than a 40 kWp roof delivers (60000 W)" in reasons[0]
    assert "energy_wh -5 Wh is outside" in reasons[1] and "frequency_hz is NaN" in reasons[1]
    # The refused counter reading is not a counter reading.
    readings = ingest_db.rows(
        "SELECT ts_ms FROM counter_readings WHERE school_id = :s ORDER BY ts_ms", s=school
    )
    assert [row[0] for row in readings] == [NOW_MS - 20_000, NOW_MS]


def test_an_oversized_message_is_a_dead_letter_with_its_size(ingest_db: IngestDb) -> None:
    school = ingest_db.school_ids[0]
    samples = [inverter(seq, NOW_MS - seq * 1000, power_w=1.0, energy_wh=float(seq)) for seq in range(1, 501)]
    batch = json.loads(telemetry(school, samples).payload)
    batch["samples"] = batch["samples"] * 6
    payload = json.dumps(batch).encode()
    assert len(payload) > MAX_PAYLOAD_BYTES
    report = ingest_db.store().store([Message(school_topic(school, Channel.TELEMETRY), payload, NOW_MS)])
    assert (report.samples_stored, report.dead_letters) == (0, 1)
    reason, size = ingest_db.rows("SELECT reason, payload_bytes FROM dead_letters")[0]
    assert "over the limit" in str(reason) and size == len(payload)


def test_far_future_and_far_past_samples_are_refused_and_the_others_kept(ingest_db: IngestDb) -> None:
    school = ingest_db.school_ids[0]
    day = 24 * 3600 * 1000
    samples = [
        inverter(1, NOW_MS + 2 * day, power_w=1.0),
        inverter(2, NOW_MS - 500 * day, power_w=1.0),
        inverter(3, NOW_MS, power_w=1.0),
    ]
    report = ingest_db.store().store([telemetry(school, samples)])
    assert (report.samples_stored, report.dead_letters) == (1, 2)


def test_the_workers_counters_move_with_the_transaction_they_count(
    ingest_db: IngestDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    school = ingest_db.school_ids[0]
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)
    store = ingest_db.store(worker_id="w1")
    school_stream = SchoolStream(school, "a1b2c3d4", NOW_MS - 10 * Q)
    batch = school_stream.batch(0, 3)
    message = Message(school_topic(school, Channel.TELEMETRY), encode(batch), NOW_MS)
    store.store([message, message, Message(message.topic, b"junk", NOW_MS)])
    row = ingest_db.rows(
        "SELECT messages, samples, readings, duplicates, dead_letters, transactions, newest_ts_ms "
        "FROM ingest_workers WHERE client_id = 'w1'"
    )[0]
    assert row == (3, 6, 6 * 13, 6, 1, 1, batch.samples[-1].ts_ms)

    def fail(_bulk: Bulk, _rows: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(Bulk, "upsert_links", fail)
    later = Message(message.topic, encode(school_stream.batch(3, 1)), NOW_MS)
    with pytest.raises(RuntimeError):
        store.store([later])
    # Rolled back: neither the samples nor their counting happened.
    assert ingest_db.scalar("SELECT samples FROM ingest_workers WHERE client_id = 'w1'") == 6
    assert ingest_db.scalar("SELECT COUNT(*) FROM samples WHERE school_id = :s", s=school) == 6
    histogram = stats.load_lag_histogram(ingest_db.engine.connect(), "w1")
    assert histogram.total == 6


def test_counts_of_transactions_committing_side_by_side_add_up(ingest_db: IngestDb) -> None:
    """A worker's writers count into one row: the second waits for the first's commit and adds to it."""
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)

    def count_in_another_transaction() -> None:
        with ingest_db.engine.begin() as connection:
            stats.count(connection, "w1", StoreReport(messages=1, samples_stored=3), 0, None, [10, 20, 30])

    other = threading.Thread(target=count_in_another_transaction)
    with ingest_db.engine.begin() as connection:
        stats.count(connection, "w1", StoreReport(messages=1, samples_stored=2), 0, None, [5, 15])
        other.start()
        time.sleep(0.3)
        assert other.is_alive(), "the second transaction did not wait for the first"
    other.join(10)
    assert ingest_db.scalar("SELECT samples FROM ingest_workers WHERE client_id = 'w1'") == 5
    with ingest_db.engine.connect() as connection:
        assert stats.load_lag_histogram(connection, "w1").total == 5


def test_the_outbox_gets_lines_for_new_data_only(ingest_db: IngestDb) -> None:
    school = ingest_db.school_ids[0]
    store = TelemetryStore(ingest_db.engine, ingest_db.clock, None, StoreOptions(timeseries=True))
    school_stream = SchoolStream(school, "a1b2c3d4", NOW_MS - 10 * Q, poll_period_ms=5 * 60 * 1000)
    messages = [
        Message(school_stream.topic, encode(school_stream.batch(first, 1)), NOW_MS) for first in range(0, 7)
    ]
    report = store.store(messages[:4])
    # 8 samples; intervals complete once a reading lies at or after their end: [0, 15) after poll 3.
    assert report.timeseries_lines == 8 + 1
    again = store.store(messages[:4])
    assert again.timeseries_lines == 0 and again.duplicates == 8
    later = store.store(messages[4:])
    assert later.timeseries_lines == 6 + 1
    bodies = [
        bytes(row[0]).decode() for row in ingest_db.rows("SELECT body FROM timeseries_outbox ORDER BY id")
    ]
    lines = "".join(bodies).splitlines()
    assert len(lines) == 16
    readings = [line for line in lines if line.startswith("readings,")]
    assert len(readings) == 14 and len(set(readings)) == 14
    intervals = [line for line in lines if line.startswith("energy_15min,")]
    assert len(intervals) == 2
    assert intervals[0].startswith(f"energy_15min,school={school} pv_wh=5000.0,import_wh=1500.0")
    assert "complete=true" in intervals[0]


def test_corrections_are_recorded_and_follow_late_readings(ingest_db: IngestDb) -> None:
    school = ingest_db.school_ids[0]
    store = TelemetryStore(ingest_db.engine, ingest_db.clock, None, StoreOptions(timeseries=True))
    start = NOW_MS - 8 * Q
    report = store.store(
        [
            telemetry(
                school,
                [
                    inverter(1, start, energy_wh=2.0**32 - 1000.0),
                    # Wrapped: 1000 Wh to the limit and 1000 Wh beyond.
                    inverter(2, start + 2 * Q, energy_wh=1000.0),
                    # Swapped for a unit with 9 GWh on its counter.
                    inverter(3, start + 4 * Q, energy_wh=9e9),
                    inverter(4, start + 6 * Q, energy_wh=9e9 + 4000.0),
                ],
            )
        ]
    )
    assert report.corrections == 2
    corrections = ingest_db.rows(
        "SELECT ts_ms, correction, counted_wh FROM counter_corrections WHERE school_id = :s ORDER BY ts_ms",
        s=school,
    )
    assert corrections == [(start + 2 * Q, "rollover", 2000.0), (start + 4 * Q, "jump", 0.0)]
    # A late reading inside the jumping step: the jump now ends at it, and the step after it is plain.
    store.store([telemetry(school, [inverter(5, start + 3 * Q, energy_wh=1500.0)])])
    corrections = ingest_db.rows(
        "SELECT ts_ms, correction FROM counter_corrections WHERE school_id = :s ORDER BY ts_ms", s=school
    )
    assert corrections == [(start + 2 * Q, "rollover"), (start + 4 * Q, "jump")]
    store.store([telemetry(school, [inverter(6, start + 4 * Q - 1, energy_wh=9e9 - 100.0)])])
    corrections = ingest_db.rows(
        "SELECT ts_ms, correction FROM counter_corrections WHERE school_id = :s ORDER BY ts_ms", s=school
    )
    assert corrections == [(start + 2 * Q, "rollover"), (start + 4 * Q - 1, "jump")]
    pv = ingest_db.rows("SELECT pv_wh FROM intervals WHERE school_id = :s ORDER BY start_ms", s=school)
    assert sum(float(row[0]) for row in pv) == pytest.approx(2000.0 + 500.0 + 100.0 + 4000.0)
    lines = "".join(bytes(row[0]).decode() for row in ingest_db.rows("SELECT body FROM timeseries_outbox"))
    corrected = [line for line in lines.splitlines() if line.startswith("counter_corrections,")]
    assert len(corrected) == 3
    assert corrected[0].startswith(
        f"counter_corrections,school={school},device=inverter,kind=pv_inverter,quantity=energy_wh,"
        "correction=rollover "
    )
