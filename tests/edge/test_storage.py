"""A card short of room for the outbox: the agent says so (a warning for the caretaker and the city) and
keeps polling; the outbox keeps within the room (tests/edge/test_outbox.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from common.wire import Severity
from edge.outbox import Outbox, OutboxLimits
from simulators.server import SiteSimulator
from tests.edge.conftest import NOON_MS, Disk
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
