"""Faults a simulated device can be told to show, consulted on every request.

A test or a demo sets fields of a device's `DeviceFaults` while the server runs; the next request
sees them. Request-level faults are implemented; counter resets and device swaps are not yet, and
would be added here as fields that the register image consults (see docs/simulators.md).
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
    """

    no_answer: bool = False
    delay_s: float = 0.0
    exception: ExcCodes | None = None
    garbage: bool = False

    @property
    def any(self) -> bool:
        """Whether any fault is set."""
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
