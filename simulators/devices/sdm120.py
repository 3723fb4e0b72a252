"""A single-phase grid meter: an Eastron SDM120 on RS-485, read with function code 4.

Input registers, float32 in two big-endian words, 0-based addresses, the same as the SDM630's first phase
(Eastron's protocol, as in volkszaehler/mbmd ``meters/rs485/sdm120.go``). The map is two runs, 0x0000-0x004F
and 0x0156-0x0157, as the simulated SDM630's. It shows the whole school's load and PV on its one phase.
"""

from __future__ import annotations

import math
from enum import IntEnum

from pymodbus.simulator import SimData

from simulators.devices import grid
from simulators.devices.base import READ_INPUT_REGISTERS, SimulatedDevice, register_block
from simulators.devices.registers import float32
from simulators.devices.sdm630 import LOAD_VAR_PER_W

REGISTER_RUNS = ((0x0000, 0x50), (0x0156, 2))


class Sdm120Register(IntEnum):
    """Addresses of the mapped SDM120 input registers (each a float32)."""

    VOLTAGE = 0x0000
    CURRENT = 0x0006
    POWER = 0x000C
    APPARENT_POWER = 0x0012
    REACTIVE_POWER = 0x0018
    POWER_FACTOR = 0x001E
    FREQUENCY = 0x0046
    IMPORT_KWH = 0x0048
    EXPORT_KWH = 0x004A
    TOTAL_KWH = 0x0156


class Sdm120(SimulatedDevice):
    """The grid meter of a single-phase connection: positive power when the school imports."""

    read_function_code = READ_INPUT_REGISTERS

    def simdata(self) -> list[SimData]:
        return [register_block(first, count) for first, count in REGISTER_RUNS]

    def values_at(self, ts_ms: int) -> dict[Sdm120Register, float]:
        """The meter's readings at `ts_ms`, in its units (V, A, W, VA, var, Hz, kWh)."""
        state = self.state_at(ts_ms)
        volts = grid.phase_voltages_v(ts_ms, state.grid_power_w, seed=self.model.seed)[0]
        reactive = LOAD_VAR_PER_W * state.load_w
        apparent = math.hypot(state.grid_power_w, reactive)
        return {
            Sdm120Register.VOLTAGE: volts,
            Sdm120Register.CURRENT: apparent / volts,
            Sdm120Register.POWER: state.grid_power_w,
            Sdm120Register.APPARENT_POWER: apparent,
            Sdm120Register.REACTIVE_POWER: reactive,
            Sdm120Register.POWER_FACTOR: abs(state.grid_power_w) / apparent if apparent > 0 else 1.0,
            Sdm120Register.FREQUENCY: grid.frequency_hz(ts_ms, seed=self.model.seed),
            Sdm120Register.IMPORT_KWH: state.import_wh / 1000.0,
            Sdm120Register.EXPORT_KWH: state.export_wh / 1000.0,
            Sdm120Register.TOTAL_KWH: (state.import_wh + state.export_wh) / 1000.0,
        }

    def registers_at(self, ts_ms: int) -> dict[int, int]:
        image = {first + index: 0 for first, count in REGISTER_RUNS for index in range(count)}
        for register, value in self.values_at(ts_ms).items():
            image[register], image[register + 1] = float32(value)
        return image
