"""The school's grid meter: an Eastron SDM630 (three-phase), read with function code 4.

Input registers, float32 in two big-endian words, 0-based addresses (Eastron's protocol, as in
volkszaehler/mbmd). Only the points below are mapped; a request touching any other address gets an
illegal-address exception, so a reader must not merge requests across the gaps.
"""

from __future__ import annotations

from enum import IntEnum

from pymodbus.simulator import SimData

from simulators.devices import grid
from simulators.devices.base import READ_INPUT_REGISTERS, SimulatedDevice, register_block
from simulators.devices.registers import float32

# How the school's load spreads over the phases (single-phase loads are never balanced); the PV
# inverter feeds the three phases equally.
LOAD_SHARE_PER_PHASE = (0.36, 0.33, 0.31)


class Sdm630Register(IntEnum):
    """Addresses of the mapped SDM630 input registers (each a float32)."""

    VOLTAGE_L1 = 0x0000
    VOLTAGE_L2 = 0x0002
    VOLTAGE_L3 = 0x0004
    CURRENT_L1 = 0x0006
    CURRENT_L2 = 0x0008
    CURRENT_L3 = 0x000A
    POWER_L1 = 0x000C
    POWER_L2 = 0x000E
    POWER_L3 = 0x0010
    TOTAL_POWER = 0x0034
    FREQUENCY = 0x0046
    IMPORT_KWH = 0x0048
    EXPORT_KWH = 0x004A
    TOTAL_KWH = 0x0156


class Sdm630(SimulatedDevice):
    """The grid meter at the school's connection: positive power when the school imports."""

    read_function_code = READ_INPUT_REGISTERS

    def simdata(self) -> list[SimData]:
        return [register_block(register, 2) for register in Sdm630Register]

    def values_at(self, ts_ms: int) -> dict[Sdm630Register, float]:
        """The meter's readings at `ts_ms`, in its units (V, A, W, Hz, kWh)."""
        state = self.model.state_at(ts_ms)
        voltages = grid.phase_voltages_v(ts_ms, state.grid_power_w, seed=self.model.seed)
        powers = [state.load_w * share - state.pv_power_w / 3.0 for share in LOAD_SHARE_PER_PHASE]
        currents = [abs(power) / volts for power, volts in zip(powers, voltages, strict=True)]
        return {
            Sdm630Register.VOLTAGE_L1: voltages[0],
            Sdm630Register.VOLTAGE_L2: voltages[1],
            Sdm630Register.VOLTAGE_L3: voltages[2],
            Sdm630Register.CURRENT_L1: currents[0],
            Sdm630Register.CURRENT_L2: currents[1],
            Sdm630Register.CURRENT_L3: currents[2],
            Sdm630Register.POWER_L1: powers[0],
            Sdm630Register.POWER_L2: powers[1],
            Sdm630Register.POWER_L3: powers[2],
            Sdm630Register.TOTAL_POWER: state.grid_power_w,
            Sdm630Register.FREQUENCY: grid.frequency_hz(ts_ms, seed=self.model.seed),
            Sdm630Register.IMPORT_KWH: state.import_wh / 1000.0,
            Sdm630Register.EXPORT_KWH: state.export_wh / 1000.0,
            Sdm630Register.TOTAL_KWH: (state.import_wh + state.export_wh) / 1000.0,
        }

    def registers_at(self, ts_ms: int) -> dict[int, int]:
        image: dict[int, int] = {}
        for register, value in self.values_at(ts_ms).items():
            high, low = float32(value)
            image[register] = high
            image[register + 1] = low
        return image
