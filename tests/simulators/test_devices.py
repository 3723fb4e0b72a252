"""Register images of the simulated devices, checked without a network."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from common.clock import ManualClock
from common.sites import Site
from simulators.devices.registers import float32, int16, string, uint32
from simulators.devices.sdm630 import REGISTER_RUNS, Sdm630, Sdm630Register
from simulators.devices.sunspec_inverter import (
    INVERTER_MODEL_ADDRESS,
    Model103,
    OperatingState,
    SunSpecInverter,
    power_scale_factor,
)
from simulators.model import SchoolModel
from tests.simulators.conftest import LESSON_MONDAY_MS

NOON_MS = LESSON_MONDAY_MS + 12 * 3_600_000
MIDNIGHT_MS = LESSON_MONDAY_MS + 24 * 3_600_000 - 60_000


def sunspec_json(model_id: int) -> dict[str, object] | None:
    import sunspec2

    path = Path(sunspec2.__file__).parent / "models" / "json" / f"model_{model_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_model_103_offsets_follow_the_sunspec_json() -> None:
    definition = sunspec_json(103)
    assert definition is not None
    offsets = {}
    offset = 0
    for point in definition["group"]["points"]:  # type: ignore[index]
        offsets[point["name"]] = offset
        offset += point["size"]
    assert offset == 52  # ID, L and 50 registers
    ours = {
        "ID": Model103.ID, "L": Model103.L, "A": Model103.A, "AphA": Model103.APH_A, "AphB": Model103.APH_B,
        "AphC": Model103.APH_C, "A_SF": Model103.A_SF, "PPVphAB": Model103.PPV_PH_AB,
        "PPVphBC": Model103.PPV_PH_BC, "PPVphCA": Model103.PPV_PH_CA, "PhVphA": Model103.PH_V_PH_A,
        "PhVphB": Model103.PH_V_PH_B, "PhVphC": Model103.PH_V_PH_C, "V_SF": Model103.V_SF, "W": Model103.W,
        "W_SF": Model103.W_SF, "Hz": Model103.HZ, "Hz_SF": Model103.HZ_SF, "VA": Model103.VA,
        "VA_SF": Model103.VA_SF, "VAr": Model103.VAR, "VAr_SF": Model103.VAR_SF, "PF": Model103.PF,
        "PF_SF": Model103.PF_SF, "WH": Model103.WH, "WH_SF": Model103.WH_SF, "DCA": Model103.DCA,
        "DCA_SF": Model103.DCA_SF, "DCV": Model103.DCV, "DCV_SF": Model103.DCV_SF, "DCW": Model103.DCW,
        "DCW_SF": Model103.DCW_SF, "TmpCab": Model103.TMP_CAB, "TmpSnk": Model103.TMP_SNK,
        "TmpTrns": Model103.TMP_TRNS, "TmpOt": Model103.TMP_OT, "Tmp_SF": Model103.TMP_SF, "St": Model103.ST,
        "StVnd": Model103.ST_VND, "Evt1": Model103.EVT1, "Evt2": Model103.EVT2, "EvtVnd1": Model103.EVT_VND1,
        "EvtVnd2": Model103.EVT_VND2, "EvtVnd3": Model103.EVT_VND3, "EvtVnd4": Model103.EVT_VND4,
    }  # fmt: skip
    assert {name: int(value) for name, value in ours.items()} == offsets


def test_register_encodings() -> None:
    assert int16(-1) == 0xFFFF and int16(300) == 300
    assert uint32(0x12345678) == [0x1234, 0x5678]
    assert float32(1.5) == [0x3FC0, 0x0000]
    assert string("SunS", 2) == [0x5375, 0x6E53]
    assert string("", 2) == [0, 0]
    with pytest.raises(OverflowError):
        int16(40_000)


def test_power_scale_factor_keeps_w_in_int16() -> None:
    assert power_scale_factor(30_000) == 0
    assert power_scale_factor(40_000) == 1


def signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


@pytest.fixture
def inverter(sp5: Site) -> SunSpecInverter:
    model = SchoolModel(sp5, start_ms=LESSON_MONDAY_MS, seed=0)
    return SunSpecInverter(model, ManualClock(NOON_MS), unit=1)


def test_inverter_image_by_day_and_by_night(inverter: SunSpecInverter) -> None:
    base = INVERTER_MODEL_ADDRESS
    for moment_ms, state_expected in ((NOON_MS, OperatingState.MPPT), (MIDNIGHT_MS, OperatingState.SLEEPING)):
        image = inverter.registers_at(moment_ms)
        state = inverter.model.state_at(moment_ms)
        w_sf = signed(image[base + Model103.W_SF])
        assert w_sf == 1  # sp5's 40 kW inverter
        assert image[base + Model103.W] * 10**w_sf == pytest.approx(state.pv_power_w, abs=5)
        assert (image[base + Model103.WH] << 16) + image[base + Model103.WH + 1] == int(state.pv_energy_wh)
        assert image[base + Model103.ST] == state_expected
        assert image[base + Model103.TMP_TRNS] == 0x8000 and image[base + Model103.TMP_OT] == 0x8000
        assert image[base + Model103.ST_VND] == 0xFFFF
        phase_v = image[base + Model103.PH_V_PH_A] * 10 ** signed(image[base + Model103.V_SF])
        assert 220 < phase_v < 240


def test_meter_image_shows_the_model(sp5: Site) -> None:
    model = SchoolModel(sp5, start_ms=LESSON_MONDAY_MS, seed=0)
    meter = Sdm630(model, ManualClock(NOON_MS), unit=1)
    image = meter.registers_at(NOON_MS)
    assert sorted(image) == sorted(first + n for first, count in REGISTER_RUNS for n in range(count))

    def value(register: Sdm630Register) -> float:
        return float(struct.unpack(">f", struct.pack(">HH", image[register], image[register + 1]))[0])

    state = model.state_at(NOON_MS)
    assert value(Sdm630Register.TOTAL_POWER) == state.grid_power_w
    phases = [Sdm630Register.POWER_L1, Sdm630Register.POWER_L2, Sdm630Register.POWER_L3]
    assert sum(value(phase) for phase in phases) == pytest.approx(state.grid_power_w, abs=0.1)
    assert value(Sdm630Register.IMPORT_KWH) * 1000 == pytest.approx(state.import_wh, abs=0.5)
    assert value(Sdm630Register.EXPORT_KWH) * 1000 == pytest.approx(state.export_wh, abs=0.5)
    assert 49.9 < value(Sdm630Register.FREQUENCY) < 50.1
    assert 0 < value(Sdm630Register.TOTAL_POWER_FACTOR) <= 1
