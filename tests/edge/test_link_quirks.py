"""The device pace a profile asks for, against simulated devices that are slow and picky over real Modbus TCP:
a pause after connecting, a pause between requests, a smaller request, one connection for everything, closing
after each poll, backing off a device that keeps failing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes

from common.clock import ManualClock
from common.sites import Site
from edge.agent import build_pollers
from edge.modbus.link import DeviceLink, DeviceUnreachable, LinkSettings
from edge.modbus.profiles import Profile, load_profile
from edge.poller import MAX_SKIPPED_POLLS, DevicePoller
from simulators.server import SiteSimulator
from tests.conftest import PROFILES_DIR
from tests.edge.conftest import NOON_MS, device, school

pytestmark = pytest.mark.timeout(60)


def run(site: Site, scenario: Callable[[SiteSimulator], Awaitable[None]]) -> None:
    async def main() -> None:
        async with SiteSimulator(site, ManualClock(NOON_MS), seed=1) as simulator:
            await asyncio.wait_for(scenario(simulator), timeout=45)

    asyncio.run(main())


def poller(site: Site, device_id: str, profile: Profile) -> DevicePoller:
    chosen = next(d for d in site.devices if d.id == device_id)
    return DevicePoller(chosen, profile, DeviceLink(chosen.transport, LinkSettings.of(profile)))


def huawei(**changes: object) -> Profile:
    return load_profile(PROFILES_DIR, "huawei-sun2000").model_copy(update=changes)


def test_a_pause_after_connecting_lets_a_dongle_settle() -> None:
    site = school([device("inverter", "huawei-sun2000")])

    async def scenario(simulator: SiteSimulator) -> None:
        simulator.devices["inverter"].quirks.settle_after_connect_s = 0.3
        hasty = poller(site, "inverter", huawei(connect_delay_s=0.0, timeout_s=0.2))
        with pytest.raises(DeviceUnreachable):
            await hasty.poll()
        await hasty.link.aclose()
        patient = poller(site, "inverter", huawei(connect_delay_s=0.4, timeout_s=0.2))
        result = await patient.poll()
        assert result.values is not None and result.values["power_w"] is not None
        assert result.identity == {"model_name": "SUN2000-40KTL-M1", "serial_number": "SIM-sp5-1"}
        await patient.link.aclose()
        assert simulator.stats("inverter").ignored_requests >= 1

    run(site, scenario)


def test_a_pause_between_requests_keeps_a_busy_device_answering() -> None:
    site = school([device("inverter", "huawei-sun2000")])

    async def scenario(simulator: SiteSimulator) -> None:
        simulator.devices["inverter"].quirks.min_request_interval_s = 0.15
        hurried = poller(site, "inverter", huawei(connect_delay_s=0.0, request_pause_s=0.0, timeout_s=1.0))
        await asyncio.sleep(0.2)
        result = await hurried.poll()
        assert [r.exception_code for r in result.refusals] == [ExcCodes.DEVICE_BUSY]
        await hurried.link.aclose()
        calm = poller(site, "inverter", huawei(connect_delay_s=0.0, request_pause_s=0.2, timeout_s=1.0))
        await asyncio.sleep(0.2)
        for _ in range(2):
            assert (await calm.poll()).refusals == []
        await calm.link.aclose()

    run(site, scenario)


def test_requests_stay_within_the_devices_limit() -> None:
    site = school([device("inverter", "huawei-sun2000")])

    async def scenario(simulator: SiteSimulator) -> None:
        assert simulator.devices["inverter"].quirks.max_registers_per_request == 64
        greedy = poller(
            site, "inverter", huawei(connect_delay_s=0, max_registers_per_request=125, max_gap_registers=60)
        )
        assert [b.count for b in greedy.plan] == [100]
        result = await greedy.poll()
        assert [r.exception_code for r in result.refusals] == [ExcCodes.ILLEGAL_VALUE]
        shipped = poller(site, "inverter", huawei(connect_delay_s=0))
        assert all(b.count <= 64 for b in shipped.plan)
        assert (await shipped.poll()).refusals == []
        for item in (greedy, shipped):
            await item.link.aclose()

    run(site, scenario)


def test_one_connection_serves_every_device_behind_a_gateway_even_after_a_failure() -> None:
    gateway = device("inverter", "sunspec-inverter").transport.port  # type: ignore[union-attr]
    site = school(
        [
            device("inverter", "sunspec-inverter", port=gateway),
            device("meter", "eastron-sdm630", port=gateway, unit=2),
        ]
    )

    async def scenario(simulator: SiteSimulator) -> None:
        for simulated in simulator.devices.values():
            simulated.quirks.max_connections = 1
        pollers = build_pollers(site, PROFILES_DIR)
        assert pollers[0].link is pollers[1].link
        pollers[0].link.settings = LinkSettings(timeout_s=0.3)
        for round_ in range(6):
            simulator.devices["meter"].faults.no_answer = round_ == 2
            outcomes = await asyncio.gather(*(p.poll() for p in pollers), return_exceptions=True)
            failed = [type(o).__name__ for o in outcomes if isinstance(o, BaseException)]
            assert failed == (["DeviceUnreachable"] if round_ == 2 else []), round_
        stats = simulator.stats("inverter")
        assert stats.most_open_connections == 1 and stats.refused_connections == 0
        assert stats.connections == 2, "one connection, and one more after the meter's timeout"
        await pollers[0].link.aclose()

        # Two links of their own, as a naive agent would open, meet a closed door.
        naive = [poller(site, d.id, load_profile(PROFILES_DIR, d.profile)) for d in site.devices]
        outcomes = await asyncio.gather(*(p.poll() for p in naive), return_exceptions=True)
        assert any(isinstance(o, DeviceUnreachable) for o in outcomes)
        assert stats.refused_connections >= 1
        for item in naive:
            await item.link.aclose()

    run(site, scenario)


def test_closing_after_each_poll() -> None:
    site = school([device("meter", "eastron-sdm630")])

    async def scenario(simulator: SiteSimulator) -> None:
        profile = load_profile(PROFILES_DIR, "eastron-sdm630")
        keeping = poller(site, "meter", profile)
        closing = poller(site, "meter", profile.model_copy(update={"close_after_poll": True}))
        for _ in range(3):
            await keeping.poll()
        assert keeping.link.connections == 1
        for _ in range(3):
            await closing.poll()
        assert closing.link.connections == 3
        await keeping.link.aclose()

    run(site, scenario)


def test_a_device_that_keeps_failing_is_backed_off_not_hammered() -> None:
    site = school([device("meter", "eastron-sdm630")])

    async def scenario(simulator: SiteSimulator) -> None:
        simulator.devices["meter"].faults.no_answer = True
        meter = poller(
            site, "meter", load_profile(PROFILES_DIR, "eastron-sdm630").model_copy(update={"timeout_s": 0.05})
        )
        polls = 40
        for _ in range(polls):
            with pytest.raises(DeviceUnreachable):
                await meter.poll()
        attempts = simulator.stats("meter").requests
        # Tries at polls 1, 2, then after skipping 1, 2, 4, 8, 16 polls: 7 attempts, not 40.
        assert attempts == 7, attempts
        simulator.devices["meter"].faults.no_answer = False
        await asyncio.sleep(0.1)
        outcomes = []
        for _ in range(MAX_SKIPPED_POLLS + 1):
            try:
                outcomes.append(await meter.poll())
            except DeviceUnreachable:
                continue
        assert outcomes and outcomes[-1].values is not None, "after recovery the device is read again"
        await meter.link.aclose()

    run(site, scenario)


def test_a_slow_answer_is_measured(tmp_path: Path) -> None:
    site = school([device("meter", "eastron-sdm630")])

    async def scenario(simulator: SiteSimulator) -> None:
        simulator.devices["meter"].faults.delay_s = 0.3
        meter = poller(site, "meter", load_profile(PROFILES_DIR, "eastron-sdm630"))
        result = await meter.poll()
        assert 0.3 <= result.slowest_s < 1.0 and result.values is not None
        await meter.link.aclose()

    run(site, scenario)
