"""Readings taken before the clock is synchronised (a Pi without a battery clock, booted with the time
fake-hwclock restored) are held in the outbox, not published, and stamped from the monotonic clock once the
clock is set: they reach the broker at the moments they were really taken, nothing lost or doubled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from common.broker import parse_broker_url
from common.clock import Clock
from common.wire import Severity
from edge import agent as agent_module
from edge.agent import EdgeAgent, build_pollers
from edge.health import HealthMonitor
from edge.outbox import NewSample, Outbox
from edge.publisher import PublisherSettings
from simulators.server import SiteSimulator
from tests import servers
from tests.conftest import PROFILES_DIR
from tests.edge.conftest import NOON_MS, Collector, device, running, school, wait_until
from tests.edge.test_fault_events import SettableClock

PERIOD_MS = 10_000
# The clock fake-hwclock restores after a power cut: the last time it saved, hours before.
BEHIND_MS = 4 * 3_600_000


SITE = school([device("meter", "eastron-sdm630")])


def meter_agent(box: Outbox, broker_url: str, clock: Clock, **options: Any) -> EdgeAgent:
    """The agent of a school with one meter (`SITE`)."""
    return EdgeAgent(
        SITE, build_pollers(SITE, PROFILES_DIR), box, parse_broker_url(broker_url), clock, **options
    )


def sample(ts_ms: int) -> NewSample:
    return NewSample("meter", "grid_meter", ts_ms, {"power_w": 1.0})


def test_held_samples_are_stamped_from_the_monotonic_clock_of_their_boot(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    # Taken at clock 1000 and 2000, the clock 500 ms from the monotonic one, in boot "a"; one in boot "b".
    box.hold([sample(1000), sample(2000)], 500.0, "a")
    box.hold([sample(3000)], 700.0, "b")
    assert (box.count_held(), box.pending(), box.stats()["held_samples"]) == (3, [], 3), "nothing to publish"
    box.close()
    box = Outbox(tmp_path / "outbox.db")
    # Synchronised: the clock now stands 4 h + 500 ms ahead of the monotonic clock of boot "a".
    assert box.release_held(BEHIND_MS + 500.0, "a") == (2, 1)
    assert [row.ts_ms for row in box.pending()] == [1000 + BEHIND_MS, 2000 + BEHIND_MS, 3000]
    assert box.count_held() == 0 and box.release_held(0.0, "a") == (0, 0), "released once"
    box.close()


def test_a_clock_not_synchronised_for_ten_minutes_is_reported_and_cleared_when_it_is() -> None:
    monitor = HealthMonitor()
    assert monitor.clock_sync_checked(0, 9 * 60_000) == []
    raised = monitor.clock_sync_checked(1000, 10 * 60_000)
    assert [(e.code, e.active, e.severity) for e in raised] == [
        ("clock_unsynchronized", True, Severity.WARNING)
    ]
    assert "od 10 min" in raised[0].message_pl and "czekają" in raised[0].message_pl
    assert monitor.clock_sync_checked(2000, 11 * 60_000) == []
    assert [(e.code, e.active) for e in monitor.clock_sync_checked(3000, None)] == [
        ("clock_unsynchronized", False)
    ]


def test_readings_before_the_clock_is_set_reach_the_broker_at_the_moments_they_were_taken(
    broker: servers.Broker, tmp_path: Path
) -> None:
    site = SITE
    synchronized = [False]

    async def scenario() -> tuple[list[int], list[int]]:
        # The clock starts 4 h behind; the monotonic clock runs on regardless (here: true time).
        clock = SettableClock(NOON_MS - BEHIND_MS)
        skew = [BEHIND_MS]
        async with SiteSimulator(site, clock):
            box = Outbox(tmp_path / "outbox.db")
            agent = meter_agent(
                box,
                broker.url,
                clock,
                publisher_settings=PublisherSettings(backfill_delay_max_s=0),
                reference_ms=lambda: clock.now_ms() + skew[0],
                clock_synchronized=lambda: synchronized[0],
                boot="boot-1",
            )
            async with running(agent):
                moment = clock.now_ms()
                for _ in range(3):
                    moment += PERIOD_MS
                    await clock.set_to(moment)
                    await wait_until(lambda m=moment: agent.last_poll_ms >= m, 10, "a poll before the sync")
                held_at = [row[0] for row in box._db.execute("SELECT ts_ms FROM held ORDER BY id")]
                assert (box.count(), len(held_at)) == (0, 3), "held, not published"
                # NTP sets the clock: it jumps 4 h ahead; the monotonic clock does not.
                synchronized[0] = True
                skew[0] = 0
                moment += BEHIND_MS + PERIOD_MS
                await clock.set_to(moment)
                await wait_until(lambda: len(collector.seqs()) >= 4, 10, "the four samples on the broker")
                return held_at, [moment]

    collector = Collector(broker.url, site.id, client_id=f"clock-hold-{tmp_path.name}")
    try:
        held_at, after = asyncio.run(scenario())
    finally:
        collector.close()
    received = [sample for batch in collector.batches for sample in batch.samples]
    assert [s.ts_ms for s in received] == [ts + BEHIND_MS for ts in held_at] + after
    assert len({s.seq for s in received}) == 4, "each once"
    assert ("meter", "device_unreachable", True) not in collector.event_codes()


def test_after_a_day_without_synchronisation_the_readings_go_out_with_the_clock_s_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A school whose NTP is blocked still delivers: after `MAX_HOLD_MS` the held readings keep their time."""
    monkeypatch.setattr(agent_module, "MAX_HOLD_MS", 2 * PERIOD_MS)
    site = SITE

    async def scenario() -> list[int]:
        clock = SettableClock(NOON_MS)
        async with SiteSimulator(site, clock):
            box = Outbox(tmp_path / "outbox.db")
            agent = meter_agent(
                box,
                "mqtt://127.0.0.1:1",
                clock,
                reference_ms=clock.now_ms,
                clock_synchronized=lambda: False,
            )
            counts = []
            for _ in range(4):
                await agent.poll_once()
                counts.append(box.count())
                await clock.set_to(clock.now_ms() + PERIOD_MS)
            box.close()
            return counts

    assert asyncio.run(scenario()) == [0, 0, 3, 4]
