"""The simulated devices over real Modbus TCP, read with pymodbus's async client (and pysunspec2)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes

from common.clock import ManualClock
from common.sites import Site, TcpTransport
from simulators.devices.sdm630 import Sdm630Register
from simulators.devices.sunspec_inverter import INVERTER_MODEL_ADDRESS, Model103, OperatingState
from simulators.model import SchoolState
from simulators.server import SiteSimulator
from tests.servers import free_port
from tests.simulators.conftest import LESSON_MONDAY_MS

pytestmark = pytest.mark.timeout(60)

NOON_MS = LESSON_MONDAY_MS + 12 * 3_600_000 + 1_234
SUNSPEC_BASE = 40000


def on_free_ports(site: Site, *, one_gateway: bool = False) -> Site:
    """The site with its devices on loopback: each on a free port, or all on one as behind a gateway."""
    shared_port = free_port()
    devices = []
    for unit, device in enumerate(site.devices, start=1):
        port = shared_port if one_gateway else free_port()
        transport = TcpTransport(host="127.0.0.1", port=port)
        devices.append(device.model_copy(update={"transport": transport, "unit": unit if one_gateway else 1}))
    return site.model_copy(update={"devices": devices})


def endpoint(site: Site, device_id: str) -> tuple[int, int]:
    device = next(device for device in site.devices if device.id == device_id)
    assert isinstance(device.transport, TcpTransport)
    return device.transport.port, device.unit


def run(
    site: Site, clock: ManualClock, scenario: Callable[[SiteSimulator], Awaitable[None]], **options: object
) -> None:
    async def main() -> None:
        async with SiteSimulator(site, clock, seed=0, **options) as simulator:  # type: ignore[arg-type]
            await asyncio.wait_for(scenario(simulator), timeout=45)

    asyncio.run(main())


async def client_for(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    return client


def signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def float32(words: Sequence[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", *words))[0])


async def read_inverter(client: AsyncModbusTcpClient, unit: int) -> dict[str, float]:
    response = await client.read_holding_registers(SUNSPEC_BASE, count=124, device_id=unit)
    assert not response.isError(), response
    words = response.registers[INVERTER_MODEL_ADDRESS - SUNSPEC_BASE :]
    w_sf = signed(words[Model103.W_SF])
    wh_sf = signed(words[Model103.WH_SF])
    return {
        "w": signed(words[Model103.W]) * 10.0**w_sf,
        "w_step": 10.0**w_sf,
        "wh": ((words[Model103.WH] << 16) + words[Model103.WH + 1]) * 10.0**wh_sf,
        "st": words[Model103.ST],
    }


async def read_meter(client: AsyncModbusTcpClient, unit: int) -> dict[str, float]:
    response = await client.read_input_registers(0x0000, count=0x50, device_id=unit)
    assert not response.isError(), response
    words = response.registers
    total = await client.read_input_registers(Sdm630Register.TOTAL_KWH, count=2, device_id=unit)
    assert not total.isError(), total

    def at(register: Sdm630Register) -> float:
        return float32(words[register : register + 2])

    return {
        "power_w": at(Sdm630Register.TOTAL_POWER),
        "import_wh": at(Sdm630Register.IMPORT_KWH) * 1000,
        "export_wh": at(Sdm630Register.EXPORT_KWH) * 1000,
        "total_wh": float32(total.registers) * 1000,
    }


def assert_devices_show(state: SchoolState, inverter: dict[str, float], meter: dict[str, float]) -> None:
    assert inverter["w"] == pytest.approx(state.pv_power_w, abs=inverter["w_step"] / 2)
    assert inverter["wh"] == int(state.pv_energy_wh)
    assert inverter["st"] == (OperatingState.MPPT if state.pv_power_w > 0 else OperatingState.SLEEPING)
    assert meter["power_w"] == state.grid_power_w
    # float32 kWh is spaced 0.24 Wh below 4,096 kWh, where the default meter counters start.
    assert meter["import_wh"] == pytest.approx(state.import_wh, abs=0.5)
    assert meter["export_wh"] == pytest.approx(state.export_wh, abs=0.5)
    assert meter["total_wh"] == pytest.approx(state.import_wh + state.export_wh, abs=0.5)


def test_both_devices_show_the_model_at_the_clock_time(sp5: Site) -> None:
    site = on_free_ports(sp5)
    clock = ManualClock(NOON_MS)

    async def scenario(simulator: SiteSimulator) -> None:
        inverter_port, inverter_unit = endpoint(site, "inverter")
        meter_port, meter_unit = endpoint(site, "meter")
        inverter, meter = await client_for(inverter_port), await client_for(meter_port)
        try:
            for moment_ms in (NOON_MS, NOON_MS + 600_500, NOON_MS + 3_600_000, NOON_MS + 11 * 3_600_000):
                await clock.advance_to(moment_ms)
                shown_inverter = await read_inverter(inverter, inverter_unit)
                shown_meter = await read_meter(meter, meter_unit)
                assert_devices_show(simulator.model.state_at(moment_ms), shown_inverter, shown_meter)
            assert shown_inverter["st"] == OperatingState.SLEEPING, "23:00 is night"
        finally:
            inverter.close()
            meter.close()

    run(site, clock, scenario)


def test_the_sunspec_chain_walks_from_40000_to_the_end_marker(sp5: Site) -> None:
    site = on_free_ports(sp5)

    async def scenario(simulator: SiteSimulator) -> None:
        port, unit = endpoint(site, "inverter")
        client = await client_for(port)
        try:
            marker = await client.read_holding_registers(SUNSPEC_BASE, count=2, device_id=unit)
            assert marker.registers == [0x5375, 0x6E53]
            address, chain = SUNSPEC_BASE + 2, []
            while True:
                header = await client.read_holding_registers(address, count=2, device_id=unit)
                model_id, length = header.registers
                chain.append((address, model_id, length))
                if model_id == 0xFFFF:
                    break
                address += 2 + length
            assert chain == [(40002, 1, 66), (40070, 103, 50), (40122, 0xFFFF, 0)]
            common = await client.read_holding_registers(40004, count=16, device_id=unit)
            assert struct.pack(">16H", *common.registers).rstrip(b"\0") == b"lokalnie"
        finally:
            client.close()

    run(site, ManualClock(NOON_MS), scenario)


def test_addresses_outside_the_map_answer_with_an_exception(sp5: Site) -> None:
    site = on_free_ports(sp5)

    async def scenario(simulator: SiteSimulator) -> None:
        inverter_port, unit = endpoint(site, "inverter")
        meter_port, _ = endpoint(site, "meter")
        inverter, meter = await client_for(inverter_port), await client_for(meter_port)
        try:
            refused = [
                await inverter.read_holding_registers(40124, count=1, device_id=unit),
                await inverter.read_holding_registers(39998, count=4, device_id=unit),
                await inverter.read_holding_registers(40120, count=6, device_id=unit),
                await meter.read_input_registers(0x0050, count=2, device_id=unit),
                await meter.read_input_registers(0x0100, count=2, device_id=unit),
                await meter.read_input_registers(0x0154, count=4, device_id=unit),
                await meter.read_holding_registers(0x0000, count=2, device_id=unit),  # not the input table
                await inverter.write_register(40084, 1, device_id=unit),  # read-only
            ]
            for response in refused:
                assert response.isError()
                assert response.exception_code == ExcCodes.ILLEGAL_ADDRESS
            coils = await meter.read_coils(0, count=8, device_id=unit)
            assert coils.isError() and coils.exception_code == ExcCodes.ILLEGAL_FUNCTION
        finally:
            inverter.close()
            meter.close()

    run(site, ManualClock(NOON_MS), scenario)


def test_two_devices_behind_one_gateway_answer_by_unit_id(sp5: Site) -> None:
    site = on_free_ports(sp5, one_gateway=True)
    clock = ManualClock(NOON_MS)

    async def scenario(simulator: SiteSimulator) -> None:
        port, inverter_unit = endpoint(site, "inverter")
        _, meter_unit = endpoint(site, "meter")
        assert len(simulator.endpoints) == 1
        client = await client_for(port)
        try:
            state = simulator.model.state_at(NOON_MS)
            assert_devices_show(
                state, await read_inverter(client, inverter_unit), await read_meter(client, meter_unit)
            )
        finally:
            client.close()

    run(site, clock, scenario)


def test_an_abrupt_disconnect_does_not_harm_the_server(sp5: Site) -> None:
    site = on_free_ports(sp5)
    port, unit = endpoint(site, "inverter")

    def slam(payload: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            raw.sendall(payload)
            # SO_LINGER 0: close with a reset, as a crashing client or a pulled cable does.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def scenario(simulator: SiteSimulator) -> None:
        request = struct.pack(">HHHBBHH", 7, 0, 6, unit, 3, SUNSPEC_BASE, 124)
        for payload in (b"", request[:5], request, request + b"\xff\xff\xff"):
            await asyncio.to_thread(slam, payload)
        await asyncio.sleep(0.1)
        client = await client_for(port)
        try:
            shown = await read_inverter(client, unit)
            assert shown["wh"] == int(simulator.model.state_at(NOON_MS).pv_energy_wh)
        finally:
            client.close()

    run(site, ManualClock(NOON_MS), scenario)


def test_faults_are_read_on_every_request(sp5: Site) -> None:
    site = on_free_ports(sp5)
    port, unit = endpoint(site, "inverter")

    async def scenario(simulator: SiteSimulator) -> None:
        faults = simulator.devices["inverter"].faults
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
        assert await client.connect()
        try:
            faults.exception = ExcCodes.DEVICE_BUSY
            busy = await client.read_holding_registers(SUNSPEC_BASE, count=2, device_id=unit)
            assert busy.isError() and busy.exception_code == ExcCodes.DEVICE_BUSY
            faults.exception = None
            faults.garbage = True
            garbage = await client.read_holding_registers(SUNSPEC_BASE, count=64, device_id=unit)
            assert garbage.registers[:2] != [0x5375, 0x6E53] or garbage.registers[2:4] != [1, 66]
            faults.garbage = False
            faults.no_answer = True
            with pytest.raises(Exception):  # noqa: B017  pymodbus raises ModbusIOException on a timeout
                await client.read_holding_registers(SUNSPEC_BASE, count=2, device_id=unit)
        finally:
            faults.no_answer = False
            client.close()
        await asyncio.sleep(0.1)  # let the held request finish before the server stops
        fresh = await client_for(port)
        try:
            answer = await fresh.read_holding_registers(SUNSPEC_BASE, count=2, device_id=unit)
            assert answer.registers == [0x5375, 0x6E53]
        finally:
            fresh.close()

    run(site, ManualClock(NOON_MS), scenario)


def test_pysunspec2_reads_the_inverter(sp5: Site) -> None:
    import sunspec2.modbus.client as client_module

    site = on_free_ports(sp5)
    port, unit = endpoint(site, "inverter")

    def scan() -> dict[str, object]:
        device = client_module.SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port)
        try:
            device.scan()
            inverter = device.models[103][0]
            inverter.read()
            return {
                "models": sorted(key for key in device.models if isinstance(key, int)),
                "w": inverter.W.cvalue,
                "wh": inverter.WH.cvalue,
                "st": inverter.St.value,
                "tmp_trns": inverter.TmpTrns.value,
                "manufacturer": device.models[1][0].Mn.value,
            }
        finally:
            device.close()

    async def scenario(simulator: SiteSimulator) -> None:
        read = await asyncio.to_thread(scan)
        state = simulator.model.state_at(NOON_MS)
        assert read["models"] == [1, 103]
        assert read["w"] == pytest.approx(state.pv_power_w, abs=5)
        assert read["wh"] == int(state.pv_energy_wh)
        assert read["st"] == OperatingState.MPPT
        assert read["tmp_trns"] is None, "0x8000: not implemented"
        assert read["manufacturer"] == "lokalnie"

    run(site, ManualClock(NOON_MS), scenario)
