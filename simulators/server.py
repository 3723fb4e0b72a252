"""Serving a school's simulated devices: one Modbus TCP server per address the site file names, and one
Modbus RTU server per serial line.

Every server answers through `_Handler`, which applies the connection-level habits of the devices behind it
(`DeviceQuirks`: ignoring requests for a while after a connection opens, accepting one connection only,
sleeping at night) and counts connections and requests, so that tests can see how the edge agent treats a
device. On a serial line, a request for a unit id nobody has goes unanswered, as on a real RS-485 bus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from common.clock import Clock
from common.sites import Device, RtuTransport, Site, TcpTransport
from common.wire import DeviceKind
from simulators.devices.base import SimulatedDevice
from simulators.devices.faults import DeviceQuirks
from simulators.devices.huawei_sun2000 import HuaweiSun2000
from simulators.devices.sdm120 import Sdm120
from simulators.devices.sdm630 import Sdm630
from simulators.devices.sunspec_inverter import SunSpecInverter
from simulators.model import Counters, SchoolModel

logger = logging.getLogger(__name__)

# The simulator of each register profile a site file may name, and the fallback for each kind.
DEVICE_BY_PROFILE: dict[str, type[SimulatedDevice]] = {
    "sunspec-inverter": SunSpecInverter,
    "huawei-sun2000": HuaweiSun2000,
    "eastron-sdm630": Sdm630,
    "eastron-sdm120": Sdm120,
}
DEVICE_BY_KIND: dict[DeviceKind, type[SimulatedDevice]] = {
    DeviceKind.PV_INVERTER: SunSpecInverter,
    DeviceKind.GRID_METER: Sdm630,
}

Endpoint = tuple[str, int]
EndpointKey = tuple[str, int] | str  # a TCP (host, port), or a serial line as the site file names it


def device_class(device: Device) -> type[SimulatedDevice]:
    """The simulator for a device of a site file: by its profile, else by its kind."""
    found = DEVICE_BY_PROFILE.get(device.profile)
    if found is None:
        found = DEVICE_BY_KIND[device.kind]
        logger.warning(
            "%s: no simulator for profile %r; serving a %s for its kind %s",
            device.id,
            device.profile,
            found.__name__,
            device.kind.value,
        )
    return found


@dataclass
class EndpointStats:
    """What the clients of one endpoint did: for tests of how the edge agent treats devices."""

    connections: int = 0
    open_connections: int = 0
    most_open_connections: int = 0
    refused_connections: int = 0
    requests: int = 0
    ignored_requests: int = 0


@dataclass
class _Served:
    """One running server and the devices behind it."""

    key: EndpointKey
    devices: dict[int, SimulatedDevice]
    stats: EndpointStats = field(default_factory=EndpointStats)
    server: ModbusTcpServer | ModbusSerialServer | None = None

    @property
    def quirks(self) -> DeviceQuirks:
        return DeviceQuirks.strictest([device.quirks for device in self.devices.values()])

    def ignores(self, unit: int, connection_age_s: float) -> bool:
        """Whether a request to ``unit`` on a connection of this age goes unanswered."""
        device = self.devices.get(unit)
        if device is None:
            return isinstance(self.key, str)  # nobody on the bus answers for an unknown unit
        return connection_age_s < self.quirks.settle_after_connect_s or device.asleep()


class _Handler(ServerRequestHandler):
    """pymodbus's per-connection handler, with the devices' connection habits and counters."""

    def __init__(self, owner: Any, served: _Served) -> None:
        super().__init__(owner, None, None, None)  # type: ignore[no-untyped-call]
        self.served = served
        self.opened = time.monotonic()

    def callback_connected(self) -> None:
        super().callback_connected()
        self.opened = time.monotonic()
        stats = self.served.stats
        limit = self.served.quirks.max_connections
        if limit and stats.open_connections >= limit:
            stats.refused_connections += 1
            if self.transport is not None:
                self.transport.close()
            return
        stats.connections += 1
        stats.open_connections += 1
        stats.most_open_connections = max(stats.most_open_connections, stats.open_connections)
        self.counted = True

    def callback_disconnected(self, exc: Exception | None) -> None:
        if getattr(self, "counted", False):
            self.served.stats.open_connections -= 1
            self.counted = False
        super().callback_disconnected(exc)

    async def handle_request(self) -> None:
        pdu = self.last_pdu
        if pdu is not None:
            self.served.stats.requests += 1
            if self.served.ignores(pdu.dev_id, time.monotonic() - self.opened):
                self.served.stats.ignored_requests += 1
                return
        await super().handle_request()  # type: ignore[no-untyped-call]


class _TcpServer(ModbusTcpServer):
    def __init__(self, served: _Served, address: Endpoint) -> None:
        super().__init__(context=[device.sim_device() for device in served.devices.values()], address=address)
        self.served = served

    def callback_new_connection(self) -> _Handler:
        return _Handler(self, self.served)


class _SerialServer(ModbusSerialServer):
    def __init__(self, served: _Served, port: str, line: RtuTransport) -> None:
        super().__init__(
            context=[device.sim_device() for device in served.devices.values()],
            port=port,
            baudrate=line.baud,
            parity=line.parity,
            stopbits=line.stopbits,
            bytesize=line.bytesize,
            ignore_missing_devices=True,
        )
        self.served = served

    def callback_new_connection(self) -> _Handler:
        return _Handler(self, self.served)


class SiteSimulator:
    """The devices of one school on Modbus TCP and RTU, all showing one `SchoolModel`.

    Parameters
    ----------
    site : Site
        The school; its TCP devices are served at the hosts and ports the file names, its RTU devices on
        their serial lines.
    clock : Clock
        The time the devices show; the model starts at the clock's time of construction.
    seed : int
        Selects weather and load fluctuation.
    initial : Counters, optional
        The counters at the start; plausible defaults from the site and seed when omitted.
    serial_ports : mapping of str to str, optional
        The port to serve each of the site's serial lines on: the other end of a virtual line
        (`simulators.serial_line.VirtualSerialLine`), or a real adapter wired to the agent's. A line not
        listed is served on the port the site file names.
    """

    def __init__(
        self,
        site: Site,
        clock: Clock,
        *,
        seed: int = 0,
        initial: Counters | None = None,
        serial_ports: Mapping[str, str] | None = None,
    ) -> None:
        self.site = site
        self.clock = clock
        self.model = SchoolModel(site, start_ms=clock.now_ms(), seed=seed, initial=initial)
        self.serial_ports = dict(serial_ports or {})
        self.devices: dict[str, SimulatedDevice] = {}
        self._key_of: dict[str, EndpointKey] = {}
        self._lines: dict[str, RtuTransport] = {}
        for device in site.devices:
            self.devices[device.id] = device_class(device)(self.model, clock, unit=device.unit)
            if isinstance(device.transport, TcpTransport):
                self._key_of[device.id] = (device.transport.host, device.transport.port)
            else:
                self._key_of[device.id] = device.transport.device
                self._lines[device.transport.device] = device.transport
        self._served: dict[EndpointKey, _Served] = {}

    @property
    def endpoints(self) -> dict[EndpointKey, list[str]]:
        """The device ids served at each (host, port) or serial line."""
        grouped: dict[EndpointKey, list[str]] = defaultdict(list)
        for device_id, key in self._key_of.items():
            grouped[key].append(device_id)
        return dict(grouped)

    def stats(self, device_id: str) -> EndpointStats:
        """What the clients of a device's endpoint did."""
        return self._served[self._key_of[device_id]].stats

    async def start(self) -> None:
        """Start one server per endpoint; several unit ids share an endpoint as on a gateway or a bus."""
        try:
            for key, device_ids in self.endpoints.items():
                await self._serve(key, device_ids)
        except BaseException:
            await self.stop()
            raise

    async def _serve(
        self, key: EndpointKey, device_ids: list[str], stats: EndpointStats | None = None
    ) -> None:
        units = [self.devices[device_id].unit for device_id in device_ids]
        if len(set(units)) != len(units):
            raise ValueError(f"{self.site.id}: devices {device_ids} at {key} share a unit id")
        served = _Served(
            key, {self.devices[d].unit: self.devices[d] for d in device_ids}, stats or EndpointStats()
        )
        if isinstance(key, tuple):
            served.server = _TcpServer(served, key)
            where = f"{key[0]}:{key[1]}"
        else:
            port = self.serial_ports.get(key, key)
            served.server = _SerialServer(served, port, self._lines[key])
            where = f"serial line {port}"
        try:
            await served.server.serve_forever(background=True)
        except RuntimeError as error:
            raise OSError(f"{self.site.id}: cannot serve on {where}") from error
        self._served[key] = served
        for device_id in device_ids:
            device = self.devices[device_id]
            logger.info(
                "%s/%s: %s unit %d on %s", self.site.id, device_id, type(device).__name__, device.unit, where
            )

    async def swap(
        self, device_id: str, device_type: type[SimulatedDevice] | None = None, *, serial: str | None = None
    ) -> SimulatedDevice:
        """Replace a device, as an installer does: its endpoint goes down for a moment and comes back with a
        new device (another brand when ``device_type`` is given, else the same kind with another serial
        number), whose counters start from zero."""
        old = self.devices[device_id]
        key = self._key_of[device_id]
        served = self._served.pop(key)
        if served.server is not None:
            await served.server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated
        await asyncio.sleep(0.05)  # let the closed connections go before the port is bound again
        new = (device_type or type(old))(
            self.model, self.clock, unit=old.unit, serial=serial or f"{old.serial}-R"
        )
        new.faults.counter_reset_at_ms = self.clock.now_ms()
        self.devices[device_id] = new
        await self._serve(key, self.endpoints[key], served.stats)
        return new

    async def stop(self) -> None:
        """Close the servers and every client connection; safe to call twice."""
        served, self._served = list(self._served.values()), {}
        for item in served:
            if item.server is not None:
                await item.server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated

    async def __aenter__(self) -> SiteSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()


async def run_simulators(sites: Sequence[Site], clock: Clock, *, seed: int = 0) -> None:
    """Serve several schools until cancelled, then stop them all.

    Parameters
    ----------
    sites : sequence of Site
        The schools; their device addresses must not collide (see `simulators.loopback`).
    clock : Clock
        The time all devices show.
    seed : int
        One seed for all: the schools share the weather and differ in their load.
    """
    simulators = [SiteSimulator(site, clock, seed=seed) for site in sites]
    try:
        for simulator in simulators:
            await simulator.start()
        await asyncio.Event().wait()
    finally:
        for simulator in simulators:
            await simulator.stop()
