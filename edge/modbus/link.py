"""The transport to one Modbus device (TCP or RTU), with the device's pace and a backoff when it fails.

Two kinds of failure are kept apart, as in pymodbus: a transport fault (no connection, no answer in time)
raises `DeviceUnreachable`; a device that answers with a Modbus exception code returns a `DeviceRefusal`,
which the caller tests for. A device that keeps failing is not hammered: after each failed attempt the
link waits longer before trying again, up to a limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from common.sites import RtuTransport, TcpTransport
from edge.modbus.profiles import Function

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0


class DeviceUnreachable(Exception):
    """The device could not be reached or did not answer in time."""


@dataclass(frozen=True)
class DeviceRefusal:
    """The device answered a request with a Modbus exception code (e.g. 2: illegal data address)."""

    exception_code: int


class DeviceLink:
    """One connection to one device (or one gateway, shared by the units behind it)."""

    def __init__(self, transport: TcpTransport | RtuTransport, timeout_s: float) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._failures = 0
        self._next_attempt_monotonic = 0.0
        # Devices behind one gateway or on one RS-485 bus take one request at a time.
        self._turn = asyncio.Lock()

    def describe(self) -> str:
        if isinstance(self.transport, TcpTransport):
            return f"{self.transport.host}:{self.transport.port}"
        return self.transport.device

    async def read(
        self, function: Function, address: int, count: int, unit: int
    ) -> list[int] | DeviceRefusal:
        """Read ``count`` registers; `DeviceUnreachable` on a transport fault or while backing off."""
        async with self._turn:
            return await self._read(function, address, count, unit)

    async def _read(
        self, function: Function, address: int, count: int, unit: int
    ) -> list[int] | DeviceRefusal:
        if time.monotonic() < self._next_attempt_monotonic:
            raise DeviceUnreachable(f"{self.describe()}: backing off after {self._failures} failures")
        try:
            client = await self._connected_client()
            reader = (
                client.read_holding_registers if function is Function.HOLDING else client.read_input_registers
            )
            response = await reader(address, count=count, device_id=unit)
        except (ModbusException, OSError, TimeoutError) as error:
            self._failed()
            raise DeviceUnreachable(f"{self.describe()}: {error}") from None
        self._failures = 0
        if response.isError():
            return DeviceRefusal(int(getattr(response, "exception_code", 0)))
        registers = list(response.registers)
        if len(registers) < count:
            self._failed()
            raise DeviceUnreachable(f"{self.describe()}: asked for {count} registers, got {len(registers)}")
        return registers[:count]

    async def _connected_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is None:
            self._client = self._new_client()
        if not self._client.connected and not await self._client.connect():
            raise DeviceUnreachable(f"{self.describe()}: cannot connect")
        return self._client

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        # reconnect_delay=0: the link decides when to try again; retries=0: a poll is retried next period.
        if isinstance(self.transport, TcpTransport):
            return AsyncModbusTcpClient(
                self.transport.host,
                port=self.transport.port,
                timeout=self.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusSerialClient(
            self.transport.device,
            baudrate=self.transport.baud,
            parity=self.transport.parity,
            stopbits=self.transport.stopbits,
            bytesize=self.transport.bytesize,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
        )

    def _failed(self) -> None:
        self._failures += 1
        self.close()
        if self._failures >= 2:
            delay_s = min(BACKOFF_FIRST_S * 2 ** (self._failures - 2), BACKOFF_MAX_S)
            self._next_attempt_monotonic = time.monotonic() + delay_s

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
