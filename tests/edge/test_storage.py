"""A card short of room for the outbox: the agent says so (a warning for the caretaker and the city) and
keeps polling; the outbox keeps within the room (tests/edge/test_outbox.py). A card that fails: the agent
goes on from memory and says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

from common.clock import ManualClock
from common.wire import Severity
from edge.agent import EdgeAgent
from edge.outbox import NewSample, Outbox, OutboxLimits, StorageFailure
from edge.publisher import PublisherSettings
from simulators.server import SiteSimulator
from tests import servers
from tests.edge.conftest import NOON_MS, Collector, Disk, FailingCard, running, wait_for, wait_until
from tests.edge.test_clock_hold import PERIOD_MS, SITE, meter_agent
from tests.edge.test_fault_events import SettableClock


def test_an_agent_on_a_card_short_of_room_raises_storage_low_and_clears_it_when_room_is_made(
    tmp_path: Path,
) -> None:
    limits = OutboxLimits(max_bytes=50_000_000, disk_reserve_bytes=6_000_000)
    disk = Disk(capacity_bytes=30_000_000)

    async def scenario() -> list[tuple[str, bool, Severity]]:
        clock = SettableClock(NOON_MS)
        async with SiteSimulator(SITE, clock):
            box = Outbox(tmp_path / "outbox.db", limits, disk.free)
            agent = meter_agent(box, "mqtt://127.0.0.1:1", clock)
            for capacity_bytes in (30_000_000, 120_000_000, 120_000_000):
                disk.capacity_bytes = capacity_bytes
                await agent.poll_once()
                await clock.set_to(clock.now_ms() + PERIOD_MS)
            events = [(e.code, e.active, e.severity) for e in box.pending_events() if e.code == "storage_low"]
            assert box.count() == 3, "the readings are kept"
            box.close()
            return events

    assert asyncio.run(scenario()) == [
        ("storage_low", True, Severity.WARNING),
        ("storage_low", False, Severity.WARNING),
    ]


# Bounds a 32 MB card can hold, so that only its failure is in question.
CARD_LIMITS = OutboxLimits(max_bytes=4_000_000, disk_reserve_bytes=1_000_000)
SETTINGS = PublisherSettings(backfill_delay_max_s=0)


async def poll_until(agent: EdgeAgent, clock: ManualClock, polls: range) -> None:
    """Move the clock to each of the poll moments and wait for the agent to poll."""
    for poll in polls:
        moment = NOON_MS + poll * PERIOD_MS
        await clock.advance_to(moment)
        await wait_until(lambda moment=moment: agent.last_poll_ms >= moment, 10, f"poll {poll}")


def test_an_agent_whose_card_fails_keeps_sending_from_memory_and_the_next_run_clears_it(
    broker: servers.Broker, failing_card: FailingCard
) -> None:
    """A real ext4 card goes read-only under the agent (as a worn SD card does): the agent keeps polling and
    sends every reading from memory under a new stream, raises ``storage_failed`` (critical), and the run
    after the card is repaired clears it."""
    path = failing_card.path / "outbox.db"

    async def scenario() -> tuple[StorageFailure | None, StorageFailure | None]:
        clock = ManualClock(NOON_MS)
        async with SiteSimulator(SITE, clock):
            agent = meter_agent(Outbox(path, CARD_LIMITS), broker.url, clock, publisher_settings=SETTINGS)
            async with running(agent):
                await poll_until(agent, clock, range(1, 4))
                await wait_until(lambda: agent.outbox.count() == 0, 10, "the card's samples acknowledged")
                failing_card.fail()
                await poll_until(agent, clock, range(4, 9))
                await wait_until(lambda: agent.outbox.count() == 0, 10, "the samples in memory acknowledged")
                first_failure = agent.outbox.failure
            await asyncio.to_thread(failing_card.repair)
            # Half a period on, so that the next run's first poll is the next moment, not the last one again.
            await clock.advance_to(NOON_MS + 8 * PERIOD_MS + PERIOD_MS // 2)
            agent = meter_agent(Outbox(path, CARD_LIMITS), broker.url, clock, publisher_settings=SETTINGS)
            async with running(agent):
                await poll_until(agent, clock, range(9, 12))
                await wait_until(
                    lambda: agent.outbox.count() == 0 and agent.outbox.count_events() == 0,
                    10,
                    "the samples and events acknowledged",
                )
                return first_failure, agent.outbox.failure

    collector = Collector(broker.url, SITE.id, client_id="failing-card")
    try:
        first_failure, second_failure = asyncio.run(scenario())
        wait_for(lambda: len(collector.seqs()) >= 11, 10, "every reading on the broker")
    finally:
        collector.close()
    assert (
        first_failure is not None and first_failure.name.startswith("SQLITE_IOERR") and second_failure is None
    )
    streams = [batch.stream for batch in collector.batches]
    card = streams[0]
    memory = next(stream for stream in streams if stream != card)
    received = sorted((sample.ts_ms, batch.stream) for batch in collector.batches for sample in batch.samples)
    assert received == [
        (NOON_MS + poll * PERIOD_MS, memory if 4 <= poll <= 8 else card) for poll in range(1, 12)
    ]
    storage = [(e.stream, e.active, e.severity) for e in collector.events if e.code == "storage_failed"]
    assert storage == [(memory, True, Severity.CRITICAL), (card, False, Severity.CRITICAL)]


def test_an_agent_started_on_a_failed_card_sends_what_waited_on_it_and_goes_on_from_memory(
    broker: servers.Broker, failing_card: FailingCard
) -> None:
    """The card failed while the school was offline (50 readings waiting on it), and the agent restarts on
    it: it reads the card's backlog and sends it under the card's stream, and polls on from memory."""
    path = failing_card.path / "outbox.db"
    earlier = Outbox(path, CARD_LIMITS)
    hour_ago = NOON_MS - 3_600_000
    earlier.append(
        [NewSample("meter", "grid_meter", hour_ago + i * PERIOD_MS, {"power_w": 1.0}) for i in range(50)]
    )
    card_stream = earlier.stream
    earlier.close()
    failing_card.fail()

    async def scenario() -> str:
        clock = ManualClock(NOON_MS)
        async with SiteSimulator(SITE, clock):
            agent = meter_agent(Outbox(path, CARD_LIMITS), broker.url, clock, publisher_settings=SETTINGS)
            assert agent.outbox.failure is not None, "the start's write to the card failed"
            async with running(agent):
                await poll_until(agent, clock, range(1, 4))
                await wait_until(
                    lambda: (
                        agent.publisher is not None
                        and agent.publisher.acknowledged_from_card >= 50
                        and agent.outbox.count() == 0
                    ),
                    10,
                    "the card's backlog and the readings in memory acknowledged",
                )
                return agent.outbox.stream

    collector = Collector(broker.url, SITE.id, client_id="failed-card-at-start")
    try:
        memory = asyncio.run(scenario())
        wait_for(lambda: len(collector.seqs()) >= 53, 10, "every reading on the broker")
    finally:
        collector.close()
    received = {
        stream: [(s.seq, s.ts_ms) for b in collector.batches if b.stream == stream for s in b.samples]
        for stream in (card_stream, memory)
    }
    assert received[card_stream] == [(i + 1, hour_ago + i * PERIOD_MS) for i in range(50)]
    assert received[memory] == [(poll, NOON_MS + poll * PERIOD_MS) for poll in (1, 2, 3)]
    assert [(e.stream, e.code, e.active) for e in collector.events] == [(memory, "storage_failed", True)]


def test_an_agent_on_a_damaged_outbox_file_begins_a_new_one_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"not SQLite at all" * 100)
    box = Outbox(path)
    meter_agent(box, "mqtt://127.0.0.1:1", ManualClock(NOON_MS))
    events = [(e.code, e.active, e.severity) for e in box.pending_events()]
    # The cloud clears what the school raised before (the new file knows nothing of it); the notice says why.
    assert events == [("outbox_created", False, Severity.INFO), ("outbox_damaged", False, Severity.WARNING)]
    assert box.set_aside is not None and box.set_aside.read_bytes() == b"not SQLite at all" * 100
    box.close()
