"""CPU seconds the agent spends on 1,000 polls of a school (a SunSpec inverter and an SDM630 meter): Modbus
TCP requests, decoding, health checks, the outbox's commits, and publishing to a real Mosquitto.

The simulators run in their own process (``lokalnie sim``), so that only the agent's CPU is counted: this
process's user and system time, which includes paho's network thread. The clock is a manual one moved to the
next poll as soon as the previous one is done. The baseline is the same agent reading one request per field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.report import report
from common.broker import parse_broker_url
from common.clock import CLOCK_ENV, ManualClock, ScaledClock, parse_iso_ms
from common.sites import Site, load_site
from edge.agent import EdgeAgent, build_pollers
from edge.modbus.plan import ReadBlock
from edge.outbox import Outbox
from edge.publisher import Publisher
from lokalnie.ports import free_port_run
from simulators.loopback import loopback_site
from tests import servers
from tests.conftest import PROFILES_DIR, SITES_DIR

POLLS = int(os.environ.get("BENCH_EDGE_CPU_POLLS", "1000"))
START_MS = parse_iso_ms("2026-06-15T08:00:00+02:00")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(site: Site, broker_url: str, outbox_path: Path, *, per_field: bool) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, requests) of POLLS polls, the outbox drained to the broker."""
    clock = ManualClock(START_MS)
    pollers = build_pollers(site, PROFILES_DIR)
    agent = EdgeAgent(site, pollers, Outbox(outbox_path), parse_broker_url(broker_url), clock)
    publisher = agent.publisher = Publisher(site.id, agent.outbox, agent.broker, clock)
    publisher.start()
    stop = asyncio.Event()
    sending = asyncio.create_task(publisher.run(stop))
    while not publisher.connected:
        await asyncio.sleep(0.01)
    await agent.poll_once()  # discovers the SunSpec map
    if per_field:
        for poller in pollers:
            assert poller.register_map is not None
            blocks = poller.register_map.plan
            plan = tuple(
                ReadBlock(f.function, f.address, f.registers, (f,)) for b in blocks for f in b.fields
            )
            poller.register_map = dataclasses.replace(poller.register_map, plan=plan)
    requests = sum(len(poller.plan) for poller in pollers)
    cpu_before, wall_before = cpu_s(), time.perf_counter()
    for poll in range(1, POLLS + 1):
        await clock.advance_to(START_MS + poll * site.poll_period_s * 1000)
        await agent.poll_once()
    while agent.outbox.count():
        await asyncio.sleep(0.01)
    cpu, wall = cpu_s() - cpu_before, time.perf_counter() - wall_before
    stop.set()
    await sending
    await publisher.stop()
    for poller in pollers:
        await poller.link.aclose()
    agent.outbox.close()
    return cpu, wall, requests


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        site = loopback_site(load_site(SITES_DIR / "sp5.yaml"), free_port_run(2))
        (work / "sites").mkdir()
        site_file = work / "sites" / "sp5.yaml"
        site_file.write_text(yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True))
        env = {**os.environ, CLOCK_ENV: ScaledClock(START_MS, 1.0).spec(), "LOKALNIE_LOG_LEVEL": "WARNING"}
        simulator = servers.start(
            [sys.executable, "-m", "lokalnie", "sim", "--site", str(site_file)], work / "sim.log", env
        )
        try:
            for device in site.devices:
                servers.wait_for_port(device.transport.port, process=simulator)  # type: ignore[union-attr]
            with servers.mosquitto(work / "broker") as broker, servers.subscriber(broker):
                ours = asyncio.run(run(site, broker.url, work / "ours.db", per_field=False))
                naive = asyncio.run(run(site, broker.url, work / "naive.db", per_field=True))
        finally:
            servers.stop_process(simulator)
    report(
        "edge_cpu_per_1000_polls",
        "agent CPU seconds per 1,000 polls of a school (SunSpec inverter + SDM630), publishing included",
        ours[0] * 1000 / POLLS,
        "s",
        naive[0] * 1000 / POLLS,
        baseline_name="the same agent reading one request per field",
        details={
            "polls": POLLS,
            "requests_per_poll": ours[2],
            "requests_per_poll_baseline": naive[2],
            "wall_s_per_1000_polls": ours[1] * 1000 / POLLS,
            "wall_s_per_1000_polls_baseline": naive[1] * 1000 / POLLS,
            "cpu_share_at_10_s_polls": ours[0] / POLLS / 10.0,
        },
    )


if __name__ == "__main__":
    main()
