"""The second inverter brand (Huawei SUN2000), the SDM120, faults on demand, device quirks, a device swap, and
Modbus RTU over a virtual serial line, read with pymodbus's own clients."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes

from common.clock import ManualClock
from common.sites import RtuTransport, Site, TcpTransport
from lokalnie.ports import free_port
from simulators.devices.huawei_sun2000 import DeviceStatus, HuaweiRegister, HuaweiSun2000
from simulators.devices.sdm120 import REGISTER_RUNS as SDM120_RUNS
from simulators.devices.sdm120 import Sdm120, Sdm120Register
from simulators.devices.sunspec_inverter import (
    INVERTER_MODEL_ADDRESS,
    Model103,
    OperatingState,
    SunSpecInverter,
)
from simulators.model import SchoolModel
from simulators.serial_line import VirtualSerialLine
from simulators.server import SiteSimulator
from tests.simulators.conftest import LESSON_MONDAY_MS

pytestmark = pytest.mark.timeout(60)
NOON_MS = LESSON_MONDAY_MS + 12 * 3_600_000


def words_to_float(words: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *words))[0])


def u32(image: dict[int, int], address: int) -> int:
    return (image[address] << 16) | image[address + 1]


def s32(image: dict[int, int], address: int) -> int:
    value = u32(image, address)
    return value - (1 << 32) if value & 0x80000000 else value


def test_the_huawei_shows_the_model_in_its_own_units(sp5: Site) -> None:
    model = SchoolModel(sp5, start_ms=LESSON_MONDAY_MS, seed=0)
    inverter = HuaweiSun2000(model, ManualClock(NOON_MS), unit=1)
    state = model.state_at(NOON_MS)
    image = inverter.registers_at(NOON_MS)
    assert s32(image, HuaweiRegister.ACTIVE_POWER) == round(state.pv_power_w)
    assert u32(image, HuaweiRegister.ACCUMULATED_YIELD_ENERGY) == int(state.pv_energy_wh // 10)
    assert image[HuaweiRegister.DEVICE_STATUS] == DeviceStatus.ON_GRID
    assert 2200 < image[HuaweiRegister.PHASE_A_VOLTAGE] < 2400
    assert struct.pack(">15H", *[image[30000 + i] for i in range(15)]).rstrip(b"\0") == b"SUN2000-40KTL-M1"
    night = inverter.registers_at(LESSON_MONDAY_MS + 23 * 3_600_000)
    assert night[HuaweiRegister.DEVICE_STATUS] == DeviceStatus.STANDBY_NO_IRRADIATION
    inverter.faults.fault_state = True
    faulted = inverter.registers_at(NOON_MS)
    assert faulted[HuaweiRegister.DEVICE_STATUS] == DeviceStatus.SHUTDOWN_FAULT
    assert faulted[HuaweiRegister.ALARM_1] & 1 and faulted[HuaweiRegister.FAULT_CODE] == 2001
    assert s32(faulted, HuaweiRegister.ACTIVE_POWER) == 0


def test_the_sdm120_shows_the_whole_connection(sp5: Site) -> None:
    model = SchoolModel(sp5, start_ms=LESSON_MONDAY_MS, seed=0)
    meter = Sdm120(model, ManualClock(NOON_MS), unit=1)
    image = meter.registers_at(NOON_MS)
    state = model.state_at(NOON_MS)
    assert sorted(image) == sorted(first + n for first, count in SDM120_RUNS for n in range(count))
    at = Sdm120Register
    assert words_to_float([image[at.POWER], image[at.POWER + 1]]) == state.grid_power_w
    assert words_to_float([image[at.IMPORT_KWH], image[at.IMPORT_KWH + 1]]) * 1000 == pytest.approx(
        state.import_wh, abs=0.5
    )


def test_a_counter_reset_and_a_fault_state(sp5: Site) -> None:
    model = SchoolModel(sp5, start_ms=LESSON_MONDAY_MS, seed=0)
    inverter = SunSpecInverter(model, ManualClock(NOON_MS), unit=1)
    inverter.faults.counter_reset_at_ms = NOON_MS
    inverter.faults.fault_state = True
    later = NOON_MS + 600_000
    image = inverter.registers_at(later)
    base = INVERTER_MODEL_ADDRESS
    counted = u32(image, base + Model103.WH)
    assert counted == int(model.state_at(later).pv_energy_wh - model.state_at(NOON_MS).pv_energy_wh)
    assert 0 < counted < 10_000, "ten minutes of a 40 kW roof"
    assert image[base + Model103.ST] == OperatingState.FAULT and u32(image, base + Model103.EVT1) == 1


def on_ports(site: Site) -> Site:
    devices = [
        d.model_copy(update={"transport": TcpTransport(host="127.0.0.1", port=free_port())})
        for d in site.devices
    ]
    return site.model_copy(update={"devices": devices})


def test_quirks_and_a_swap_over_tcp(sp5: Site) -> None:
    site = on_ports(sp5)
    port = site.devices[0].transport.port  # type: ignore[union-attr]

    async def scenario() -> None:
        async with SiteSimulator(site, ManualClock(NOON_MS)) as simulator:
            quirks = simulator.devices["inverter"].quirks
            quirks.max_registers_per_request, quirks.max_connections = 50, 1
            first = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
            second = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
            assert await first.connect()
            big = await first.read_holding_registers(40000, count=60, device_id=1)
            assert big.isError() and big.exception_code == ExcCodes.ILLEGAL_VALUE
            await second.connect()
            await asyncio.sleep(0.1)
            assert simulator.stats("inverter").refused_connections == 1
            second.close()
            marker = await first.read_holding_registers(40000, count=2, device_id=1)
            assert marker.registers == [0x5375, 0x6E53]
            first.close()
            await simulator.swap("inverter", HuaweiSun2000)
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
            assert await client.connect()
            gone = await client.read_holding_registers(40000, count=2, device_id=1)
            assert gone.isError() and gone.exception_code == ExcCodes.ILLEGAL_ADDRESS, "no SunSpec any more"
            serial = await client.read_holding_registers(HuaweiRegister.SERIAL_NUMBER, count=10, device_id=1)
            assert struct.pack(">10H", *serial.registers).rstrip(b"\0") == b"SIM-sp5-1-R"
            client.close()

    asyncio.run(scenario())


def test_a_silent_night_and_a_settling_connection(sp5: Site) -> None:
    site = on_ports(sp5)
    port = site.devices[0].transport.port  # type: ignore[union-attr]

    async def scenario() -> None:
        clock = ManualClock(LESSON_MONDAY_MS + 23 * 3_600_000)
        async with SiteSimulator(site, clock) as simulator:
            simulator.devices["inverter"].quirks.silent_when_dark = True
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
            assert await client.connect()
            with pytest.raises(Exception):  # noqa: B017  pymodbus raises ModbusIOException on a timeout
                await client.read_holding_registers(40000, count=2, device_id=1)
            client.close()
            await clock.advance_to(NOON_MS + 86_400_000)
            simulator.devices["inverter"].quirks.settle_after_connect_s = 0.3
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.2, retries=0)
            assert await client.connect()
            with pytest.raises(Exception):  # noqa: B017
                await client.read_holding_registers(40000, count=2, device_id=1)
            client.close()
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
            assert await client.connect()
            await asyncio.sleep(0.35)
            answer = await client.read_holding_registers(40000, count=2, device_id=1)
            assert answer.registers == [0x5375, 0x6E53]
            client.close()
            assert simulator.stats("inverter").ignored_requests == 2

    asyncio.run(scenario())


def test_two_devices_on_one_serial_line_answer_in_rtu(sp5: Site) -> None:
    with VirtualSerialLine(19200, pace=True) as line:
        devices = [
            sp5.devices[0].model_copy(
                update={"transport": RtuTransport(device=line.client_port, baud=19200), "unit": 3}
            ),
            sp5.devices[1].model_copy(
                update={"transport": RtuTransport(device=line.client_port, baud=19200), "unit": 4}
            ),
        ]
        site = sp5.model_copy(update={"devices": devices})

        async def scenario() -> None:
            clock = ManualClock(NOON_MS)
            async with SiteSimulator(
                site, clock, serial_ports={line.client_port: line.server_port}
            ) as simulator:
                assert list(simulator.endpoints) == [line.client_port]
                client = AsyncModbusSerialClient(line.client_port, baudrate=19200, timeout=0.5, retries=0)
                assert await client.connect()
                marker = await client.read_holding_registers(40000, count=2, device_id=3)
                assert marker.registers == [0x5375, 0x6E53]
                meter = await client.read_input_registers(0x0034, count=2, device_id=4)
                assert words_to_float(meter.registers) == simulator.model.state_at(NOON_MS).grid_power_w
                with pytest.raises(Exception):  # noqa: B017  nobody on the bus answers for unit 9
                    await client.read_holding_registers(40000, count=2, device_id=9)
                client.close()

        asyncio.run(scenario())
        assert line.bytes_carried > 0
