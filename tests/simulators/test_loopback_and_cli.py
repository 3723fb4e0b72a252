"""Loopback addresses for many schools on one machine, and the ``sim`` command (with virtual serial lines)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import typer
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from typer.testing import CliRunner

from common.sites import RtuTransport, Site, TcpTransport, load_site, write_site
from simulators.cli import sim_command
from simulators.loopback import loopback_site, loopback_sites, tcp_endpoint_count
from tests.conftest import SITES_DIR
from tests.servers import stop_process, wait_for_port

REPO = Path(__file__).resolve().parents[2]


def ports(site: Site) -> list[int]:
    return [device.transport.port for device in site.devices if isinstance(device.transport, TcpTransport)]


def test_loopback_site_moves_every_device_to_consecutive_ports(sp5: Site) -> None:
    moved = loopback_site(sp5, 41_000)
    assert ports(moved) == [41_000, 41_001]
    assert all(
        isinstance(d.transport, TcpTransport) and d.transport.host == "127.0.0.1" for d in moved.devices
    )
    assert moved.id == sp5.id and moved.pv_kwp == sp5.pv_kwp
    assert ports(sp5) == [502, 502], "the original is untouched"


def test_devices_sharing_a_gateway_keep_sharing_a_port(sp5: Site) -> None:
    gateway = TcpTransport(host="192.168.53.30", port=502)
    shared = sp5.model_copy(
        update={
            "devices": [
                d.model_copy(update={"transport": gateway, "unit": n}) for n, d in enumerate(sp5.devices, 1)
            ]
        }
    )
    assert tcp_endpoint_count(shared) == 1
    assert ports(loopback_site(shared, 41_000)) == [41_000, 41_000]


def test_the_sixteen_schools_get_distinct_ports(all_sites: list[Site]) -> None:
    assert len(all_sites) == 16
    moved = loopback_sites(all_sites, 30_000)
    every_port = [port for site in moved for port in ports(site)]
    assert every_port == list(range(30_000, 30_032))


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(sim_command)
    return app


def test_a_bad_site_file_exits_2_with_its_message_and_no_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "sp99.yaml"
    broken.write_text("id: sp99\nname: x\n")
    result = CliRunner().invoke(cli_app(), ["--site", str(broken)])
    assert result.exit_code == 2
    assert "sp99.yaml" in result.output and "field" in result.output
    assert "Traceback" not in result.output


def two_free_ports() -> int:
    """The first of two consecutive free loopback ports."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports")


SIM = [sys.executable, "-c", "import typer; from simulators.cli import sim_command; typer.run(sim_command)"]


@contextmanager
def running_sim(args: list[str], log: Path, clock: str) -> Iterator[subprocess.Popen[bytes]]:
    """The ``sim`` command with ``args`` in its own process group, its output in ``log``; stopped after."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOKALNIE_CLOCK": clock}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*SIM, *args], stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        stop_process(process)


def sunspec_marker(make_client: Callable[[], ModbusBaseClient]) -> list[int]:
    """The two registers at 40000 of unit 1 ('SunS' on a SunSpec device), read by a new client."""

    async def read() -> list[int]:
        client = make_client()
        assert await client.connect()
        try:
            return list((await client.read_holding_registers(40000, count=2, device_id=1)).registers)
        finally:
            client.close()

    return asyncio.run(read())


@pytest.mark.timeout(60)
def test_the_command_serves_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    first_port = two_free_ports()
    args = ["--site", str(SITES_DIR / "sp5.yaml"), "--loopback-port", str(first_port), "--seed", "3"]
    log = tmp_path / "sim.log"
    with running_sim(args, log, "scaled:start=2026-06-15T10:00:00Z,speed=60") as process:
        wait_for_port(first_port + 1, process=process)

        def client() -> ModbusBaseClient:
            return AsyncModbusTcpClient("127.0.0.1", port=first_port, timeout=2, retries=0)

        assert sunspec_marker(client) == [0x5375, 0x6E53]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    text = log.read_text()
    assert f"sp5/inverter: SunSpecInverter unit 1 on 127.0.0.1:{first_port}" in text
    assert f"sp5/meter: Sdm630 unit 1 on 127.0.0.1:{first_port + 1}" in text
    assert "speed 60x" in text and "Traceback" not in text


@pytest.mark.timeout(60)
def test_the_command_serves_rtu_devices_on_virtual_lines_and_writes_the_agents_site_files(
    tmp_path: Path,
) -> None:
    """A school whose inverter is on RS-485: `--virtual-serial` serves it on a pseudo-terminal pair, and
    `--write-sites` hands the agent a site file naming its end of the line (and the meter's loopback port)."""
    school = load_site(SITES_DIR / "sp5.yaml")
    rtu = RtuTransport(device="/dev/ttyUSB0", baud=19200)
    devices = [school.devices[0].model_copy(update={"transport": rtu}), *school.devices[1:]]
    source = write_site(school.model_copy(update={"devices": devices}), tmp_path / "sites")
    first_port = two_free_ports()
    written = tmp_path / "agent-sites"
    args = ["--site", str(source), "--loopback-port", str(first_port), "--virtual-serial"]
    args += ["--write-sites", str(written)]
    log = tmp_path / "sim.log"
    with running_sim(args, log, "scaled:start=2026-06-15T10:00:00Z,speed=1") as process:
        wait_for_port(first_port, process=process)
        agent_site = load_site(written / "sp5.yaml")
        inverter, meter = agent_site.devices[0].transport, agent_site.devices[1].transport
        assert isinstance(inverter, RtuTransport) and inverter.device.startswith("/dev/pts/")
        assert inverter.baud == 19200
        assert isinstance(meter, TcpTransport) and (meter.host, meter.port) == ("127.0.0.1", first_port)

        def client() -> ModbusBaseClient:
            return AsyncModbusSerialClient(inverter.device, baudrate=19200, timeout=1, retries=1)

        assert sunspec_marker(client) == [0x5375, 0x6E53]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    text = log.read_text()
    assert f"sp5/inverter: the agent's end of its serial line is {inverter.device}" in text
    assert "Traceback" not in text
