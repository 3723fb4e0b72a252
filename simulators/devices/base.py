"""What every simulated device shares: a block of read-only registers refreshed from the model on request."""

from __future__ import annotations

import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from typing import ClassVar

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from common.clock import Clock
from simulators.devices.faults import DeviceFaults, DeviceQuirks
from simulators.model import SchoolModel, SchoolState

logger = logging.getLogger(__name__)

READ_HOLDING_REGISTERS = 3
READ_INPUT_REGISTERS = 4
_REGISTER_FUNCTION_CODES = frozenset({READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS, 6, 16, 22, 23})


class SimulatedDevice(ABC):
    """A Modbus device whose registers show the school model at the clock's current time.

    Parameters
    ----------
    model : SchoolModel
        The school the device belongs to.
    clock : Clock
        Whose ``now_ms`` decides the moment a request sees.
    unit : int
        The Modbus unit id.
    faults : DeviceFaults, optional
        Faults to show; a new, empty one when omitted. Change its fields at any time.
    quirks : DeviceQuirks, optional
        How the device is picky; none when omitted.
    serial : str, optional
        The serial number the device shows, where its map has one; derived from the school and unit when
        omitted (a replaced device gets another).
    """

    #: The function code that reads the device's registers (3 holding, 4 input).
    read_function_code: ClassVar[int]
    #: How devices of this kind are picky unless told otherwise.
    default_quirks: ClassVar[DeviceQuirks] = DeviceQuirks()

    def __init__(
        self,
        model: SchoolModel,
        clock: Clock,
        *,
        unit: int,
        faults: DeviceFaults | None = None,
        quirks: DeviceQuirks | None = None,
        serial: str | None = None,
    ) -> None:
        self.model = model
        self.clock = clock
        self.unit = unit
        self.faults = faults or DeviceFaults()
        self.quirks = quirks or dataclasses.replace(self.default_quirks)
        self.serial = serial or f"SIM-{model.site.id}-{unit}"
        self._last_answer = 0.0
        self._counter_base: tuple[int, SchoolState] | None = None

    def state_at(self, ts_ms: int) -> SchoolState:
        """The model's state as this device shows it: counters from zero after a reset (`DeviceFaults`)."""
        state = self.model.state_at(ts_ms)
        reset_ms = self.faults.counter_reset_at_ms
        if reset_ms is None or ts_ms < reset_ms:
            return state
        if self._counter_base is None or self._counter_base[0] != reset_ms:
            self._counter_base = (reset_ms, self.model.state_at(reset_ms))
        base = self._counter_base[1]
        return dataclasses.replace(
            state,
            pv_energy_wh=state.pv_energy_wh - base.pv_energy_wh,
            import_wh=state.import_wh - base.import_wh,
            export_wh=state.export_wh - base.export_wh,
        )

    def asleep(self) -> bool:
        """Whether the device ignores requests now (`DeviceQuirks.silent_when_dark` at night)."""
        return self.quirks.silent_when_dark and self.model.state_at(self.clock.now_ms()).pv_power_w <= 0

    @abstractmethod
    def simdata(self) -> list[SimData]:
        """The register map: valid addresses as `SimData`; every other address is illegal."""

    @abstractmethod
    def registers_at(self, ts_ms: int) -> dict[int, int]:
        """The value of every mapped register at `ts_ms`, by address."""

    def sim_device(self) -> SimDevice:
        """The pymodbus device that serves this map, with `_on_request` called on every access."""
        return SimDevice(id=self.unit, simdata=self.simdata(), action=self._on_request)

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Fill the requested registers from the model (pymodbus `SimDevice` action)."""
        if (exception := await self.faults.before_answer()) is not None:
            return exception
        now = time.monotonic()
        refusal = self.quirks.refuse(count, now - self._last_answer)
        self._last_answer = now
        if refusal is not None:
            return refusal
        if function_code not in _REGISTER_FUNCTION_CODES:
            return ExcCodes.ILLEGAL_FUNCTION
        if function_code != self.read_function_code:
            # The other register table is not mapped; writes never get here (the map is read-only).
            return ExcCodes.ILLEGAL_ADDRESS
        image = self.registers_at(self.clock.now_ms())
        offset = address - start_address
        requested = [image.get(address + index, 0) for index in range(count)]
        self.faults.garble(requested)
        current_registers[offset : offset + count] = requested
        return None


def register_block(first_address: int, count: int) -> SimData:
    """A read-only run of plain registers (their values are filled in on each request)."""
    return SimData(first_address, count=count, values=0, datatype=DataType.REGISTERS, readonly=True)
