"""`lokalnie edge ...`: the commands a school's Raspberry Pi runs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from common.broker import DEFAULT_BROKER_URL, parse_broker_url
from common.clock import clock_from_env
from common.config import ConfigError
from common.lifecycle import run_until_signalled
from common.logs import setup_logging
from common.sites import load_site

app = typer.Typer(help="The edge agent of one school: polls its Modbus devices and publishes to MQTT.")
log = logging.getLogger(__name__)


@app.command()
def run(
    site: Annotated[Path, typer.Option(help="The school's site file (firmware-config/sites/<school>.yaml).")],
    mqtt: Annotated[
        str, typer.Option(envvar="MQTT_URL", help="Broker URL, mqtt[s]://user:password@host:port.")
    ] = DEFAULT_BROKER_URL,
    ca_file: Annotated[
        Path | None,
        typer.Option(envvar="MQTT_CA_FILE", help="CA certificate that signed the broker's (TLS)."),
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(envvar="LOKALNIE_OUTBOX", help="Outbox file. Default: var/edge/<school>/outbox.db."),
    ] = None,
    profiles: Annotated[
        Path | None,
        typer.Option(
            envvar="LOKALNIE_PROFILES_DIR", help="Register profiles. Default: profiles/ beside sites/."
        ),
    ] = None,
) -> None:
    """Run the agent of one school until SIGINT or SIGTERM. The clock comes from LOKALNIE_CLOCK."""
    setup_logging("edge")
    try:
        school = load_site(site)
        broker = parse_broker_url(mqtt, ca_file=ca_file)
        clock = clock_from_env()
        from edge.agent import EdgeAgent, build_pollers
        from edge.outbox import Outbox

        pollers = build_pollers(school, profiles or site.resolve().parent.parent / "profiles")
    except (ConfigError, ValueError) as error:
        log.error("cannot start: %s", error)
        raise typer.Exit(2) from None
    box = Outbox(outbox or Path("var/edge") / school.id / "outbox.db")
    agent = EdgeAgent(school, pollers, box, broker, clock)
    try:
        asyncio.run(run_until_signalled(agent.run))
    finally:
        box.close()
