"""The school's grid meter: an Eastron SDM630 (three-phase), read with function code 4.

Input registers, float32 in two big-endian words, 0-based addresses (Eastron's protocol, as in
volkszaehler/mbmd, meters/rs485/sdm.go). The map is two runs of registers: the instantaneous values
and main counters at 0x0000-0x004F, and the total energy at 0x0156-0x0157. Within a run, the points
below carry values and the rest read 0.0, as a meter answers a request spanning points a reader does
not want; a request touching any address outside the runs gets an illegal-address exception.
"""

from __future__ import annotations

import math
from enum import IntEnum

from pymodbus.simulator import SimData

from simulators.devices import grid
from simulators.devices.base import READ_INPUT_REGISTERS, SimulatedDevice, register_block
from simulators.devices.registers import float32

# How the school's load spreads over the phases (single-phase loads are never balanced); the PV
# inverter feeds the three phases equally, at unity power factor.
LOAD_SHARE_PER_PHASE = (0.36, 0.33, 0.31)
# Reactive power of the load per watt (motors, lighting ballasts, IT): a load power factor near 0.97.
LOAD_VAR_PER_W = 0.25
# The runs of mapped registers: (first address, number of registers).
REGISTER_RUNS = ((0x0000, 0x50), (0x0156, 2))


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
    POWER_FACTOR_L1 = 0x001E
    POWER_FACTOR_L2 = 0x0020
    POWER_FACTOR_L3 = 0x0022
    TOTAL_POWER = 0x0034
    TOTAL_APPARENT_POWER = 0x0038
    TOTAL_REACTIVE_POWER = 0x003C
    TOTAL_POWER_FACTOR = 0x003E
    FREQUENCY = 0x0046
    IMPORT_KWH = 0x0048
    EXPORT_KWH = 0x004A
    TOTAL_KWH = 0x0156


class Sdm630(SimulatedDevice):
    """The grid meter at the school's connection: positive power when the school imports."""

    read_function_code = READ_INPUT_REGISTERS

    def simdata(self) -> list[SimData]:
        return [register_block(first, count) for first, count in REGISTER_RUNS]

    def values_at(self, ts_ms: int) -> dict[Sdm630Register, float]:
        """The meter's readings at `ts_ms`, in its units (V, A, W, Hz, kWh)."""
        state = self.state_at(ts_ms)
        voltages = grid.phase_voltages_v(ts_ms, state.grid_power_w, seed=self.model.seed)
        loads = [state.load_w * share for share in LOAD_SHARE_PER_PHASE]
        powers = [load - state.pv_power_w / 3.0 for load in loads]
        reactive = [LOAD_VAR_PER_W * load for load in loads]
        apparent = [math.hypot(power, var) for power, var in zip(powers, reactive, strict=True)]
        currents = [va / volts for va, volts in zip(apparent, voltages, strict=True)]
        factors = [_power_factor(power, va) for power, va in zip(powers, apparent, strict=True)]
        total_apparent = math.hypot(state.grid_power_w, sum(reactive))
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
            Sdm630Register.POWER_FACTOR_L1: factors[0],
            Sdm630Register.POWER_FACTOR_L2: factors[1],
            Sdm630Register.POWER_FACTOR_L3: factors[2],
            Sdm630Register.TOTAL_POWER: state.grid_power_w,
            Sdm630Register.TOTAL_APPARENT_POWER: total_apparent,
            Sdm630Register.TOTAL_REACTIVE_POWER: sum(reactive),
            Sdm630Register.TOTAL_POWER_FACTOR: _power_factor(state.grid_power_w, total_apparent),
            Sdm630Register.FREQUENCY: grid.frequency_hz(ts_ms, seed=self.model.seed),
            Sdm630Register.IMPORT_KWH: state.import_wh / 1000.0,
            Sdm630Register.EXPORT_KWH: state.export_wh / 1000.0,
            Sdm630Register.TOTAL_KWH: (state.import_wh + state.export_wh) / 1000.0,
        }

    def registers_at(self, ts_ms: int) -> dict[int, int]:
        image = {first + index: 0 for first, count in REGISTER_RUNS for index in range(count)}
        for register, value in self.values_at(ts_ms).items():
            high, low = float32(value)
            image[register] = high
            image[register + 1] = low
        return image


def _power_factor(power_w: float, apparent_va: float) -> float:
    """|P| / S, 1.0 with no current flowing."""
    return abs(power_w) / apparent_va if apparent_va > 0 else 1.0
