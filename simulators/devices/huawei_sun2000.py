"""A Huawei SUN2000 three-phase inverter behind its SDongle: the second inverter brand, not SunSpec.

Holding registers (function code 3), Huawei's own map as huawei-solar-lib reads it (``registers.py``): the
device information at 30000 (model name, serial number, number of strings, rated power) and the live values at
32000 (state bits, alarms, PV strings, grid voltages and currents, active power, frequency, temperature,
device status, the lifetime yield in kWh with two decimals). Values have fixed gains, not scale factors.

The map is two runs of registers, 30000-30081 and 32000-32119: inside a run the registers without a simulated
point read 0; any address outside them answers ILLEGAL ADDRESS. Like the real dongle, the simulator reads at
most 64 registers a request by default (`DEFAULT_QUIRKS`); a test can add the dongle's other habits
(ignoring requests for seconds after a connection, wanting a pause between requests).
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import ClassVar

from pymodbus.simulator import SimData

from simulators.devices import grid
from simulators.devices.base import READ_HOLDING_REGISTERS, SimulatedDevice, register_block
from simulators.devices.faults import DeviceQuirks
from simulators.devices.registers import int16, int32, string, uint16, uint32

REGISTER_RUNS = ((30000, 82), (32000, 120))
# The dongle's limit on one request (huawei-solar-lib, evcc's huawei-dongle template).
DEFAULT_QUIRKS = DeviceQuirks(max_registers_per_request=64)
NOMINAL_EFFICIENCY = 0.965
MPP_VOLTAGE_V = 600.0


class HuaweiRegister(IntEnum):
    """Addresses of the simulated points (huawei-solar-lib ``registers.py``)."""

    MODEL_NAME = 30000  # string, 15 registers
    SERIAL_NUMBER = 30015  # string, 10 registers
    NB_PV_STRINGS = 30071
    NB_MPP_TRACKERS = 30072
    RATED_POWER = 30073  # u32, W
    STATE_1 = 32000  # bitfield
    ALARM_1 = 32008  # bitfield
    PV_01_VOLTAGE = 32016  # i16, V x 10
    PV_01_CURRENT = 32017  # i16, A x 100
    PV_02_VOLTAGE = 32018
    PV_02_CURRENT = 32019
    INPUT_POWER = 32064  # i32, W
    LINE_VOLTAGE_A_B = 32066  # u16, V x 10
    LINE_VOLTAGE_B_C = 32067
    LINE_VOLTAGE_C_A = 32068
    PHASE_A_VOLTAGE = 32069  # u16, V x 10
    PHASE_B_VOLTAGE = 32070
    PHASE_C_VOLTAGE = 32071
    PHASE_A_CURRENT = 32072  # i32, A x 1000
    PHASE_B_CURRENT = 32074
    PHASE_C_CURRENT = 32076
    DAY_ACTIVE_POWER_PEAK = 32078  # i32, W (not simulated: reads 0)
    ACTIVE_POWER = 32080  # i32, W
    REACTIVE_POWER = 32082  # i32, var
    POWER_FACTOR = 32084  # i16, x 1000
    GRID_FREQUENCY = 32085  # u16, Hz x 100
    EFFICIENCY = 32086  # u16, % x 100
    INTERNAL_TEMPERATURE = 32087  # i16, degC x 10
    DEVICE_STATUS = 32089
    FAULT_CODE = 32090
    ACCUMULATED_YIELD_ENERGY = 32106  # u32, kWh x 100


class DeviceStatus(IntEnum):
    """Some values of the device status register (huawei-solar-lib ``register_values.py``)."""

    ON_GRID = 0x0200
    SHUTDOWN_FAULT = 0x0300
    STANDBY_NO_IRRADIATION = 0xA000


# State 1 bits: standby, grid-connected, grid-connected normally.
STATE_STANDBY = 1 << 0
STATE_GRID_CONNECTED = 1 << 1
STATE_GRID_CONNECTED_NORMALLY = 1 << 2
# Alarm 1 bit 0: high string input voltage (alarm 2001), what a faulted simulated inverter shows.
ALARM_HIGH_STRING_VOLTAGE = 1 << 0
FAULT_CODE_HIGH_STRING_VOLTAGE = 2001


class HuaweiSun2000(SimulatedDevice):
    """The school's inverter as a Huawei SUN2000 with an SDongle."""

    read_function_code = READ_HOLDING_REGISTERS
    default_quirks: ClassVar[DeviceQuirks] = DEFAULT_QUIRKS

    def simdata(self) -> list[SimData]:
        return [register_block(first, count) for first, count in REGISTER_RUNS]

    @property
    def model_name(self) -> str:
        return f"SUN2000-{round(self.model.pv_system.ac_rating_w / 1000)}KTL-M1"

    def registers_at(self, ts_ms: int) -> dict[int, int]:
        image = {first + index: 0 for first, count in REGISTER_RUNS for index in range(count)}
        for address, words in self._points(ts_ms).items():
            for offset, word in enumerate(words):
                image[address + offset] = word
        return image

    def _points(self, ts_ms: int) -> dict[HuaweiRegister, list[int]]:
        state = self.state_at(ts_ms)
        seed = self.model.seed
        faulted = self.faults.fault_state
        pv_w = 0.0 if faulted else state.pv_power_w
        phase_v = grid.phase_voltages_v(ts_ms, state.grid_power_w, seed=seed)
        dc_w = pv_w / NOMINAL_EFFICIENCY
        string_a = dc_w / 2.0 / MPP_VOLTAGE_V if pv_w > 0 else 0.0
        string_v = MPP_VOLTAGE_V if pv_w > 0 else 0.0
        load_fraction = pv_w / self.model.pv_system.ac_rating_w
        return {
            HuaweiRegister.MODEL_NAME: string(self.model_name, 15),
            HuaweiRegister.SERIAL_NUMBER: string(self.serial[:20], 10),
            HuaweiRegister.NB_PV_STRINGS: [2],
            HuaweiRegister.NB_MPP_TRACKERS: [2],
            HuaweiRegister.RATED_POWER: uint32(round(self.model.pv_system.ac_rating_w)),
            HuaweiRegister.STATE_1: [self._state_bits(pv_w)],
            HuaweiRegister.ALARM_1: [ALARM_HIGH_STRING_VOLTAGE if faulted else 0],
            HuaweiRegister.PV_01_VOLTAGE: [int16(string_v * 10)],
            HuaweiRegister.PV_01_CURRENT: [int16(string_a * 100)],
            HuaweiRegister.PV_02_VOLTAGE: [int16(string_v * 10)],
            HuaweiRegister.PV_02_CURRENT: [int16(string_a * 100)],
            HuaweiRegister.INPUT_POWER: int32(dc_w),
            HuaweiRegister.LINE_VOLTAGE_A_B: [uint16(grid.line_voltage_v(phase_v[0], phase_v[1]) * 10)],
            HuaweiRegister.LINE_VOLTAGE_B_C: [uint16(grid.line_voltage_v(phase_v[1], phase_v[2]) * 10)],
            HuaweiRegister.LINE_VOLTAGE_C_A: [uint16(grid.line_voltage_v(phase_v[2], phase_v[0]) * 10)],
            HuaweiRegister.PHASE_A_VOLTAGE: [uint16(phase_v[0] * 10)],
            HuaweiRegister.PHASE_B_VOLTAGE: [uint16(phase_v[1] * 10)],
            HuaweiRegister.PHASE_C_VOLTAGE: [uint16(phase_v[2] * 10)],
            HuaweiRegister.PHASE_A_CURRENT: int32(pv_w / 3.0 / phase_v[0] * 1000),
            HuaweiRegister.PHASE_B_CURRENT: int32(pv_w / 3.0 / phase_v[1] * 1000),
            HuaweiRegister.PHASE_C_CURRENT: int32(pv_w / 3.0 / phase_v[2] * 1000),
            HuaweiRegister.ACTIVE_POWER: int32(pv_w),
            HuaweiRegister.REACTIVE_POWER: int32(0),
            HuaweiRegister.POWER_FACTOR: [int16(1000)],
            HuaweiRegister.GRID_FREQUENCY: [uint16(grid.frequency_hz(ts_ms, seed=seed) * 100)],
            HuaweiRegister.EFFICIENCY: [uint16(NOMINAL_EFFICIENCY * 10000 if pv_w > 0 else 0)],
            HuaweiRegister.INTERNAL_TEMPERATURE: [
                int16((self.model.temp_air_c(ts_ms) + 8.0 + 20.0 * load_fraction) * 10)
            ],
            HuaweiRegister.DEVICE_STATUS: [self._status(pv_w)],
            HuaweiRegister.FAULT_CODE: [FAULT_CODE_HIGH_STRING_VOLTAGE if faulted else 0],
            # The counter shows whole hundredths of a kWh it has completed.
            HuaweiRegister.ACCUMULATED_YIELD_ENERGY: uint32(math.floor(state.pv_energy_wh / 10) & 0xFFFFFFFF),
        }

    def _state_bits(self, pv_w: float) -> int:
        return STATE_GRID_CONNECTED | STATE_GRID_CONNECTED_NORMALLY if pv_w > 0 else STATE_STANDBY

    def _status(self, pv_w: float) -> int:
        if self.faults.fault_state:
            return DeviceStatus.SHUTDOWN_FAULT
        return DeviceStatus.ON_GRID if pv_w > 0 else DeviceStatus.STANDBY_NO_IRRADIATION
