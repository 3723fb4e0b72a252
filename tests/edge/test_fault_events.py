"""Every device fault injected into the simulators becomes a health event on the school's events topic of a
real Mosquitto within two poll periods, and clears when the device recovers; so does a clock jump.

The agent polls simulated devices over real Modbus TCP, on a manual clock that the test moves one poll period
at a time; the events arrive through the outbox and the publisher, as in a school.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from common.broker import parse_broker_url
from common.clock import ManualClock
from common.sites import Site
from edge.agent import EdgeAgent, build_pollers
from edge.modbus.link import LinkSettings
from edge.outbox import NewEvent, Outbox
from edge.publisher import PublisherSettings
from simulators.devices.huawei_sun2000 import HuaweiSun2000
from simulators.devices.sunspec_inverter import SunSpecInverter
from simulators.server import SiteSimulator
from tests import servers
from tests.conftest import PROFILES_DIR
from tests.edge.conftest import NOON_MS, Collector, device, running, school, wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PERIOD_MS = 10_000


@dataclass
class Rig:
    """An agent, its simulated devices and the moments it has polled."""

    agent: EdgeAgent
    simulator: SiteSimulator
    clock: ManualClock
    skew_ms: list[int]
    raised: list[tuple[int, NewEvent]] = field(default_factory=list)
    polls: int = 0

    async def poll(self) -> None:
        self.polls += 1
        moment = NOON_MS + self.polls * PERIOD_MS
        await self.clock.advance_to(moment)
        await wait_until(lambda: self.agent.last_poll_ms >= moment, 10, f"poll {self.polls}")

    async def until(self, device: str | None, code: str, active: bool, max_polls: int) -> int:
        """Poll until the event (device, code, active) is committed; return how many polls it took."""
        for taken in range(1, max_polls + 1):
            await self.poll()
            if any((e.device, e.code, e.active) == (device, code, active) for _, e in self.raised):
                return taken
        raise AssertionError(
            f"{device} {code} active={active} not seen within {max_polls} polls: {self.raised}"
        )


def spy(rig: Rig) -> None:
    """Record every event the agent commits, with the poll it came in."""
    append = rig.agent.outbox.append_events

    def recording(events: list[NewEvent]) -> list[int]:
        rig.raised += [(rig.polls, event) for event in events]
        return append(events)

    rig.agent.outbox.append_events = recording  # type: ignore[method-assign]


async def inject(rig: Rig, action: Callable[[], object]) -> None:
    result = action()
    if asyncio.iscoroutine(result):
        await result


def test_every_injected_fault_becomes_an_event_and_clears(broker: servers.Broker, tmp_path: Path) -> None:
    site = school([device("inverter", "sunspec-inverter"), device("meter", "eastron-sdm630")])
    collector = Collector(broker.url, site.id, client_id=f"events-{tmp_path.name}")
    try:
        expected = asyncio.run(scenario(site, broker, tmp_path))
        wait_for(lambda: set(expected) <= set(collector.event_codes()), 15, "the events on the broker")
    finally:
        collector.close()
    received = [e for e in collector.events if e.school == site.id]
    assert [e.seq for e in received] == sorted({e.seq for e in received}), "each event once, in order"
    for event in received:
        assert event.message_pl and event.severity in ("info", "warning", "critical")


async def scenario(site: Site, broker: servers.Broker, tmp_path: Path) -> list[tuple[str | None, str, bool]]:
    clock = ManualClock(NOON_MS)
    skew_ms = [0]
    async with SiteSimulator(site, clock, seed=3) as simulator:
        pollers = build_pollers(site, PROFILES_DIR)
        for poller in pollers:
            poller.link.settings = LinkSettings(timeout_s=0.3)
        agent = EdgeAgent(
            site,
            pollers,
            Outbox(tmp_path / "outbox.db"),
            parse_broker_url(broker.url),
            clock,
            PublisherSettings(backfill_delay_max_s=0),
            reference_ms=lambda: clock.now_ms() + skew_ms[0],
        )
        rig = Rig(agent, simulator, clock, skew_ms)
        spy(rig)
        async with running(agent):
            await wait_until(
                lambda: agent.publisher is not None and agent.publisher.connected, 10, "the broker"
            )
            for _ in range(2):
                await rig.poll()
            assert rig.raised == [], "a healthy school raises nothing"
            seen = await faults(rig)
            await wait_until(lambda: agent.outbox.count_events() == 0, 15, "the events to be acknowledged")
            return seen


async def faults(rig: Rig) -> list[tuple[str | None, str, bool]]:
    sim = rig.simulator
    inverter, meter = sim.devices["inverter"], sim.devices["meter"]
    seen: list[tuple[str | None, str, bool]] = []

    async def case(
        device_id: str | None, code: str, start: Callable[[], object], stop: Callable[[], object]
    ) -> None:
        await inject(rig, start)
        assert await rig.until(device_id, code, True, 2) <= 2, f"{code} within two poll periods"
        await inject(rig, stop)
        await rig.until(device_id, code, False, 40)
        seen.extend([(device_id, code, True), (device_id, code, False)])

    def setter(obj: object, name: str, value: object) -> Callable[[], None]:
        return lambda: setattr(obj, name, value)

    await case(
        "meter",
        "device_unreachable",
        setter(meter.faults, "no_answer", True),
        setter(meter.faults, "no_answer", False),
    )
    await case(
        "meter", "device_slow", setter(meter.faults, "delay_s", 0.2), setter(meter.faults, "delay_s", 0.0)
    )
    await case(
        "meter",
        "device_refuses",
        setter(meter.faults, "exception", ExcCodes.DEVICE_BUSY),
        setter(meter.faults, "exception", None),
    )
    await case(
        "meter",
        "implausible_values",
        setter(meter.faults, "garbage", True),
        setter(meter.faults, "garbage", False),
    )
    await case(
        "inverter",
        "device_mismatch",
        setter(inverter.faults, "garbage", True),
        setter(inverter.faults, "garbage", False),
    )
    await case(
        "inverter",
        "inverter_fault",
        setter(inverter.faults, "fault_state", True),
        setter(inverter.faults, "fault_state", False),
    )
    assert ("inverter", "inverter_ground_fault", True) in [
        (e.device, e.code, e.active) for _, e in rig.raised
    ]
    await case(
        "inverter",
        "counter_backwards",
        setter(inverter.faults, "counter_reset_at_ms", rig.clock.now_ms()),
        lambda: None,
    )
    # A replaced inverter of the same brand: a new serial number, counters from zero.
    await case("inverter", "device_replaced", lambda: sim.swap("inverter"), lambda: None)
    # Another brand where a SunSpec inverter was: the profile no longer fits, until the SunSpec one is back.
    await case(
        "inverter",
        "device_mismatch",
        lambda: sim.swap("inverter", HuaweiSun2000),
        lambda: sim.swap("inverter", SunSpecInverter, serial="SIM-sp5-1-R"),
    )
    # The clock jumps an hour ahead of the monotonic time.
    await case(
        None, "clock_jump", lambda: rig.skew_ms.__setitem__(0, rig.skew_ms[0] - 3_600_000), lambda: None
    )
    return seen


class SettableClock(ManualClock):
    """A manual clock that can also be set back, as an NTP step does."""

    async def set_to(self, epoch_ms: int) -> None:
        async with self._changed:
            self._now_ms = epoch_ms
            self._changed.notify_all()
        await asyncio.sleep(0)


def test_a_clock_that_jumps_back_is_an_event_and_the_polls_realign(
    broker: servers.Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.agent

    monkeypatch.setattr(edge.agent, "MAX_SLEEP_S", 0.02)
    site = school([device("meter", "eastron-sdm630")])

    async def scenario() -> None:
        clock = SettableClock(NOON_MS)
        reference = [float(NOON_MS)]
        async with SiteSimulator(site, clock):
            box = Outbox(tmp_path / "outbox.db")
            agent = EdgeAgent(
                site, build_pollers(site, PROFILES_DIR), box, parse_broker_url(broker.url), clock,
                reference_ms=lambda: reference[0],
            )  # fmt: skip
            async with running(agent):
                moment = NOON_MS
                for step in range(6):
                    # Monotonic time moves a period a step; the clock too, except for one step an hour back.
                    reference[0] += PERIOD_MS
                    moment += PERIOD_MS - (3_600_000 if step == 2 else 0)
                    await clock.set_to(moment)
                    await wait_until(lambda m=moment: agent.last_poll_ms == m, 10, f"a poll at {moment}")
                await wait_until(lambda: box.count_events() == 0, 10, "the events to be sent")

    collector = Collector(broker.url, site.id, client_id=f"clock-{tmp_path.name}")
    try:
        asyncio.run(scenario())
        wait_for(lambda: (None, "clock_jump", False) in collector.event_codes(), 10, "the cleared jump")
    finally:
        collector.close()
    raised = next(e for e in collector.events if e.code == "clock_jump" and e.active)
    assert raised.details["jump_s"] == pytest.approx(-3600, abs=1)
    assert "przeskoczył o -3600 s" in raised.message_pl


def test_a_fault_raised_before_a_restart_is_cleared_by_the_next_run(
    broker: servers.Broker, tmp_path: Path
) -> None:
    """The meter stops answering, the agent raises it and stops (a power cut, an update); the meter is fixed
    meanwhile. The next run, on the same outbox, clears what the earlier one raised: the caretaker's screen
    and the city's alert do not keep a fault that is over."""
    site = school([device("meter", "eastron-sdm630")])

    async def run_agent(clock: ManualClock, simulator: SiteSimulator, act: Callable[[Rig], Any]) -> Rig:
        pollers = build_pollers(site, PROFILES_DIR)
        for poller in pollers:
            poller.link.settings = LinkSettings(timeout_s=0.3)
        box = Outbox(tmp_path / "outbox.db")
        agent = EdgeAgent(
            site, pollers, box, parse_broker_url(broker.url), clock, PublisherSettings(backfill_delay_max_s=0)
        )
        rig = Rig(agent, simulator, clock, [0])
        rig.polls = (clock.now_ms() - NOON_MS) // PERIOD_MS
        spy(rig)
        async with running(agent):
            await act(rig)
            await wait_until(lambda: box.count_events() == 0, 15, "the events to be acknowledged")
            return rig

    async def scenario() -> tuple[Rig, Rig]:
        clock = ManualClock(NOON_MS)
        async with SiteSimulator(site, clock, seed=4) as simulator:
            meter = simulator.devices["meter"]
            meter.faults.no_answer = True
            first = await run_agent(
                clock, simulator, lambda rig: rig.until("meter", "device_unreachable", True, 3)
            )
            meter.faults.no_answer = False
            second = await run_agent(
                clock, simulator, lambda rig: rig.until("meter", "device_unreachable", False, 3)
            )
            return first, second

    collector = Collector(broker.url, site.id, client_id=f"restart-{tmp_path.name}")
    try:
        first, second = asyncio.run(scenario())
        wait_for(lambda: len(collector.event_codes()) >= 3, 15, "the three events on the broker")
    finally:
        collector.close()
    assert [(e.code, e.active) for _, e in first.raised] == [("device_unreachable", True)]
    assert [(e.code, e.active) for _, e in second.raised] == [("device_unreachable", False)]
    # The first run's outbox was new: it says so first (the cloud clears what was raised before); the
    # second run's was not.
    assert collector.event_codes() == [
        (None, "outbox_created", False),
        ("meter", "device_unreachable", True),
        ("meter", "device_unreachable", False),
    ]
