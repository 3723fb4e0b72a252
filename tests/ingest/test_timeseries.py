"""The time-series sink against a real VictoriaMetrics, read back raw through its export API (without
deduplication, so a point written twice shows twice): every spooled line arrives once, an outage keeps
the lines in the outbox until the database returns, two senders never send the same row, and rows a dead
sender held are sent again by its successor."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from cloud.ingest import stats
from cloud.ingest.store import Message
from cloud.timeseries import lines as tsl
from cloud.timeseries import outbox
from cloud.timeseries.sink import SinkConfig, TimeseriesSink
from common.wire import encode
from tests.ingest.conftest import NOW_MS, IngestDb, wait_until
from tests.ingest.load import INVERTER_QUANTITIES, METER_QUANTITIES, SchoolStream
from tests.ingest.servers import VictoriaMetrics, raw_points, victoria_metrics

pytestmark = pytest.mark.integration
Q = 15 * 60 * 1000


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    with victoria_metrics(tmp_path / "vm") as server:
        yield server


def fleet_messages(school_ids: list[str], polls: int, first_poll: int = 0) -> list[Message]:
    """Every school's polls one message each, five minutes apart from two hours before NOW_MS."""
    schools = [
        SchoolStream(school_id, "0a1b2c3d", NOW_MS - 8 * Q, poll_period_ms=5 * 60 * 1000, offset=index)
        for index, school_id in enumerate(school_ids)
    ]
    return [
        Message(school.topic, encode(school.batch(poll, 1)), NOW_MS)
        for poll in range(first_poll, first_poll + polls)
        for school in schools
    ]


def drain(sink: TimeseriesSink) -> int:
    sent = 0
    while lines := sink.send_once():
        sent += lines
    return sent


def check_exactly_once(vm: VictoriaMetrics, school_ids: list[str], polls: int) -> None:
    """Every reading of every poll once, and every complete interval once."""
    points = raw_points(vm, "readings_.*")
    twice = {key: values for key, values in points.items() if len(values) != 1}
    assert not twice, f"points written more than once: {list(twice.items())[:5]}"
    expected = polls * len(school_ids) * (len(INVERTER_QUANTITIES) + len(METER_QUANTITIES))
    assert len(points) == expected
    schools_seen = {dict(labels)["school"] for _name, labels, _ts in points}
    assert schools_seen == set(school_ids)
    intervals = raw_points(vm, "energy_15min_pv_wh")
    assert all(len(values) == 1 for values in intervals.values())
    # Polls every 5 minutes from a boundary: interval k is complete once poll 3k + 3 is in.
    assert len(intervals) == len(school_ids) * ((polls - 1) // 3)
    assert {values[0] for values in intervals.values()} == {5000.0}


def test_line_protocol_writes_floats_bools_and_refuses_what_would_need_escaping() -> None:
    line = tsl.reading_line("sp5", "inverter", "pv_inverter", 1_000, {"power_w": 31250, "energy_wh": None})
    assert line == "readings,school=sp5,device=inverter,kind=pv_inverter power_w=31250.0 1000"
    assert tsl.reading_line("sp5", "inverter", "pv_inverter", 1_000, {"power_w": None}) is None
    interval = tsl.interval_line(
        "sp5", 0, {"pv_wh": 1, "import_wh": 2.5, "export_wh": 0, "consumption_wh": 3.5, "complete": True}
    )
    assert interval == (
        "energy_15min,school=sp5 pv_wh=1.0,import_wh=2.5,export_wh=0.0,consumption_wh=3.5,complete=true 0"
    )
    with pytest.raises(tsl.LineError):
        tsl.line("readings", {"school": "a b"}, {"power_w": 1.0}, 0)
    with pytest.raises(tsl.LineError):
        tsl.line("readings", {"school": "a"}, {"power=w": 1.0}, 0)


def test_spooled_lines_reach_the_database_once(ingest_db: IngestDb, vm: VictoriaMetrics) -> None:
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)
    store = ingest_db.store(timeseries=True, worker_id="w1", timeseries_batch_lines=7)
    messages = fleet_messages(ingest_db.school_ids, polls=10)
    for start in range(0, len(messages), 3):
        store.store(messages[start : start + 3])
        # Delivered again: nothing new to write.
        store.store(messages[start : start + 3])
    sink = TimeseriesSink(ingest_db.engine, SinkConfig(vm.url, batch_lines=20), "w1", "w1")
    sent = drain(sink)
    assert sent == 20 * 2 + 2 * 3
    with ingest_db.engine.connect() as connection:
        assert outbox.depth(connection).rows == 0
    assert ingest_db.scalar("SELECT timeseries_lines FROM ingest_workers WHERE client_id = 'w1'") == sent
    check_exactly_once(vm, ingest_db.school_ids, polls=10)


def test_an_outage_keeps_the_lines_until_the_database_returns(
    ingest_db: IngestDb, vm: VictoriaMetrics
) -> None:
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)
    store = ingest_db.store(timeseries=True, worker_id="w1")
    messages = fleet_messages(ingest_db.school_ids, polls=12)
    sink = TimeseriesSink(ingest_db.engine, SinkConfig(vm.url, timeout_s=2.0), "w1", "w1")
    sink.start()
    try:
        store.store(messages[:8])
        sink.wake()
        wait_until(
            lambda: ingest_db.scalar("SELECT COUNT(*) FROM timeseries_outbox") == 0,
            what="the first lines sent",
        )
        vm.stop()
        for start in range(8, len(messages), 4):
            store.store(messages[start : start + 4])
            sink.wake()
        wait_until(
            lambda: int(ingest_db.scalar("SELECT timeseries_failures FROM ingest_workers") or 0) >= 1,
            what="a failed write",
        )
        waiting = ingest_db.scalar("SELECT SUM(lines) FROM timeseries_outbox")
        assert waiting is not None and int(waiting) > 0
        vm.start()
        wait_until(
            lambda: ingest_db.scalar("SELECT COUNT(*) FROM timeseries_outbox") == 0,
            timeout_s=45,
            what="the outbox drained after the outage",
        )
    finally:
        sink.stop()
    check_exactly_once(vm, ingest_db.school_ids, polls=12)


def test_two_senders_never_send_the_same_row(ingest_db: IngestDb, vm: VictoriaMetrics) -> None:
    store = ingest_db.store(timeseries=True, timeseries_batch_lines=3)
    messages = fleet_messages(ingest_db.school_ids, polls=15)
    for start in range(0, len(messages), 2):
        store.store(messages[start : start + 2])
    sinks = [TimeseriesSink(ingest_db.engine, SinkConfig(vm.url, batch_lines=4), name) for name in ("a", "b")]
    sent: dict[str, int] = {}
    errors: list[BaseException] = []
    # Both claim their first batch together: else one thread may drain everything before the other starts.
    together = threading.Barrier(2, timeout=30)

    def run(sink: TimeseriesSink, name: str) -> None:
        # Until the outbox is empty, not until the first empty claim: while one sender's claim holds the
        # rows it looked at (PostgreSQL: FOR UPDATE SKIP LOCKED), the other finds nothing for a moment.
        try:
            together.wait()
            sent[name] = 0
            deadline = time.monotonic() + 60
            while ingest_db.scalar("SELECT COUNT(*) FROM timeseries_outbox") and time.monotonic() < deadline:
                sent[name] += sink.send_once()
        except BaseException as error:  # reported by the test below
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(sink, name)) for sink, name in zip(sinks, "ab", strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sent["a"] > 0 and sent["b"] > 0
    check_exactly_once(vm, ingest_db.school_ids, polls=15)


def test_rows_a_dead_sender_held_wait_for_its_lease_or_its_successor(
    ingest_db: IngestDb, vm: VictoriaMetrics
) -> None:
    store = ingest_db.store(timeseries=True)
    store.store(fleet_messages(ingest_db.school_ids, polls=4))
    # A sender took the rows and died before writing them.
    lease = outbox.claim(ingest_db.engine, "dead", now_ms=10**13, lease_ms=60_000)
    assert lease is not None and lease.lines == 4 * 2 * 2 + 2
    other = TimeseriesSink(ingest_db.engine, SinkConfig(vm.url), "other")
    assert other.send_once() == 0
    successor = TimeseriesSink(ingest_db.engine, SinkConfig(vm.url), "dead")
    assert outbox.release_own(ingest_db.engine, "dead") == 1
    assert drain(successor) == lease.lines
    check_exactly_once(vm, ingest_db.school_ids, polls=4)


def test_a_store_outage_between_the_write_and_the_deletion_writes_nothing_twice(
    ingest_db: IngestDb, vm: VictoriaMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relational store goes away just after the database accepted a batch, before its rows are deleted
    (what the PostgreSQL outage test hit once in CI): the sender deletes them first when the store returns,
    instead of leaving them leased and sending them again when the lease ends."""
    store = ingest_db.store(timeseries=True, timeseries_batch_lines=4)
    store.store(fleet_messages(ingest_db.school_ids, polls=6))
    real_sent = outbox.sent
    outage = [True]

    def store_gone_once(*args: object, **kwargs: object) -> int:
        if outage.pop() if outage else False:
            raise OperationalError(
                "DELETE FROM timeseries_outbox", {}, Exception("server closed the connection")
            )
        return real_sent(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "sent", store_gone_once)
    sink = TimeseriesSink(ingest_db.engine, SinkConfig(vm.url, batch_lines=4), "w1")
    with pytest.raises(OperationalError):
        sink.send_once()
    drain(sink)
    assert ingest_db.scalar("SELECT COUNT(*) FROM timeseries_outbox") == 0, "no row left leased to go again"
    check_exactly_once(vm, ingest_db.school_ids, polls=6)
