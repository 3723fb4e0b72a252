"""The ``lokalnie sim`` command: serve the simulated devices of one or more schools until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from common.clock import Clock, clock_from_env
from common.config import ConfigError
from common.logs import setup_logging
from common.sites import Site, load_site
from simulators.loopback import loopback_sites
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
    try:
        asyncio.run(serve_until_signalled(sites, clock, seed=seed))
    except OSError as error:
        hint = "" if loopback_port is not None else " (use --loopback-port to serve on 127.0.0.1)"
        logger.error("%s%s", error, hint)
        raise typer.Exit(code=EXIT_CANNOT_SERVE) from None


async def serve_until_signalled(sites: Sequence[Site], clock: Clock, *, seed: int = 0) -> None:
    """Start a `SiteSimulator` per site, wait for SIGINT or SIGTERM, then stop them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    simulators = [SiteSimulator(site, clock, seed=seed) for site in sites]
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
