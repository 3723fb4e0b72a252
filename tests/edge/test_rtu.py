"""Modbus RTU for real: the agent and the simulators on the two ends of a virtual RS-485 line (two
pseudo-terminals joined in-process, paced at the line's baud rate), with pymodbus's RTU framer on both sides,
and the agent's samples and events arriving at a real Mosquitto."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from common.broker import parse_broker_url
from common.clock import ManualClock
from common.sites import Site
from edge.agent import EdgeAgent, build_pollers
from edge.modbus.link import LinkSettings
from edge.outbox import Outbox
from edge.publisher import PublisherSettings
from lokalnie.cli import app
from simulators.model import SchoolState
from simulators.serial_line import VirtualSerialLine
from simulators.server import SiteSimulator
from tests import servers
from tests.conftest import PROFILES_DIR
from tests.edge.conftest import (
    NOON_MS,
    Collector,
    device,
    running,
    school,
    simulator_thread,
    wait_for,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
PERIOD_MS = 10_000


def test_two_devices_on_one_rs485_line_reach_the_broker(broker: servers.Broker, tmp_path: Path) -> None:
    with VirtualSerialLine(9600, pace=True) as line:
        site = school(
            [
                device("inverter", "sunspec-inverter", serial=line.client_port, unit=2),
                device("meter", "eastron-sdm120", serial=line.client_port, unit=1),
            ],
            school_id="pm2",
        )
        collector = Collector(broker.url, site.id, client_id=f"rtu-{tmp_path.name}")
        try:
            model_states = asyncio.run(run_agent(site, line, broker, tmp_path))
            wait_for(lambda: len(collector.seqs()) >= 10, 15, "the samples on the broker")
            wait_for(
                lambda: ("meter", "device_unreachable", False) in collector.event_codes(), 15, "the events"
            )
        finally:
            collector.close()
        assert line.bytes_carried > 0
    samples = [s for batch in collector.batches for s in batch.samples]
    meter = [s for s in samples if s.device == "meter" and s.ts_ms in model_states]
    inverter = [s for s in samples if s.device == "inverter" and s.ts_ms in model_states]
    assert meter and inverter
    for sample in meter:
        state = model_states[sample.ts_ms]
        assert sample.values["power_w"] == pytest.approx(state.grid_power_w, abs=0.01)
        assert sample.values["import_wh"] == pytest.approx(state.import_wh, abs=1.0)
    for sample in inverter:
        assert sample.values["energy_wh"] == int(model_states[sample.ts_ms].pv_energy_wh)
    assert ("meter", "device_unreachable", True) in collector.event_codes()


async def run_agent(
    site: Site, line: VirtualSerialLine, broker: servers.Broker, tmp_path: Path
) -> dict[int, SchoolState]:
    clock = ManualClock(NOON_MS)
    states: dict[int, SchoolState] = {}
    async with SiteSimulator(site, clock, serial_ports={line.client_port: line.server_port}) as simulator:
        pollers = build_pollers(site, PROFILES_DIR)
        assert pollers[0].link is pollers[1].link, "one bus, one link"
        pollers[0].link.settings = LinkSettings(timeout_s=0.5)
        agent = EdgeAgent(
            site,
            pollers,
            Outbox(tmp_path / "outbox.db"),
            parse_broker_url(broker.url),
            clock,
            PublisherSettings(backfill_delay_max_s=0),
        )
        async with running(agent):
            for step in range(1, 13):
                simulator.devices["meter"].faults.no_answer = 4 <= step <= 5
                moment = NOON_MS + step * PERIOD_MS
                await clock.advance_to(moment)
                await wait_until(lambda m=moment: agent.last_poll_ms >= m, 15, f"poll {step}")
                states[moment] = simulator.model.state_at(moment)
            await wait_until(
                lambda: agent.outbox.count() + agent.outbox.count_events() == 0, 15, "the outbox"
            )
    return states


def test_the_probe_finds_a_meter_on_a_serial_line() -> None:
    with VirtualSerialLine(9600) as line:
        site = school([device("meter", "eastron-sdm120", serial=line.client_port, unit=7)], school_id="pm2")
        clock = ManualClock(NOON_MS)
        with simulator_thread(site, clock, serial_ports={line.client_port: line.server_port}):
            result = CliRunner().invoke(
                app,
                [
                    "edge",
                    "probe",
                    "--rtu",
                    line.client_port,
                    "--baud",
                    "9600",
                    "--unit",
                    "7",
                    "--timeout",
                    "0.3",
                ],
            )
    assert result.exit_code == 0, result.output
    assert "No SunSpec marker" in result.output
    words = " ".join(result.output.split())
    assert "Values read with profile eastron-sdm120" in words, "the single-phase meter's own profile wins"
    assert "import_wh" in result.output and "Wh" in result.output
