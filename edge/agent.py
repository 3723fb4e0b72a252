"""One school's edge agent: polls each device on the clock's grid, commits the samples and the health events
to the outbox, and lets the publisher carry them to the broker.

Polls are aligned to multiples of the site's poll period (10 s by default), so that a sample falls on every
15-minute boundary and the cloud's interval energies need no interpolation in the normal case. A poll that
runs late skips the moments it missed rather than bunching up. Each connection has its own loop (a bridge),
so devices on different links are polled at the same time and a slow one holds up no other; devices sharing
a link (a gateway, an RS-485 bus) take turns on it.

Before each poll the agent compares how far its clock moved with how far the monotonic clock moved: a
difference means the clock jumped (an NTP step at boot, a wrong RTC), which is a health event; after a jump
backwards the poll grid is realigned instead of waiting for the old next moment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common.broker import BrokerAddress
from common.clock import Clock
from common.config import ConfigError
from common.sites import Device, RtuTransport, Site, TcpTransport
from edge.certificate import certificate_not_after_ms
from edge.health import HealthMonitor
from edge.modbus.link import DeviceLink, DeviceUnreachable, LinkSettings
from edge.modbus.profiles import Profile, load_profile
from edge.outbox import NewEvent, NewSample, Outbox
from edge.poller import DevicePoller, PollResult
from edge.publisher import Publisher, PublisherSettings

log = logging.getLogger(__name__)

# A clock that moves this much more or less than the monotonic clock between two polls has jumped [ms].
CLOCK_JUMP_TOLERANCE_MS = 30_000
# The longest real time the agent sleeps without looking at the clock again (to notice a jump back) [s].
MAX_SLEEP_S = 5.0
# How often the client certificate's expiry is compared with the clock [ms].
CERTIFICATE_CHECK_MS = 3_600_000
# How long readings wait for the clock to be synchronised before they go out with the time it shows [ms]:
# a day of readings is held at most, and a school whose NTP is blocked still delivers.
MAX_HOLD_MS = 24 * 3_600_000

Endpoint = tuple[str, int] | str


def endpoint(transport: TcpTransport | RtuTransport) -> Endpoint:
    """What one connection serves: a TCP host and port, or a serial line."""
    if isinstance(transport, TcpTransport):
        return (transport.host, transport.port)
    return transport.device


def build_pollers(site: Site, profiles_dir: Path) -> list[DevicePoller]:
    """A poller per device; devices at one endpoint (a gateway, an RS-485 bus) share one link.

    `ConfigError` with the reason for a profile that does not exist or does not validate, a profile of
    another kind of device, or one serial line given two different line settings.
    """
    profiles: dict[str, Profile] = {}
    for device in site.devices:
        profile = profiles.setdefault(device.id, _profile_of(site, device, profiles_dir))
        _check_kind(site, device, profile)
    transports: dict[Endpoint, TcpTransport | RtuTransport] = {}
    settings: dict[Endpoint, list[LinkSettings]] = {}
    for device in site.devices:
        key = endpoint(device.transport)
        known = transports.setdefault(key, device.transport)
        if known != device.transport:
            raise ConfigError(
                f"site {site.id}: device {device.id!r} uses serial line {key} with other settings than "
                f"another device on it ({known.model_dump()} vs {device.transport.model_dump()})"
            )
        settings.setdefault(key, []).append(LinkSettings.of(profiles[device.id]))
    links = {key: DeviceLink(transports[key], LinkSettings.strictest(settings[key])) for key in transports}
    return [
        DevicePoller(device, profiles[device.id], links[endpoint(device.transport)])
        for device in site.devices
    ]


def _profile_of(site: Site, device: Device, profiles_dir: Path) -> Profile:
    try:
        return load_profile(profiles_dir, device.profile)
    except ConfigError as error:
        raise ConfigError(f"site {site.id}: device {device.id!r}: {error}") from None


def _check_kind(site: Site, device: Device, profile: Profile) -> None:
    if profile.kind != device.kind:
        raise ConfigError(
            f"site {site.id}: device {device.id!r} is a {device.kind.value} but profile {profile.name!r} "
            f"describes a {profile.kind.value}"
        )


def monotonic_reference(clock: Clock) -> Callable[[], float] | None:
    """Monotonic time on the clock's scale [ms], or None for a clock that only moves when told (tests)."""
    speed = clock.speed
    if speed <= 0:
        return None
    return lambda: time.monotonic() * 1000.0 * speed


@dataclass
class Bridge:
    """The devices behind one link, polled in turn on the poll grid; one bridge per connection."""

    link: DeviceLink
    pollers: list[DevicePoller]
    last_poll_ms: int = 0


def bridges_of(pollers: list[DevicePoller]) -> list[Bridge]:
    grouped: dict[int, Bridge] = {}
    for poller in pollers:
        grouped.setdefault(id(poller.link), Bridge(poller.link, [])).pollers.append(poller)
    return list(grouped.values())


@dataclass
class EdgeAgent:
    site: Site
    pollers: list[DevicePoller]
    outbox: Outbox
    broker: BrokerAddress
    clock: Clock
    publisher_settings: PublisherSettings = field(default_factory=PublisherSettings)
    # Monotonic time on the clock's scale [ms]; None disables the clock-jump check. Default: from the clock.
    reference_ms: Callable[[], float] | None = None
    publisher: Publisher | None = None
    # Whether the system clock is synchronised yet (`edge.clock_sync`): until it is, samples are held and
    # stamped at synchronisation from the monotonic clock of ``boot``. None: the clock is always trusted.
    clock_synchronized: Callable[[], bool] | None = None
    boot: str = ""
    _last_check: tuple[int, float] | None = None
    _certificate_checked_ms: int | None = None
    _unsynchronized_since: float | None = None

    def __post_init__(self) -> None:
        if self.reference_ms is None:
            self.reference_ms = monotonic_reference(self.clock)
        self.bridges = bridges_of(self.pollers)
        self.health = HealthMonitor(self.site.location)
        self._holding = self.outbox.count_held() > 0
        self.certificate_not_after_ms = self._certificate_not_after_ms()
        now_ms = self.clock.now_ms()
        if self.outbox.created:
            self.outbox.append_events([self.health.outbox_created(now_ms)])
        if self.outbox.set_aside is not None:
            self.outbox.append_events([self.health.outbox_set_aside(now_ms, self.outbox.set_aside.name)])
        if not self.outbox.ended_cleanly:
            self.health.after_unclean_stop()
        devices = {device.id for device in self.site.devices}
        gone = self.health.restore(self.outbox.raised_conditions(), devices, now_ms)
        if gone:
            self.outbox.append_events(gone)

    @property
    def last_poll_ms(self) -> int:
        """The last poll moment every device has been polled for (tests and the status display)."""
        return min(bridge.last_poll_ms for bridge in self.bridges)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and publish until ``stop`` is set; then say offline and disconnect."""
        publisher = self.publisher = Publisher(
            self.site.id, self.outbox, self.broker, self.clock, self.publisher_settings
        )
        publisher.start()
        stats = self.outbox.stats()
        log.info(
            "school %s: polling %d devices every %d s; the outbox holds %d samples and %d events (%.1f MB)",
            self.site.id,
            len(self.pollers),
            self.site.poll_period_s,
            stats["samples"],
            stats["events"],
            stats["bytes"] / 1e6,
        )
        sending = asyncio.create_task(publisher.run(stop))
        try:
            # A loop per connection: a slow device (a dongle's 10 s timeout) never holds up the others.
            await asyncio.gather(*(self._poll_until(stop, bridge) for bridge in self.bridges))
        finally:
            await sending
            await publisher.stop()
            for bridge in self.bridges:
                await bridge.link.aclose()

    async def _poll_until(self, stop: asyncio.Event, bridge: Bridge) -> None:
        period_ms = self.site.poll_period_s * 1000
        next_ms = _next_moment(self.clock.now_ms(), period_ms)
        while not stop.is_set():
            now_ms = self.clock.now_ms()
            if now_ms < next_ms - 2 * period_ms:
                log.warning(
                    "school %s: the clock went back to %d; realigning the polls", self.site.id, now_ms
                )
                next_ms = _next_moment(now_ms, period_ms)
            if now_ms < next_ms:
                if not await self._sleep_until(next_ms, stop):
                    return
                continue
            await self._poll_bridges([bridge], check_clock=bridge is self.bridges[0])
            bridge.last_poll_ms = next_ms
            next_ms += period_ms
            now_ms = self.clock.now_ms()
            if next_ms < now_ms:
                # The moments already past are skipped, not polled in a burst; so is now, which the poll just
                # covered (after the clock jumped ahead onto a moment of the grid, it would be polled twice).
                caught_up = _next_moment(now_ms + 1, period_ms)
                log.warning(
                    "school %s: polling %s fell behind; skipping %d poll moments",
                    self.site.id,
                    bridge.link.describe(),
                    (caught_up - next_ms) // period_ms,
                )
                next_ms = caught_up

    async def _sleep_until(self, moment_ms: int, stop: asyncio.Event) -> bool:
        """Wait for the moment (or at most `MAX_SLEEP_S`); False if ``stop`` came first."""
        sleeper = asyncio.ensure_future(self.clock.sleep_until(moment_ms))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([sleeper, stopper], timeout=MAX_SLEEP_S, return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        stopper.cancel()
        return not stop.is_set()

    async def poll_once(self) -> list[int]:
        """Poll every device once; return the new samples' row ids."""
        return await self._poll_bridges(self.bridges, check_clock=True)

    async def _poll_bridges(self, bridges: list[Bridge], *, check_clock: bool) -> list[int]:
        """Poll the devices of some bridges, commit what was read and what it means to the outbox; return
        the new samples' row ids."""
        now_ms = self.clock.now_ms()
        events = self._check_clock(now_ms) + self._check_certificate(now_ms) if check_clock else []
        polled = await asyncio.gather(*(self._poll_bridge(bridge) for bridge in bridges))
        outcomes = [outcome for outcomes in polled for outcome in outcomes]
        samples = []
        for poller, ts_ms, outcome in outcomes:
            device = poller.device
            events += self.health.device_polled(device, poller.profile, ts_ms, outcome)
            if isinstance(outcome, PollResult) and outcome.values is not None:
                samples.append(NewSample(device.id, device.kind.value, ts_ms, outcome.values))
        ids, clock_events = self._commit(samples, now_ms)
        events += clock_events + self._check_outbox(now_ms)
        self._append_events(events)
        # Last, so that a card failing under any of this poll's writes is told at once, from memory.
        trusted = self.clock_synchronized is None or self.clock_synchronized()
        storage_events = self.health.storage_written(now_ms, self.outbox.failure, trusted)
        self._append_events(storage_events)
        if self.publisher is not None and (ids or events or storage_events):
            self.publisher.wake()
        return ids

    def _append_events(self, events: list[NewEvent]) -> None:
        if events:
            self.outbox.append_events(events)
            for event in events:
                _log_event(self.site.id, event)

    async def _poll_bridge(
        self, bridge: Bridge
    ) -> list[tuple[DevicePoller, int, PollResult | DeviceUnreachable]]:
        outcomes: list[tuple[DevicePoller, int, PollResult | DeviceUnreachable]] = []
        for poller in bridge.pollers:
            ts_ms = self.clock.now_ms()
            try:
                outcomes.append((poller, ts_ms, await poller.poll()))
            except DeviceUnreachable as error:
                outcomes.append((poller, ts_ms, error))
        return outcomes

    def _commit(self, samples: list[NewSample], now_ms: int) -> tuple[list[int], list[NewEvent]]:
        """Append a poll's samples to the outbox; while the clock is not synchronised, hold them (at most
        `MAX_HOLD_MS`), and once it is, stamp the held ones from the monotonic clock and append them first.
        Returns the appended samples' row ids and the clock's health events."""
        if self.clock_synchronized is None or self.reference_ms is None:
            return self._append(samples), []
        monotonic_ms = self.reference_ms()
        clock_minus_monotonic_ms = now_ms - monotonic_ms
        if self.clock_synchronized():
            self._unsynchronized_since = None
            self._release(clock_minus_monotonic_ms)
            return self._append(samples), self.health.clock_sync_checked(now_ms, None)
        if self._unsynchronized_since is None:
            self._unsynchronized_since = monotonic_ms
        waited_ms = monotonic_ms - self._unsynchronized_since
        events = self.health.clock_sync_checked(now_ms, waited_ms)
        if waited_ms < MAX_HOLD_MS:
            if samples:
                self.outbox.hold(samples, clock_minus_monotonic_ms, self.boot)
                self._holding = True
            return [], events
        self._release(None)
        return self._append(samples), events

    def _append(self, samples: list[NewSample]) -> list[int]:
        return self.outbox.append(samples) if samples else []

    def _release(self, clock_minus_monotonic_ms: float | None) -> None:
        if not self._holding:
            return
        restamped, kept = self.outbox.release_held(clock_minus_monotonic_ms, self.boot)
        self._holding = False
        log.warning(
            "school %s: released %d samples held for the clock: %d stamped from the monotonic clock, %d with "
            "the time the clock showed",
            self.site.id,
            restamped + kept,
            restamped,
            kept,
        )

    def _check_outbox(self, now_ms: int) -> list[NewEvent]:
        dropped = self.outbox.enforce_limits(now_ms)
        if dropped:
            log.error(
                "school %s: the outbox is over its bounds; dropped the %d oldest samples (%d in all)",
                self.site.id,
                dropped.samples,
                dropped.samples_total,
            )
        room_bytes = self.outbox.room_bytes()
        max_bytes = self.outbox.limits.max_bytes
        usage = self.outbox.usage()
        events = self.health.outbox_checked(now_ms, dropped, usage, room_bytes < max_bytes)
        if self.outbox.failure is None:
            # An outbox in memory has no room on the card to measure (`storage_failed` says why).
            events += self.health.storage_checked(now_ms, room_bytes, max_bytes)
        return events

    def _check_clock(self, now_ms: int) -> list[NewEvent]:
        if self.reference_ms is None:
            return []
        reference = self.reference_ms()
        previous, self._last_check = self._last_check, (now_ms, reference)
        if previous is None:
            return []
        jump_ms = round((now_ms - previous[0]) - (reference - previous[1]))
        return self.health.clock_checked(now_ms, jump_ms if abs(jump_ms) > CLOCK_JUMP_TOLERANCE_MS else None)

    def _certificate_not_after_ms(self) -> int | None:
        """When the client certificate the MQTT client loads expires; None without one, or when it cannot be
        read (the connection then fails and says why)."""
        if self.broker.cert_file is None:
            return None
        try:
            return certificate_not_after_ms(self.broker.cert_file)
        except (OSError, ValueError) as error:
            log.error(
                "school %s: cannot read the client certificate %s: %s",
                self.site.id,
                self.broker.cert_file,
                error,
            )
            return None

    def _check_certificate(self, now_ms: int) -> list[NewEvent]:
        checked = self._certificate_checked_ms
        if self.certificate_not_after_ms is None or (
            checked is not None and now_ms - checked < CERTIFICATE_CHECK_MS
        ):
            return []
        self._certificate_checked_ms = now_ms
        return self.health.certificate_checked(now_ms, self.certificate_not_after_ms)


def _next_moment(now_ms: int, period_ms: int) -> int:
    return -(-now_ms // period_ms) * period_ms


def _log_event(school: str, event: NewEvent) -> None:
    where = f"device {event.device}" if event.device else "agent"
    if event.active:
        log.warning(
            "school %s: %s raised %s (%s): %s", school, where, event.code, event.severity, event.message_pl
        )
    else:
        log.info("school %s: %s cleared %s: %s", school, where, event.code, event.message_pl)
