"""A three-phase PV inverter with a SunSpec map: common model 1 and inverter model 103 (integer + SF).

Holding registers (function code 3), base address 40000::

    40000  'SunS' (0x5375 0x6E53)
    40002  model 1, length 66: Mn, Md, Opt, Vr, SN, DA, Pad
    40070  model 103, length 50: currents, voltages, W, Hz, VA, VAr, PF, WH, DC side, temperatures, St, events
    40122  end marker 0xFFFF, length 0

Point offsets follow pysunspec2's ``model_103.json``; points a small string inverter lacks carry the
SunSpec "not implemented" values.
"""

from __future__ import annotations

import math
from enum import IntEnum

from pymodbus.simulator import SimData

from simulators.devices import grid
from simulators.devices.base import READ_HOLDING_REGISTERS, SimulatedDevice, register_block
from simulators.devices.registers import (
    INT16_NOT_IMPLEMENTED,
    UINT16_NOT_IMPLEMENTED,
    UINT32_NOT_IMPLEMENTED,
    int16,
    scaled,
    string,
    uint16,
    uint32,
)

SUNSPEC_BASE = 40000
SUNSPEC_MARKER = (0x5375, 0x6E53)
COMMON_MODEL_ID = 1
COMMON_MODEL_LENGTH = 66
COMMON_MODEL_ADDRESS = SUNSPEC_BASE + 2
INVERTER_MODEL_ID = 103
INVERTER_MODEL_LENGTH = 50
INVERTER_MODEL_ADDRESS = COMMON_MODEL_ADDRESS + 2 + COMMON_MODEL_LENGTH
END_MODEL_ID = 0xFFFF
END_ADDRESS = INVERTER_MODEL_ADDRESS + 2 + INVERTER_MODEL_LENGTH
MAP_REGISTERS = END_ADDRESS + 2 - SUNSPEC_BASE

MANUFACTURER = "lokalnie"
FIRMWARE_VERSION = "0.1.0"

# Fixed scale factors: SunSpec value = raw x 10^SF.
A_SF = -1
V_SF = -1
HZ_SF = -2
PF_SF = -1
WH_SF = 0
DCA_SF = -2
DCV_SF = -1
TMP_SF = -1
# The string inverter's MPP voltage at 25 °C and its fall with temperature.
MPP_VOLTAGE_V = 620.0
MPP_VOLTAGE_PER_K = -0.0035
NOMINAL_EFFICIENCY = 0.965


# Evt1 bit 0 (GROUND_FAULT): the alarm a faulted simulated inverter shows.
EVT1_GROUND_FAULT = 1 << 0


class Model103(IntEnum):
    """Offsets of the model 103 points from the model's ID register (pysunspec2 ``model_103.json``)."""

    ID = 0
    L = 1
    A = 2
    APH_A = 3
    APH_B = 4
    APH_C = 5
    A_SF = 6
    PPV_PH_AB = 7
    PPV_PH_BC = 8
    PPV_PH_CA = 9
    PH_V_PH_A = 10
    PH_V_PH_B = 11
    PH_V_PH_C = 12
    V_SF = 13
    W = 14
    W_SF = 15
    HZ = 16
    HZ_SF = 17
    VA = 18
    VA_SF = 19
    VAR = 20
    VAR_SF = 21
    PF = 22
    PF_SF = 23
    WH = 24  # acc32: 24-25
    WH_SF = 26
    DCA = 27
    DCA_SF = 28
    DCV = 29
    DCV_SF = 30
    DCW = 31
    DCW_SF = 32
    TMP_CAB = 33
    TMP_SNK = 34
    TMP_TRNS = 35
    TMP_OT = 36
    TMP_SF = 37
    ST = 38
    ST_VND = 39
    EVT1 = 40  # bitfield32: 40-41
    EVT2 = 42  # bitfield32: 42-43
    EVT_VND1 = 44  # bitfield32 each: 44-51
    EVT_VND2 = 46
    EVT_VND3 = 48
    EVT_VND4 = 50


class OperatingState(IntEnum):
    """Model 103 point St (enum16)."""

    OFF = 1
    SLEEPING = 2
    STARTING = 3
    MPPT = 4
    THROTTLED = 5
    SHUTTING_DOWN = 6
    FAULT = 7
    STANDBY = 8


def power_scale_factor(ac_rating_w: float) -> int:
    """W_SF for an inverter: 0 (1 W steps) while its rating fits int16, else 1 (10 W steps)."""
    return 0 if ac_rating_w <= 0x7FFF else 1


class SunSpecInverter(SimulatedDevice):
    """The PV inverter of a school: SunSpec models 1 and 103 from the school model."""

    read_function_code = READ_HOLDING_REGISTERS

    def simdata(self) -> list[SimData]:
        return [register_block(SUNSPEC_BASE, MAP_REGISTERS)]

    @property
    def serial_number(self) -> str:
        return self.serial[:32]

    @property
    def w_sf(self) -> int:
        return power_scale_factor(self.model.pv_system.ac_rating_w)

    def registers_at(self, ts_ms: int) -> dict[int, int]:
        words = [*SUNSPEC_MARKER, *self._common_model(), *self._inverter_model(ts_ms), END_MODEL_ID, 0]
        return {SUNSPEC_BASE + index: word for index, word in enumerate(words)}

    def _common_model(self) -> list[int]:
        rating_kw = round(self.model.pv_system.ac_rating_w / 1000)
        return [
            COMMON_MODEL_ID,
            COMMON_MODEL_LENGTH,
            *string(MANUFACTURER, 16),
            *string(f"SIM-3P-{rating_kw}K", 16),
            *string("", 8),
            *string(FIRMWARE_VERSION, 8),
            *string(self.serial_number, 16),
            self.unit,
            INT16_NOT_IMPLEMENTED,  # Pad
        ]

    def _inverter_model(self, ts_ms: int) -> list[int]:
        state = self.state_at(ts_ms)
        seed = self.model.seed
        rating_w = self.model.pv_system.ac_rating_w
        producing = state.pv_power_w > 0
        phase_v = grid.phase_voltages_v(ts_ms, state.grid_power_w, seed=seed)
        load_fraction = state.pv_power_w / rating_w
        temp_air_c = self.model.temp_air_c(ts_ms)
        temp_cell_c = temp_air_c + 25.0 * load_fraction
        dc_voltage_v = MPP_VOLTAGE_V * (1.0 + MPP_VOLTAGE_PER_K * (temp_cell_c - 25.0)) if producing else 0.0
        dc_power_w = state.pv_power_w / NOMINAL_EFFICIENCY
        dc_current_a = dc_power_w / dc_voltage_v if producing else 0.0
        phase_current_a = [state.pv_power_w / 3.0 / volts for volts in phase_v]
        w_sf = self.w_sf

        registers = [0] * (INVERTER_MODEL_LENGTH + 2)
        points: dict[Model103, int] = {
            Model103.ID: INVERTER_MODEL_ID,
            Model103.L: INVERTER_MODEL_LENGTH,
            Model103.A: uint16(scaled(sum(phase_current_a), A_SF)),
            Model103.APH_A: uint16(scaled(phase_current_a[0], A_SF)),
            Model103.APH_B: uint16(scaled(phase_current_a[1], A_SF)),
            Model103.APH_C: uint16(scaled(phase_current_a[2], A_SF)),
            Model103.A_SF: int16(A_SF),
            Model103.PPV_PH_AB: uint16(scaled(grid.line_voltage_v(phase_v[0], phase_v[1]), V_SF)),
            Model103.PPV_PH_BC: uint16(scaled(grid.line_voltage_v(phase_v[1], phase_v[2]), V_SF)),
            Model103.PPV_PH_CA: uint16(scaled(grid.line_voltage_v(phase_v[2], phase_v[0]), V_SF)),
            Model103.PH_V_PH_A: uint16(scaled(phase_v[0], V_SF)),
            Model103.PH_V_PH_B: uint16(scaled(phase_v[1], V_SF)),
            Model103.PH_V_PH_C: uint16(scaled(phase_v[2], V_SF)),
            Model103.V_SF: int16(V_SF),
            Model103.W: int16(scaled(state.pv_power_w, w_sf)),
            Model103.W_SF: int16(w_sf),
            Model103.HZ: uint16(scaled(grid.frequency_hz(ts_ms, seed=seed), HZ_SF)),
            Model103.HZ_SF: int16(HZ_SF),
            Model103.VA: int16(scaled(state.pv_power_w, w_sf)),
            Model103.VA_SF: int16(w_sf),
            Model103.VAR: int16(0),
            Model103.VAR_SF: int16(w_sf),
            Model103.PF: int16(scaled(100.0, PF_SF)),  # unity power factor, in percent
            Model103.PF_SF: int16(PF_SF),
            Model103.WH_SF: int16(WH_SF),
            Model103.DCA: uint16(scaled(dc_current_a, DCA_SF)),
            Model103.DCA_SF: int16(DCA_SF),
            Model103.DCV: uint16(scaled(dc_voltage_v, DCV_SF)),
            Model103.DCV_SF: int16(DCV_SF),
            Model103.DCW: int16(scaled(dc_power_w, w_sf)),
            Model103.DCW_SF: int16(w_sf),
            Model103.TMP_CAB: int16(scaled(temp_air_c + 5.0 + 10.0 * load_fraction, TMP_SF)),
            Model103.TMP_SNK: int16(scaled(temp_air_c + 8.0 + 25.0 * load_fraction, TMP_SF)),
            Model103.TMP_TRNS: INT16_NOT_IMPLEMENTED,
            Model103.TMP_OT: INT16_NOT_IMPLEMENTED,
            Model103.TMP_SF: int16(TMP_SF),
            Model103.ST: self._operating_state(producing),
            Model103.ST_VND: UINT16_NOT_IMPLEMENTED,
        }
        for offset, value in points.items():
            registers[offset] = value
        # A counter shows whole watt-hours it has completed, never more than was produced.
        registers[Model103.WH : Model103.WH + 2] = uint32(math.floor(state.pv_energy_wh) & 0xFFFFFFFF)
        registers[Model103.EVT1 : Model103.EVT1 + 2] = uint32(
            EVT1_GROUND_FAULT if self.faults.fault_state else 0
        )
        registers[Model103.EVT2 : Model103.EVT2 + 2] = uint32(0)
        for vendor_events in (Model103.EVT_VND1, Model103.EVT_VND2, Model103.EVT_VND3, Model103.EVT_VND4):
            registers[vendor_events : vendor_events + 2] = uint32(UINT32_NOT_IMPLEMENTED)
        return registers

    def _operating_state(self, producing: bool) -> OperatingState:
        if self.faults.fault_state:
            return OperatingState.FAULT
        return OperatingState.MPPT if producing else OperatingState.SLEEPING
