"""The ingest worker against a real Mosquitto on both databases: two workers of one group share the telemetry
and the events (shared subscriptions), each message stored by exactly one of them; and random payloads thrown
at a running worker (hypothesis) leave it running with every valid reading stored and every fault a dead
letter."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.ingest.stats import LagHistogram
from cloud.ingest.worker import IngestWorker
from cloud.settings import Settings
from common.broker import parse_broker_url
from common.mqtt import make_client
from common.wire import (
    MAX_PAYLOAD_BYTES,
    Channel,
    DeviceKind,
    HealthEvent,
    Sample,
    Severity,
    TelemetryBatch,
    encode,
    school_topic,
)
from tests import servers
from tests.ingest.conftest import NOW_MS, IngestDb, unique_id, wait_until
from tests.ingest.load import SchoolStream

pytestmark = pytest.mark.integration
Q = 15 * 60 * 1000
DAY_MS = 86_400_000


@contextmanager
def running(settings: Settings, db: IngestDb) -> Iterator[IngestWorker]:
    worker = IngestWorker(settings, db.clock)
    worker.start()
    try:
        assert worker.wait_subscribed(10), "the ingest did not subscribe"
        yield worker
    finally:
        worker.stop()


class Sender:
    """A QoS 1 publisher that waits for the broker's acknowledgement of each message."""

    def __init__(self, broker: servers.Broker) -> None:
        self.client = make_client(parse_broker_url(broker.url), unique_id("publisher-"))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sender(broker: servers.Broker) -> Iterator[Sender]:
    publisher = Sender(broker)
    try:
        yield publisher
    finally:
        publisher.close()


def test_two_workers_of_a_group_share_the_messages_and_store_each_once(
    ingest_db: IngestDb, broker: servers.Broker, sender: Sender
) -> None:
    base = ingest_db.settings.model_copy(update={"mqtt_url": broker.url})
    first = base.model_copy(update={"ingest_client_id": unique_id("w1-")})
    second = base.model_copy(update={"ingest_client_id": unique_id("w2-")})
    schools = [
        SchoolStream(school_id, "0a1b2c3d", NOW_MS - 8 * Q, offset=index)
        for index, school_id in enumerate(ingest_db.school_ids)
    ]
    polls = 60
    with running(first, ingest_db) as one, running(second, ingest_db) as two:
        for poll in range(polls):
            for school in schools:
                sender.send(school.topic, encode(school.batch(poll)))
        for seq in range(1, 21):
            health = HealthEvent(
                school=schools[0].school_id,
                stream="e0e0e0e0",
                seq=seq,
                code="device_unreachable",
                severity=Severity.WARNING,
                active=seq % 2 == 1,
                ts_ms=NOW_MS - 1000 * (21 - seq),
                message_pl="Licznik nie odpowiada.",
            )
            sender.send(school_topic(schools[0].school_id, Channel.EVENTS), encode(health))
        expected = polls * len(schools) * 2
        wait_until(
            lambda: (
                ingest_db.scalar("SELECT COUNT(*) FROM samples") == expected
                and ingest_db.scalar("SELECT COUNT(*) FROM events") == 20
            ),
            timeout_s=30,
            what="every sample and event stored",
        )
        wait_until(lambda: one.report.messages + two.report.messages == polls * 2 + 20, what="all counted")
        reports = [one.report, two.report]
    total = polls * len(schools) + 20
    for report in reports:
        # Mosquitto hands the group's messages out in turn.
        assert 0.35 * total <= report.messages <= 0.65 * total
    assert sum(report.samples_stored for report in reports) == expected
    assert sum(report.duplicates for report in reports) == 0
    assert sum(report.events_stored for report in reports) == 20
    counted = ingest_db.rows("SELECT SUM(samples), SUM(events), SUM(messages) FROM ingest_workers")[0]
    assert tuple(int(value) for value in counted) == (expected, 20, total)  # type: ignore[call-overload]
    states = ingest_db.rows("SELECT active FROM event_states")
    assert [bool(row[0]) for row in states] == [False]


def test_writers_side_by_side_store_a_backlog_once_and_acknowledge_all_of_it(
    ingest_db: IngestDb, broker: servers.Broker, sender: Sender, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ingest_db.settings.model_copy(update={"mqtt_url": broker.url, "ingest_batch_messages": 25})
    schools = [
        SchoolStream(school_id, "0a1b2c3d", NOW_MS - 8 * Q, offset=index)
        for index, school_id in enumerate(ingest_db.school_ids)
    ]
    with running(settings, ingest_db):
        pass  # the session exists: the broker keeps what comes while the ingest is away
    polls = 200
    for poll in range(polls):
        for school in schools:
            sender.send(school.topic, encode(school.batch(poll)))
    expected = polls * len(schools) * 2
    with caplog.at_level(logging.INFO, logger="cloud.ingest.worker"), running(settings, ingest_db) as worker:
        wait_until(
            lambda: ingest_db.scalar("SELECT COUNT(*) FROM samples") == expected,
            timeout_s=60,
            what="every sample stored",
        )
        wait_until(lambda: worker.report.messages == polls * len(schools), what="every message counted")
    writers = 2 if ingest_db.url.startswith("postgresql") else 1
    assert f"{writers} writers" in caplog.text
    samples, transactions, histogram = ingest_db.rows(
        "SELECT samples, transactions, lag_histogram FROM ingest_workers WHERE client_id = :id",
        id=settings.ingest_client_id,
    )[0]
    assert samples == expected
    assert transactions >= polls * len(schools) // 25  # type: ignore[operator]
    # Every live sample's lag is in the histogram, whichever writer stored it.
    stored = json.loads(histogram) if isinstance(histogram, str) else histogram
    assert sum(LagHistogram.from_json(stored).counts.values()) == expected  # type: ignore[arg-type]
    # Everything was acknowledged: the resumed session has nothing to deliver again.
    with running(settings, ingest_db) as again:
        time.sleep(1.0)
        assert again.report.messages == 0


# Random payloads at a running worker


@dataclass
class Expected:
    """What a generated message must leave in the store."""

    samples: dict[tuple[str, int], dict[str, float | None]] = field(default_factory=dict)
    dead_letters: int = 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
quantities = st.sampled_from(["power_w", "energy_wh", "voltage_l1_v", "frequency_hz", "operating_state"])
good_values = {
    "power_w": st.floats(-1000, 60_000),
    "energy_wh": st.floats(0, 1e9),
    "voltage_l1_v": st.floats(0, 400),
    "frequency_hz": st.floats(45, 55),
    "operating_state": st.integers(1, 8).map(float),
}
bad_values = {
    "power_w": st.sampled_from([2e6, -1e7, math.nan, math.inf]),
    "energy_wh": st.sampled_from([-5.0, 1e13, math.nan]),
    "voltage_l1_v": st.sampled_from([-1.0, 1e5, math.nan]),
    "frequency_hz": st.sampled_from([500.0, -math.inf]),
    "operating_state": st.sampled_from([math.nan, 1e16]),
}


@st.composite
def sample_values(draw: st.DrawFn) -> tuple[dict[str, float | None], dict[str, float | None], bool]:
    """(values sent, values to be stored, whether some were refused)."""
    names = draw(st.lists(quantities, min_size=1, max_size=5, unique=True))
    sent: dict[str, float | None] = {}
    kept: dict[str, float | None] = {}
    refused = False
    for name in names:
        kind = draw(st.sampled_from(["good", "good", "good", "null", "bad"]))
        if kind == "good":
            sent[name] = kept[name] = draw(good_values[name])
        elif kind == "null":
            sent[name] = kept[name] = None
        else:
            sent[name], kept[name], refused = draw(bad_values[name]), None, True
    return sent, kept, refused


@st.composite
def messages(
    draw: st.DrawFn, school: str, other: str, stream: str
) -> tuple[list[tuple[str, bytes]], Expected]:
    """A handful of messages on the school's telemetry topic, good and bad, and what they must leave."""
    expected = Expected()
    out: list[tuple[str, bytes]] = []
    topic = school_topic(school, Channel.TELEMETRY)
    seq = draw(st.integers(1, 10**6)) * 1000
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["batch", "batch", "batch", "junk", "json", "school", "oversized"]))
        if kind == "junk":
            out.append((topic, draw(st.binary(max_size=200))))
            expected.dead_letters += 1
        elif kind == "json":
            out.append((topic, json.dumps(draw(json_values)).encode()))
            expected.dead_letters += 1
        elif kind == "oversized":
            out.append((topic, b'{"v": 1, "samples": [' + b"1," * (MAX_PAYLOAD_BYTES // 2) + b"1]}"))
            expected.dead_letters += 1
        else:
            wrong_school = kind == "school"
            samples = []
            for _ in range(draw(st.integers(1, 5))):
                seq += 1
                sent, kept, refused = draw(sample_values())
                when = draw(st.sampled_from(["now", "now", "now", "future", "past"]))
                offsets = {
                    "now": -draw(st.integers(0, 3600_000)),
                    "future": 3 * DAY_MS,
                    "past": -500 * DAY_MS,
                }
                samples.append(
                    Sample(
                        seq=seq,
                        device="inverter",
                        kind=DeviceKind.PV_INVERTER,
                        ts_ms=NOW_MS + offsets[when],
                        values=sent,
                    )
                )
                if wrong_school:
                    continue
                if when != "now":
                    expected.dead_letters += 1
                else:
                    expected.samples[(stream, seq)] = kept
                    expected.dead_letters += int(refused)
            if wrong_school:
                expected.dead_letters += 1
            batch = TelemetryBatch(
                school=other if wrong_school else school, stream=stream, sent_ms=NOW_MS, samples=samples
            )
            # NaN and infinity as bare words, as careless senders write them.
            out.append((topic, json.dumps(batch.model_dump(mode="python")).encode()))
    return out, expected


def test_random_payloads_leave_the_worker_running_and_every_valid_reading_stored(
    ingest_db: IngestDb, broker: servers.Broker, sender: Sender
) -> None:
    if not ingest_db.url.startswith("sqlite"):
        pytest.skip("the store's behaviour is the same on PostgreSQL (tests/ingest/test_store.py)")
    school, other = ingest_db.school_ids
    settings_ = ingest_db.settings.model_copy(update={"mqtt_url": broker.url})
    counter = iter(range(10**6))
    seen = Expected()
    with running(settings_, ingest_db) as worker:

        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(st.data())
        def check(data: st.DataObject) -> None:
            stream = f"{next(counter):08x}"
            out, expected = data.draw(messages(school, other, stream))
            letters_before = int(ingest_db.scalar("SELECT COUNT(*) FROM dead_letters") or 0)
            handled_before = worker.report.messages
            for topic, payload in out:
                sender.send(topic, payload)
            wait_until(
                lambda: worker.report.messages >= handled_before + len(out), what="every message handled"
            )
            stored = {
                (str(row[0]), int(row[1])): json.loads(row[2]) if isinstance(row[2], str) else row[2]
                for row in ingest_db.rows(
                    'SELECT stream, seq, "values" FROM samples WHERE school_id = :s AND stream = :stream',
                    s=school,
                    stream=stream,
                )
            }
            assert stored == expected.samples
            letters = int(ingest_db.scalar("SELECT COUNT(*) FROM dead_letters") or 0) - letters_before
            assert letters == expected.dead_letters
            seen.samples.update(expected.samples)
            seen.dead_letters += letters

        check()
        # The examples did throw both kinds at it (hypothesis favours small examples: 30 of them have held
        # from 24 valid readings and 84 dead letters upwards).
        assert len(seen.samples) >= 10 and seen.dead_letters >= 10
        # Still running: a plain message after all that is stored.
        sender.send(
            school_topic(school, Channel.TELEMETRY),
            encode(SchoolStream(school, "ffffffff", NOW_MS - Q).batch(0)),
        )
        wait_until(
            lambda: ingest_db.scalar("SELECT COUNT(*) FROM samples WHERE stream = 'ffffffff'") == 2,
            what="the plain message stored",
        )
