"""What can be wrong with a simulated device, and how a real device of its kind is picky.

`DeviceFaults` are injected on demand: a test or a demo sets fields of a device's faults while the server
runs, and the next request sees them. `DeviceQuirks` are how a kind of device always behaves (a Huawei
dongle reads at most 64 registers a request, a SolarEdge inverter accepts one connection): the edge agent's
profiles must cope with them. The request-level parts act in `SimulatedDevice`; the connection-level ones
(a pause after connecting, one connection only) in the server (`simulators.server`).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from pymodbus.constants import ExcCodes

# How often a request held by `no_answer` looks whether the fault was cleared [s].
_NO_ANSWER_POLL_S = 0.05


@dataclass
class DeviceFaults:
    """What is wrong with a device right now.

    Attributes
    ----------
    no_answer : bool
        Hold every request without an answer while set; the client times out.
    delay_s : float
        Answer this many real seconds late.
    exception : ExcCodes or None
        Answer every request with this Modbus exception (e.g. ``ExcCodes.DEVICE_BUSY``).
    garbage : bool
        Answer with random register values instead of the image.
    counter_reset_at_ms : int or None
        The device's energy counters restart from zero at this moment (a reset, or a new device).
    fault_state : bool
        An inverter reports a fault: its operating state and an alarm bit say so (SunSpec St = FAULT and
        Evt1 GROUND_FAULT; Huawei "Shutdown: fault" and alarm 2001). Its other registers are unchanged.
    """

    no_answer: bool = False
    delay_s: float = 0.0
    exception: ExcCodes | None = None
    garbage: bool = False
    counter_reset_at_ms: int | None = None
    fault_state: bool = False

    @property
    def any(self) -> bool:
        """Whether any request-level fault is set."""
        return self.no_answer or self.delay_s > 0 or self.exception is not None or self.garbage

    async def before_answer(self) -> ExcCodes | None:
        """Wait as the faults say, then give the exception to answer with, if any."""
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        while self.no_answer:
            await asyncio.sleep(_NO_ANSWER_POLL_S)
        return self.exception

    def garble(self, registers: list[int]) -> None:
        """Overwrite `registers` in place with random values when `garbage` is set."""
        if self.garbage:
            registers[:] = [random.getrandbits(16) for _ in registers]


@dataclass
class DeviceQuirks:
    """How a real device of a kind is slow or picky.

    Attributes
    ----------
    max_registers_per_request : int
        A request for more registers is answered with ILLEGAL DATA VALUE (a Huawei dongle: 64).
    min_request_interval_s : float
        A request sooner than this after the previous answer is answered with DEVICE BUSY.
    settle_after_connect_s : float
        Requests on a connection younger than this are ignored, as a Huawei dongle does for seconds.
    max_connections : int
        Connections beyond this many are closed as soon as they open (SolarEdge: one); 0 for no limit.
    silent_when_dark : bool
        The device does not answer while the PV produces nothing (an inverter whose Modbus sleeps at night).
    """

    max_registers_per_request: int = 125
    min_request_interval_s: float = 0.0
    settle_after_connect_s: float = 0.0
    max_connections: int = 0
    silent_when_dark: bool = False

    def refuse(self, count: int, since_last_answer_s: float) -> ExcCodes | None:
        """The exception a request of ``count`` registers gets, if the device refuses it."""
        if count > self.max_registers_per_request:
            return ExcCodes.ILLEGAL_VALUE
        if since_last_answer_s < self.min_request_interval_s:
            return ExcCodes.DEVICE_BUSY
        return None

    @staticmethod
    def strictest(quirks: list[DeviceQuirks]) -> DeviceQuirks:
        """The connection-level quirks of an endpoint shared by several devices."""
        limits = [q.max_connections for q in quirks if q.max_connections > 0]
        return DeviceQuirks(
            max_registers_per_request=min(q.max_registers_per_request for q in quirks),
            min_request_interval_s=max(q.min_request_interval_s for q in quirks),
            settle_after_connect_s=max(q.settle_after_connect_s for q in quirks),
            max_connections=min(limits) if limits else 0,
            silent_when_dark=any(q.silent_when_dark for q in quirks),
        )
