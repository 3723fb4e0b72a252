"""One school's edge agent: polls each device on the clock's grid, commits the samples to the outbox, and
lets the publisher carry them to the broker.

Polls are aligned to multiples of the site's poll period (10 s by default), so that a sample falls on every
15-minute boundary and the cloud's interval energies need no interpolation in the normal case. A poll that
runs late skips the moments it missed rather than bunching up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from common.broker import BrokerAddress
from common.clock import Clock
from common.config import ConfigError
from common.sites import Device, RtuTransport, Site, TcpTransport
from edge.modbus.link import DeviceLink, DeviceUnreachable
from edge.modbus.profiles import Profile, load_profile
from edge.outbox import NewSample, Outbox
from edge.poller import DevicePoller
from edge.publisher import Publisher

log = logging.getLogger(__name__)


def build_pollers(site: Site, profiles_dir: Path) -> list[DevicePoller]:
    """A poller per device; devices behind one address (a gateway, an RS-485 bus) share one link."""
    links: dict[TcpTransport | RtuTransport, DeviceLink] = {}
    pollers = []
    for device in site.devices:
        profile = load_profile(profiles_dir, device.profile)
        _check_kind(site, device, profile)
        link = links.get(device.transport)
        if link is None:
            link = links[device.transport] = DeviceLink(device.transport, profile.timeout_s)
        pollers.append(DevicePoller(device, profile, link))
    return pollers


def _check_kind(site: Site, device: Device, profile: Profile) -> None:
    if profile.kind != device.kind:
        raise ConfigError(
            f"site {site.id}: device {device.id!r} is a {device.kind.value} but profile {profile.name!r} "
            f"describes a {profile.kind.value}"
        )


@dataclass
class EdgeAgent:
    site: Site
    pollers: list[DevicePoller]
    outbox: Outbox
    broker: BrokerAddress
    clock: Clock
    # The time of the last completed poll, for tests and the status display.
    last_poll_ms: int = 0
    publisher: Publisher | None = None
    _reachable: dict[str, bool] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and publish until ``stop`` is set; then say offline and disconnect."""
        publisher = self.publisher = Publisher(self.site.id, self.outbox, self.broker, self.clock)
        publisher.start()
        log.info(
            "school %s: polling %d devices every %d s; %d samples waiting in the outbox",
            self.site.id,
            len(self.pollers),
            self.site.poll_period_s,
            self.outbox.count(),
        )
        sending = asyncio.create_task(publisher.run(stop))
        try:
            await self._poll_until(stop)
        finally:
            await sending
            await publisher.stop()
            for poller in self.pollers:
                poller.link.close()

    async def _poll_until(self, stop: asyncio.Event) -> None:
        period_ms = self.site.poll_period_s * 1000
        next_ms = -(-self.clock.now_ms() // period_ms) * period_ms
        while not stop.is_set():
            if not await self._sleep_until(next_ms, stop):
                return
            await self.poll_once()
            self.last_poll_ms = next_ms
            next_ms += period_ms
            now_ms = self.clock.now_ms()
            if next_ms <= now_ms:
                skipped = (now_ms - next_ms) // period_ms + 1
                log.warning("school %s: polling fell behind; skipping %d poll moments", self.site.id, skipped)
                next_ms += skipped * period_ms

    async def _sleep_until(self, moment_ms: int, stop: asyncio.Event) -> bool:
        """Wait for the moment; False if ``stop`` came first."""
        sleeper = asyncio.ensure_future(self.clock.sleep_until(moment_ms))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([sleeper, stopper], return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        stopper.cancel()
        return not stop.is_set()

    async def poll_once(self) -> list[int]:
        """Poll every device once, commit what was read to the outbox, and return the new row ids."""
        samples = [sample for sample in await asyncio.gather(*map(self._poll_device, self.pollers)) if sample]
        if not samples:
            return []
        ids = self.outbox.append(samples)
        if self.publisher is not None:
            self.publisher.wake()
        return ids

    async def _poll_device(self, poller: DevicePoller) -> NewSample | None:
        device = poller.device
        ts_ms = self.clock.now_ms()
        try:
            values = await poller.poll()
        except DeviceUnreachable as error:
            if self._reachable.get(device.id, True):
                log.warning("school %s: device %s unreachable: %s", self.site.id, device.id, error)
            self._reachable[device.id] = False
            return None
        if not self._reachable.get(device.id, True):
            log.info("school %s: device %s answers again", self.site.id, device.id)
        self._reachable[device.id] = True
        return NewSample(device=device.id, kind=device.kind.value, ts_ms=ts_ms, values=values)
