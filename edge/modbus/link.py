"""The connection to one Modbus endpoint (a TCP host and port, or an RS-485 line), at its devices' pace.

One `DeviceLink` owns one connection, and every device at that endpoint (the units behind a gateway, the
meters on a bus) and every tool of the agent talks through it, one poll at a time: a device that accepts a
single connection (SolarEdge) never sees a second one, and an RS-485 line never carries two requests at once.
Before a new connection is opened the old one is closed and the loop has let it go.

Two kinds of failure are kept apart, as in pymodbus: a transport fault (no connection, no answer in time)
raises `DeviceUnreachable`; a device that answers with a Modbus exception code returns a `DeviceRefusal`,
which the caller tests for. The link applies the device's pace: a pause after connecting, a pause between
requests, a timeout, and closing the connection after each poll when the profile asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from common.sites import RtuTransport, TcpTransport
from edge.modbus.profiles import Function, Profile

log = logging.getLogger(__name__)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class DeviceUnreachable(Exception):
    """The device could not be reached or did not answer in time."""


@dataclass(frozen=True)
class DeviceRefusal:
    """The device answered a request with a Modbus exception code (e.g. 2: illegal data address)."""

    exception_code: int


@dataclass(frozen=True)
class LinkSettings:
    """How the devices at one endpoint must be talked to."""

    timeout_s: float = 1.0
    connect_delay_s: float = 0.0
    request_pause_s: float = 0.0
    close_after_poll: bool = False

    @classmethod
    def of(cls, profile: Profile) -> LinkSettings:
        return cls(
            profile.timeout_s, profile.connect_delay_s, profile.request_pause_s, profile.close_after_poll
        )

    @classmethod
    def strictest(cls, settings: Iterable[LinkSettings]) -> LinkSettings:
        """Settings that suit every device sharing a connection: the longest waits, closing if any asks."""
        chosen = list(settings)
        return cls(
            timeout_s=max(s.timeout_s for s in chosen),
            connect_delay_s=max(s.connect_delay_s for s in chosen),
            request_pause_s=max(s.request_pause_s for s in chosen),
            close_after_poll=any(s.close_after_poll for s in chosen),
        )


def describe(transport: TcpTransport | RtuTransport) -> str:
    if isinstance(transport, TcpTransport):
        return f"{transport.host}:{transport.port}"
    return f"{transport.device} ({transport.baud} {transport.bytesize}{transport.parity}{transport.stopbits})"


class DeviceLink:
    """One connection to one endpoint, shared by the devices behind it."""

    def __init__(self, transport: TcpTransport | RtuTransport, settings: LinkSettings | None = None) -> None:
        self.transport = transport
        self.settings = settings or LinkSettings()
        self._client: Client | None = None
        self._turn = asyncio.Lock()
        self._last_request_end = 0.0
        # How long the last answer took [s], for the health check of slow devices.
        self.last_answer_s = 0.0
        # Connections opened so far: tests and the status display use it.
        self.connections = 0

    def describe(self) -> str:
        return describe(self.transport)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[DeviceLink]:
        """Hold the link for one poll of one device; close afterwards if the devices want that."""
        async with self._turn:
            try:
                yield self
            finally:
                if self.settings.close_after_poll:
                    await self.aclose()

    async def read(
        self, function: Function, address: int, count: int, unit: int
    ) -> list[int] | DeviceRefusal:
        """Read ``count`` registers within a `session`; `DeviceUnreachable` on a transport fault."""
        try:
            client = await self._connected_client()
            await self._pause_between_requests()
            reader = (
                client.read_holding_registers if function is Function.HOLDING else client.read_input_registers
            )
            started = time.monotonic()
            try:
                response = await reader(address, count=count, device_id=unit)
            finally:
                self._last_request_end = time.monotonic()
                self.last_answer_s = self._last_request_end - started
        except (ModbusException, OSError, TimeoutError) as error:
            await self.aclose()
            raise DeviceUnreachable(f"{self.describe()} unit {unit}: {error}") from None
        except asyncio.CancelledError:
            # A request abandoned half way leaves an answer in flight that the next request would take.
            await self.aclose()
            raise
        if response.isError():
            return DeviceRefusal(int(getattr(response, "exception_code", 0)))
        registers = list(response.registers)
        if len(registers) < count:
            await self.aclose()
            raise DeviceUnreachable(f"{self.describe()}: asked for {count} registers, got {len(registers)}")
        return registers[:count]

    async def _pause_between_requests(self) -> None:
        wait_s = self._last_request_end + self.settings.request_pause_s - time.monotonic()
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def _connected_client(self) -> Client:
        if self._client is not None and self._client.connected:
            return self._client
        await self.aclose()
        self._client = self._new_client()
        self.connections += 1
        if not await self._client.connect():
            await self.aclose()
            raise DeviceUnreachable(f"{self.describe()}: cannot connect")
        if self.settings.connect_delay_s > 0:
            # Some gateways (Huawei's dongle) ignore requests for a while after accepting a connection.
            await asyncio.sleep(self.settings.connect_delay_s)
        return self._client

    def _new_client(self) -> Client:
        # retries=0: a poll is retried at the next poll, not in a burst; reconnect_delay=0: the link decides.
        if isinstance(self.transport, TcpTransport):
            return AsyncModbusTcpClient(
                self.transport.host,
                port=self.transport.port,
                timeout=self.settings.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusSerialClient(
            self.transport.device,
            baudrate=self.transport.baud,
            parity=self.transport.parity,
            stopbits=self.transport.stopbits,
            bytesize=self.transport.bytesize,
            timeout=self.settings.timeout_s,
            retries=0,
            reconnect_delay=0,
        )

    async def aclose(self) -> None:
        """Close the connection and let the loop finish closing it, so that no two are ever open."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
            # The transport closes its socket on the next turns of the loop.
            for _ in range(3):
                await asyncio.sleep(0)

    def close(self) -> None:
        """Close without waiting (at shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
