"""The ``lokalnie sim`` command: serve the simulated devices of one or more schools until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from common.clock import Clock, clock_from_env
from common.config import ConfigError
from common.logs import setup_logging
from common.sites import Site, load_site, write_site
from simulators.loopback import loopback_sites
from simulators.serial_line import on_virtual_lines
from simulators.server import SiteSimulator

logger = logging.getLogger(__name__)

EXIT_BAD_CONFIG = 2
EXIT_CANNOT_SERVE = 1


def sim_command(
    site: Annotated[
        list[Path],
        typer.Option(
            "--site", help="A site file (firmware-config/sites/<school>.yaml); repeat for several schools."
        ),
    ],
    loopback_port: Annotated[
        int | None,
        typer.Option(
            "--loopback-port",
            min=1,
            max=65535,
            help="Serve every device on 127.0.0.1 on consecutive ports from this one, instead of the "
            "addresses in the site files (one port per distinct address, schools in the order given).",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Selects the weather and the load fluctuation; same seed, same data."),
    ] = 0,
    virtual_serial: Annotated[
        bool,
        typer.Option(
            "--virtual-serial",
            help="Serve the devices on serial lines (RTU) on virtual lines, pseudo-terminal pairs paced at "
            "the line's baud rate, instead of real adapters; --write-sites gives the agents their ends.",
        ),
    ] = False,
    write_sites: Annotated[
        Path | None,
        typer.Option(
            "--write-sites",
            help="Write each site file as served (TCP devices on their loopback ports, RTU devices on their "
            "virtual line) into this directory, for `lokalnie edge run --site DIR/<school>.yaml`.",
        ),
    ] = None,
) -> None:
    """Simulate the PV inverters and grid meters of schools on Modbus TCP (and RTU for devices on a serial
    line) until SIGINT or SIGTERM.

    The time comes from LOKALNIE_CLOCK (real time when unset), as for the edge agents and the cloud.
    """
    setup_logging("sim")
    try:
        sites = [load_site(path) for path in site]
        clock = clock_from_env()
    except (ConfigError, ValueError) as error:
        logger.error("%s", error)
        raise typer.Exit(code=EXIT_BAD_CONFIG) from None
    if loopback_port is not None:
        sites = loopback_sites(sites, loopback_port)
    with ExitStack() as lines:
        serial_ports: list[dict[str, str]] | None = None
        if virtual_serial:
            sites, serial_ports = on_virtual_lines(sites, lines)
        if write_sites is not None:
            try:
                written = [write_site(served, write_sites) for served in sites]
            except OSError as error:
                logger.error("cannot write the site files: %s", error)
                raise typer.Exit(code=EXIT_BAD_CONFIG) from None
            for path in written:
                logger.info("site file for the agent: %s", path)
        try:
            asyncio.run(serve_until_signalled(sites, clock, seed=seed, serial_ports=serial_ports))
        except OSError as error:
            hint = "" if loopback_port is not None else " (use --loopback-port to serve on 127.0.0.1)"
            logger.error("%s%s", error, hint)
            raise typer.Exit(code=EXIT_CANNOT_SERVE) from None


async def serve_until_signalled(
    sites: Sequence[Site],
    clock: Clock,
    *,
    seed: int = 0,
    serial_ports: Sequence[Mapping[str, str]] | None = None,
) -> None:
    """Start a `SiteSimulator` per site (with its ``serial_ports``, when given), wait for SIGINT or SIGTERM,
    then stop them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    ports = serial_ports or [{} for _ in sites]
    simulators = [
        SiteSimulator(site, clock, seed=seed, serial_ports=site_ports)
        for site, site_ports in zip(sites, ports, strict=True)
    ]
    try:
        for simulator in simulators:
            await simulator.start()
        logger.info(
            "serving %d school(s) with seed %d on clock %s (speed %gx)",
            len(simulators),
            seed,
            _describe(clock),
            clock.speed,
        )
        await stop.wait()
        logger.info("stopping")
    finally:
        for simulator in simulators:
            await simulator.stop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signal_number)


def _describe(clock: Clock) -> str:
    try:
        return clock.spec()
    except NotImplementedError:
        return type(clock).__name__
