"""The ingest against a real Mosquitto and both databases: what is published ends up stored, once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text

from cloud.db.engine import make_engine
from cloud.db.models import CounterReading, DeadLetter, Interval, Link
from cloud.db.models import Sample as SampleRow
from cloud.ingest.worker import IngestWorker
from cloud.settings import Settings
from common.wire import Channel, LinkState, Status, encode, school_topic
from tests.cloud.conftest import (
    NOW_MS,
    CloudDb,
    Publish,
    Q,
    make_batch,
    meter_sample,
    pv_sample,
    wait_until,
)

pytestmark = pytest.mark.integration


@contextmanager
def running(settings: Settings, db: CloudDb, **kwargs: object) -> Iterator[IngestWorker]:
    worker = IngestWorker(settings, db.clock, **kwargs)  # type: ignore[arg-type]
    worker.start()
    try:
        assert worker.wait_subscribed(10), "the ingest did not subscribe"
        yield worker
    finally:
        worker.stop()


def rows(db: CloudDb, model: type, *where: object) -> int:
    with db.engine.connect() as connection:
        query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int(connection.execute(query).scalar_one())


def telemetry_topic(school_id: str) -> str:
    return school_topic(school_id, Channel.TELEMETRY)


def test_published_telemetry_and_status_are_stored(
    cloud_db: CloudDb, ingest_settings: Settings, publish: Publish
) -> None:
    school = cloud_db.school_ids[0]
    samples = [pv_sample(k + 1, NOW_MS - Q + k * Q, 100.0 + 50.0 * k) for k in range(2)] + [
        meter_sample(k + 10, NOW_MS - Q + k * Q, 10.0 + 4.0 * k, 2.0 + k) for k in range(2)
    ]
    with running(ingest_settings, cloud_db) as worker:
        publish(telemetry_topic(school), encode(make_batch(school, samples)))
        status = Status(school=school, state=LinkState.ONLINE, since_ms=NOW_MS - 1000)
        publish(school_topic(school, Channel.STATUS), encode(status))
        wait_until(lambda: rows(cloud_db, Link, Link.school_id == school) == 1, what="the link row")
        wait_until(lambda: rows(cloud_db, SampleRow, SampleRow.school_id == school) == 4, what="4 samples")
        assert worker.report.samples_stored >= 4
    assert rows(cloud_db, CounterReading, CounterReading.school_id == school) == 6
    with cloud_db.engine.connect() as connection:
        interval = connection.execute(
            select(Interval.pv_wh, Interval.import_wh, Interval.export_wh, Interval.complete).where(
                Interval.school_id == school
            )
        ).one()
    assert tuple(interval) == (50.0, 4.0, 1.0, True)


def test_the_same_message_twice_and_its_samples_again_are_stored_once(
    cloud_db: CloudDb, ingest_settings: Settings, publish: Publish
) -> None:
    school = cloud_db.school_ids[0]
    samples = [pv_sample(1, NOW_MS - 20_000, 5.0), pv_sample(2, NOW_MS - 10_000, 6.0)]
    payload = encode(make_batch(school, samples))
    with running(ingest_settings, cloud_db) as worker:
        publish(telemetry_topic(school), payload)
        publish(telemetry_topic(school), payload)
        publish(telemetry_topic(school), encode(make_batch(school, [*samples, pv_sample(3, NOW_MS, 7.0)])))
        wait_until(lambda: worker.report.duplicates >= 4, what="4 duplicates counted")
    assert rows(cloud_db, SampleRow, SampleRow.school_id == school) == 3
    assert rows(cloud_db, CounterReading, CounterReading.school_id == school) == 3


def test_bad_messages_are_dead_letters_and_the_good_samples_are_kept(
    cloud_db: CloudDb, ingest_settings: Settings, publish: Publish
) -> None:
    school, other = cloud_db.school_ids
    good = pv_sample(1, NOW_MS - 60_000, 10.0)
    future = pv_sample(2, NOW_MS + 3 * 24 * 3600 * 1000, 11.0)
    shape = json.loads(encode(make_batch(school, [good])))
    del shape["stream"]
    topic = telemetry_topic(school)
    with running(ingest_settings, cloud_db):
        publish(topic, b"\x00\xffnot json at all")
        publish(topic, json.dumps(shape).encode())
        publish(topic, encode(make_batch(other, [good])))
        publish(topic, encode(make_batch(school, [good, future])))
        wait_until(lambda: rows(cloud_db, DeadLetter, DeadLetter.topic == topic) == 4, what="4 dead letters")
        wait_until(
            lambda: rows(cloud_db, SampleRow, SampleRow.school_id == school) == 1, what="the good sample"
        )
    with cloud_db.engine.connect() as connection:
        reasons = (
            connection.execute(
                select(DeadLetter.reason).where(DeadLetter.topic == topic).order_by(DeadLetter.id)
            )
            .scalars()
            .all()
        )
    assert "stream" in reasons[1]
    assert "does not match the topic" in reasons[2]
    assert "ahead of the clock" in reasons[3]
    assert rows(cloud_db, SampleRow, SampleRow.school_id == other) == 0


def test_what_is_published_while_the_ingest_is_down_arrives_after_its_restart(
    cloud_db: CloudDb, ingest_settings: Settings, publish: Publish
) -> None:
    school = cloud_db.school_ids[0]
    with running(ingest_settings, cloud_db):
        pass
    for seq in range(1, 6):
        publish(
            telemetry_topic(school),
            encode(make_batch(school, [pv_sample(seq, NOW_MS - 10_000 * seq, 99.0 - seq)])),
        )
    with running(ingest_settings, cloud_db):
        wait_until(
            lambda: rows(cloud_db, SampleRow, SampleRow.school_id == school) == 5, what="5 queued samples"
        )


def test_a_message_is_not_acknowledged_before_its_transaction_commits(
    cloud_db: CloudDb, ingest_settings: Settings, publish: Publish
) -> None:
    if not cloud_db.settings.database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's write lock to make the database unavailable")
    school = cloud_db.school_ids[0]
    impatient = make_engine(cloud_db.settings.database_url, sqlite_busy_timeout_s=0.1)
    blocker = make_engine(cloud_db.settings.database_url).connect()
    try:
        with running(ingest_settings, cloud_db, engine=impatient) as worker:
            blocker.execute(text("BEGIN IMMEDIATE"))
            publish(telemetry_topic(school), encode(make_batch(school, [pv_sample(1, NOW_MS, 1.0)])))
            time.sleep(1.0)
            assert worker.report.messages == 0
        # Stopped while the database was locked: the message was never acknowledged.
        blocker.execute(text("ROLLBACK"))
    finally:
        blocker.close()
        impatient.dispose()
    assert rows(cloud_db, SampleRow, SampleRow.school_id == school) == 0
    with running(ingest_settings, cloud_db):
        wait_until(
            lambda: rows(cloud_db, SampleRow, SampleRow.school_id == school) == 1, what="the redelivery"
        )
