"""The publisher's backlog lane: a random start delay, then no faster than its rate, oldest first, flagged as
backfill, against a real Mosquitto."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from common.broker import parse_broker_url
from common.clock import SystemClock
from common.wire import Severity
from edge.outbox import NewEvent, NewSample, Outbox
from edge.publisher import Publisher, PublisherSettings
from tests import servers
from tests.edge.conftest import Collector, refuse_writes, wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BACKLOG = 1200
RATE = 400.0
BATCH = 100


def test_the_backlog_waits_a_random_delay_then_keeps_to_its_rate(
    broker: servers.Broker, tmp_path: Path
) -> None:
    box = Outbox(tmp_path / "outbox.db")
    hour_ago = SystemClock().now_ms() - 3_600_000
    box.append(
        [NewSample("meter", "grid_meter", hour_ago + i, {"power_w": float(i)}) for i in range(BACKLOG)]
    )
    collector = Collector(broker.url, "pm7", client_id=f"pace-{tmp_path.name}")
    settings = PublisherSettings(
        backfill_samples_per_s=RATE, backfill_batch_size=BATCH, backfill_delay_max_s=1.5
    )
    delay_s = random.Random(7).uniform(0.0, settings.backfill_delay_max_s)

    async def publish() -> float:
        publisher = Publisher(
            "pm7", box, parse_broker_url(broker.url), SystemClock(), settings, rng=random.Random(7)
        )
        stop = asyncio.Event()
        publisher.start()
        running = asyncio.create_task(publisher.run(stop))
        await wait_until(lambda: publisher.connected, 10, "the broker")
        connected_at = time.monotonic()
        await wait_until(lambda: box.count() == 0, 20, "the backlog")
        stop.set()
        await running
        await publisher.stop()
        return connected_at

    try:
        connected_at = asyncio.run(publish())
        wait_for(lambda: len(collector.seqs()) >= BACKLOG, 10, "the samples")
    finally:
        collector.close()
    assert all(batch.backfill for batch in collector.batches), "an hour-old backlog is backfill"
    assert collector.seqs() == list(range(1, BACKLOG + 1)), "oldest first, each once"
    assert all(len(batch.samples) <= BATCH for batch in collector.batches)
    started, finished = collector.arrivals[0], collector.arrivals[-1]
    assert started - connected_at >= delay_s - 0.05, "the replay waits its random delay"
    # A full batch goes at once, the rest at the rate.
    assert finished - started >= (BACKLOG - BATCH) / RATE - 0.1
    assert finished - started < (BACKLOG - BATCH) / RATE + 2.0


def test_a_message_never_acknowledged_is_offered_again(
    broker: servers.Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.publisher

    monkeypatch.setattr(edge.publisher, "INFLIGHT_EXPIRY_S", 0.3)
    collector = Collector(broker.url, "pm8", client_id=f"lost-{tmp_path.name}")
    box = Outbox(tmp_path / "outbox.db")
    now = SystemClock().now_ms()
    box.append([NewSample("meter", "grid_meter", now, {"power_w": 1.0})])

    async def scenario() -> list[int]:
        publisher = Publisher("pm8", box, parse_broker_url(broker.url), SystemClock(), PublisherSettings())
        offered: list[int] = []
        real_publish = publisher._client.publish

        def losing_the_first(topic: str, payload: bytes, **options: object) -> object:
            if not topic.endswith("/telemetry"):
                return real_publish(topic, payload, **options)  # type: ignore[arg-type]
            offered.append(len(offered))
            if len(offered) == 1:
                # The first telemetry message vanishes, as if paho had lost it: no PUBACK will ever come.
                return type("Lost", (), {"mid": 65_000})()
            return real_publish(topic, payload, **options)  # type: ignore[arg-type]

        publisher._client.publish = losing_the_first  # type: ignore[method-assign,assignment]
        stop = asyncio.Event()
        publisher.start()
        running = asyncio.create_task(publisher.run(stop))
        await wait_until(lambda: box.count() == 0, 10, "the sample to be acknowledged after all")
        stop.set()
        await running
        await publisher.stop()
        return offered

    try:
        assert len(asyncio.run(scenario())) == 2, "offered again after the expiry, once"
    finally:
        collector.close()


def test_a_message_no_one_subscribed_to_stays_in_the_outbox_until_someone_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a broker restart Mosquitto has no ingest subscription until the workers subscribe again; it
    acknowledges with "No matching subscribers", and the rows must not be dropped from the outbox."""
    import edge.publisher

    monkeypatch.setattr(edge.publisher, "NO_SUBSCRIBER_PAUSE_S", 0.2)
    box = Outbox(tmp_path / "outbox.db")
    now = SystemClock().now_ms()
    box.append([NewSample("meter", "grid_meter", now + i, {"power_w": float(i)}) for i in range(3)])
    collectors: list[Collector] = []

    async def scenario(broker_url: str) -> None:
        publisher = Publisher("pm9", box, parse_broker_url(broker_url), SystemClock(), PublisherSettings())
        stop = asyncio.Event()
        publisher.start()
        running = asyncio.create_task(publisher.run(stop))
        try:
            await wait_until(lambda: publisher.connected, 10, "the broker")
            await asyncio.sleep(1.5)  # several offers, each answered "No matching subscribers"
            assert box.count() == 3, "nobody has the rows yet: they stay"
            collectors.append(Collector(broker_url, "pm9", client_id=f"late-{tmp_path.name}"))
            await wait_until(lambda: box.count() == 0, 10, "the rows, once someone subscribed")
        finally:
            stop.set()
            await running
            await publisher.stop()

    # A broker of its own: on the session's broker, other tests' persistent sessions are subscribers too.
    with servers.mosquitto(tmp_path / "mosquitto") as broker:
        try:
            asyncio.run(scenario(broker.url))
            wait_for(lambda: len(collectors[0].seqs()) >= 3, 10, "the samples")
            assert collectors[0].seqs() == [1, 2, 3]
        finally:
            for collector in collectors:
                collector.close()


def test_after_the_outbox_moves_to_memory_the_cards_acknowledgements_touch_nothing_there(
    broker: servers.Broker, tmp_path: Path
) -> None:
    """The card fails while a message of its rows is in flight: its acknowledgement, arriving after the
    outbox moved to memory, must not remove the row of the same number there, and the lanes start afresh."""
    collector = Collector(broker.url, "pm9", client_id=f"moved-{tmp_path.name}")
    box = Outbox(tmp_path / "outbox.db")
    now = SystemClock().now_ms()
    box.append([NewSample("meter", "grid_meter", now, {"power_w": 1.0})])
    card_stream = box.stream

    async def scenario() -> None:
        publisher = Publisher("pm9", box, parse_broker_url(broker.url), SystemClock(), PublisherSettings())
        real_publish = publisher._client.publish

        def failing_the_card_after_the_first(topic: str, payload: bytes, **options: object) -> object:
            sent = real_publish(topic, payload, **options)  # type: ignore[arg-type]
            if topic.endswith("/telemetry") and box.failure is None:
                refuse_writes(box)
                box.append([NewSample("meter", "grid_meter", now + 1, {"power_w": 2.0})])
            return sent

        publisher._client.publish = failing_the_card_after_the_first  # type: ignore[method-assign,assignment]
        stop = asyncio.Event()
        publisher.start()
        running = asyncio.create_task(publisher.run(stop))
        await wait_until(lambda: box.failure is not None and box.count() == 0, 10, "the memory's sample sent")
        stop.set()
        await running
        await publisher.stop()

    try:
        asyncio.run(scenario())
        wait_for(lambda: len(collector.seqs()) >= 2, 10, "both samples")
    finally:
        collector.close()
    received = [
        (batch.stream == card_stream, sample.ts_ms) for batch in collector.batches for sample in batch.samples
    ]
    # The card's sample goes again from the card (its acknowledgement could not remove it there; the cloud
    # drops the copy); memory's goes once.
    assert received[:2] == [(True, now), (False, now + 1)] and set(received[2:]) <= {(True, now)}


def test_what_waited_on_the_card_when_it_failed_is_sent_from_it_under_its_stream(
    broker: servers.Broker, tmp_path: Path
) -> None:
    """A school offline when its card fails: the backlog on the card is still read from it and sent as
    backfill under the card's stream, beside what the outbox keeps in memory from then on."""
    collector = Collector(broker.url, "pm10", client_id=f"card-{tmp_path.name}")
    box = Outbox(tmp_path / "outbox.db")
    hour_ago = SystemClock().now_ms() - 3_600_000
    box.append([NewSample("meter", "grid_meter", hour_ago + i, {"power_w": float(i)}) for i in range(300)])
    box.append_events([NewEvent(None, "clock_jump", Severity.WARNING, True, hour_ago, "Zegar przeskoczył.")])
    card_stream = box.stream
    refuse_writes(box)
    box.append([NewSample("meter", "grid_meter", hour_ago + 3_600_000, {"power_w": 1.0})])
    settings = PublisherSettings(backfill_samples_per_s=0, backfill_delay_max_s=0)

    async def scenario() -> int:
        publisher = Publisher("pm10", box, parse_broker_url(broker.url), SystemClock(), settings)
        stop = asyncio.Event()
        publisher.start()
        running = asyncio.create_task(publisher.run(stop))
        await wait_until(lambda: publisher.acknowledged_from_card >= 301, 10, "the card's rows")
        await wait_until(lambda: box.count() == 0, 10, "the sample in memory")
        stop.set()
        await running
        await publisher.stop()
        return publisher.acknowledged_from_card

    try:
        assert asyncio.run(scenario()) == 301, "each of the card's rows sent once while the agent runs"
        wait_for(lambda: len(collector.seqs()) >= 301 and collector.events, 10, "everything on the broker")
    finally:
        collector.close()
    from_card = [s.seq for b in collector.batches if b.stream == card_stream for s in b.samples]
    assert from_card == list(range(1, 301)) and all(
        b.backfill for b in collector.batches if b.stream == card_stream
    )
    assert [(b.stream, [s.seq for s in b.samples]) for b in collector.batches if b.stream != card_stream] == [
        (box.stream, [1])
    ]
    assert [(e.stream, e.code) for e in collector.events] == [(card_stream, "clock_jump")]
