"""Serving a school's simulated devices over Modbus TCP, one server per address the site file names."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from types import TracebackType

from pymodbus.server import ModbusTcpServer

from common.clock import Clock
from common.sites import Device, Site, TcpTransport
from common.wire import DeviceKind
from simulators.devices.base import SimulatedDevice
from simulators.devices.sdm630 import Sdm630
from simulators.devices.sunspec_inverter import SunSpecInverter
from simulators.model import Counters, SchoolModel

logger = logging.getLogger(__name__)

# The simulator of each register profile a site file may name, and the fallback for each kind.
DEVICE_BY_PROFILE: dict[str, type[SimulatedDevice]] = {
    "sunspec-inverter": SunSpecInverter,
    "eastron-sdm630": Sdm630,
}
DEVICE_BY_KIND: dict[DeviceKind, type[SimulatedDevice]] = {
    DeviceKind.PV_INVERTER: SunSpecInverter,
    DeviceKind.GRID_METER: Sdm630,
}

Endpoint = tuple[str, int]


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


class SiteSimulator:
    """The devices of one school on Modbus TCP, all showing one `SchoolModel`.

    Parameters
    ----------
    site : Site
        The school; its TCP devices are served at the hosts and ports the file names (RTU devices are
        skipped with a warning).
    clock : Clock
        The time the devices show; the model starts at the clock's time of construction.
    seed : int
        Selects weather and load fluctuation.
    initial : Counters, optional
        The counters at the start; plausible defaults from the site and seed when omitted.
    """

    def __init__(self, site: Site, clock: Clock, *, seed: int = 0, initial: Counters | None = None) -> None:
        self.site = site
        self.clock = clock
        self.model = SchoolModel(site, start_ms=clock.now_ms(), seed=seed, initial=initial)
        self.devices: dict[str, SimulatedDevice] = {}
        self._endpoint_of: dict[str, Endpoint] = {}
        for device in site.devices:
            if not isinstance(device.transport, TcpTransport):
                logger.warning(
                    "%s/%s: only Modbus TCP is simulated; skipping this RTU device", site.id, device.id
                )
                continue
            self.devices[device.id] = device_class(device)(self.model, clock, unit=device.unit)
            self._endpoint_of[device.id] = (device.transport.host, device.transport.port)
        self._servers: list[ModbusTcpServer] = []

    @property
    def endpoints(self) -> dict[Endpoint, list[str]]:
        """The device ids served at each (host, port)."""
        grouped: dict[Endpoint, list[str]] = defaultdict(list)
        for device_id, endpoint in self._endpoint_of.items():
            grouped[endpoint].append(device_id)
        return dict(grouped)

    async def start(self) -> None:
        """Bind one Modbus TCP server per (host, port); several unit ids share a port as on a gateway."""
        try:
            for (host, port), device_ids in self.endpoints.items():
                await self._serve(host, port, device_ids)
        except BaseException:
            await self.stop()
            raise

    async def _serve(self, host: str, port: int, device_ids: list[str]) -> None:
        units = [self.devices[device_id].unit for device_id in device_ids]
        if len(set(units)) != len(units):
            raise ValueError(f"{self.site.id}: devices {device_ids} at {host}:{port} share a unit id")
        server = ModbusTcpServer(
            context=[self.devices[device_id].sim_device() for device_id in device_ids], address=(host, port)
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as error:
            raise OSError(f"{self.site.id}: cannot listen on {host}:{port}") from error
        self._servers.append(server)
        for device_id in device_ids:
            device = self.devices[device_id]
            logger.info(
                "%s/%s: %s unit %d on %s:%d",
                self.site.id,
                device_id,
                type(device).__name__,
                device.unit,
                host,
                port,
            )

    async def stop(self) -> None:
        """Close the servers and every client connection; safe to call twice."""
        servers, self._servers = self._servers, []
        for server in servers:
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated

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
