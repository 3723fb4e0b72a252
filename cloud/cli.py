"""The cloud's two commands, written for typer and registered by `lokalnie.cli` as ``lokalnie ingest`` and
``lokalnie api``. Each reads its settings from the environment (options override them), migrates the
database, registers the schools of the site files and runs until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cloud.db.register import prepare_database
from cloud.settings import Settings
from common.clock import Clock, clock_from_env
from common.config import ConfigError, describe_validation_error
from common.lifecycle import signals_call
from common.logs import setup_logging

logger = logging.getLogger(__name__)

EXIT_BAD_CONFIGURATION = 2
EXIT_DATABASE_UNAVAILABLE = 1
_ENV_NAMES = {name: str(field.validation_alias) for name, field in Settings.model_fields.items()}

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the store, sqlite:///... or postgresql://... "
        "[env DATABASE_URL; default sqlite:///var/lokalnie.db]",
        show_default=False,
    ),
]
SitesDirOption = Annotated[
    Path | None,
    typer.Option(
        "--sites-dir",
        help="Directory of the schools' site files [env LOKALNIE_SITES_DIR; default firmware-config/sites]",
        show_default=False,
    ),
]

InfluxUrlOption = Annotated[
    str | None,
    typer.Option(
        "--influx-url",
        help="The time-series database's InfluxDB 2.x write API, e.g. http://127.0.0.1:8086 "
        "[env INFLUX_URL; unset: no time-series sink]",
        show_default=False,
    ),
]


def ingest_command(
    database_url: DatabaseUrlOption = None,
    sites_dir: SitesDirOption = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            "--mqtt-url",
            help="Broker, mqtt[s]://[user[:password]@]host[:port] [env MQTT_URL; default mqtt://127.0.0.1:1883]",
            show_default=False,
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="Shared-subscription group the ingest processes split the telemetry in "
            "[env LOKALNIE_INGEST_GROUP; default ingest]",
            show_default=False,
        ),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            help="MQTT client id, stable across restarts so the broker keeps what arrives meanwhile "
            "[env LOKALNIE_INGEST_CLIENT_ID; default lokalnie-ingest-1]",
            show_default=False,
        ),
    ] = None,
    influx_url: InfluxUrlOption = None,
    sender: Annotated[
        bool | None,
        typer.Option(
            "--sender/--no-sender",
            help="Also send the time-series outbox to INFLUX_URL from this process; --no-sender when "
            "'lokalnie timeseries-sink' does it [env LOKALNIE_TIMESERIES_SENDER; default: send]",
            show_default=False,
        ),
    ] = None,
    batch_messages: Annotated[
        int | None,
        typer.Option(
            "--batch-messages",
            help="Messages per transaction at most [env LOKALNIE_INGEST_BATCH_MESSAGES; default 500]",
            show_default=False,
        ),
    ] = None,
    writers: Annotated[
        int | None,
        typer.Option(
            "--writers",
            help="Batches stored side by side, PostgreSQL only [env LOKALNIE_INGEST_WRITERS; default 2]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Store the schools' telemetry, health events and status from the broker in the database, and spool
    them for the time-series database when INFLUX_URL is set (the clock: env LOKALNIE_CLOCK)."""
    from cloud.ingest.worker import run_ingest

    setup_logging("ingest")
    settings, clock = _start(
        database_url=database_url,
        sites_dir=sites_dir,
        mqtt_url=mqtt_url,
        ingest_group=group,
        ingest_client_id=client_id,
        influx_url=influx_url,
        timeseries_sender=sender,
        ingest_batch_messages=batch_messages,
        ingest_writers=writers,
    )
    stop = threading.Event()

    def on_signal(signum: int) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    with signals_call(on_signal):
        run_ingest(settings, clock, stop)


def sink_command(
    database_url: DatabaseUrlOption = None,
    sites_dir: SitesDirOption = None,
    influx_url: InfluxUrlOption = None,
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            help="This sender's name in the outbox's leases and the ingest counters, stable across restarts "
            "[env LOKALNIE_INGEST_CLIENT_ID]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Send the time-series outbox to the time-series database (INFLUX_URL) without taking messages from the
    broker: for deployments where the ingest processes run with --no-sender."""
    from cloud.ingest.worker import run_sink

    setup_logging("timeseries-sink")
    settings, _clock = _start(
        database_url=database_url, sites_dir=sites_dir, influx_url=influx_url, ingest_client_id=client_id
    )
    if settings.influx_url is None:
        _refuse("bad configuration: INFLUX_URL is not set", EXIT_BAD_CONFIGURATION)
    stop = threading.Event()

    def on_signal(signum: int) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    with signals_call(on_signal):
        run_sink(settings, stop)


def api_command(
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Address to listen on [env LOKALNIE_API_HOST; default 127.0.0.1]",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help="TCP port to listen on [env LOKALNIE_API_PORT; default 8000]", show_default=False
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            help="Processes serving the port, about one per core [env LOKALNIE_API_PROCESSES; default 1]",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
    sites_dir: SitesDirOption = None,
) -> None:
    """Serve the HTTP API over the database (the clock: env LOKALNIE_CLOCK)."""
    from cloud.api.main import create_app
    from cloud.api.serve import SharedLimits, serve
    from cloud.applications.config import ApplicationsConfig, ApplicationsConfigError

    setup_logging("api")
    settings, clock = _start(
        database_url=database_url, sites_dir=sites_dir, api_host=host, api_port=port, api_processes=processes
    )
    try:
        # Once for every serving process: in development its key is made up here and must be the same in all.
        applications = ApplicationsConfig.from_environment()
    except ApplicationsConfigError as error:
        _refuse(f"bad configuration: {error}", EXIT_BAD_CONFIGURATION)

    # In development without a configured key, the signing key is made up once, here, for every process.
    settings.signing_key()

    def make_app(limits: SharedLimits | None) -> Any:
        return create_app(settings, clock, limits=limits, applications=applications)

    code = serve(make_app, settings.api_host, settings.api_port, settings.api_processes)
    if code:
        raise typer.Exit(code)


def prune_command(
    database_url: DatabaseUrlOption = None,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            help="Keep this many days of raw rows; longer than LOKALNIE_INGEST_MAX_PAST_DAYS "
            "[env LOKALNIE_RAW_RETENTION_DAYS; default 730]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Delete the raw samples, counter readings and dead letters older than the retention; the 15-minute
    intervals, corrections and events stay. For a daily timer; safe beside running ingest workers, and an
    interrupted run is simply run again (the clock: env LOKALNIE_CLOCK)."""
    from cloud.db.engine import make_engine
    from cloud.db.migrate import upgrade_database
    from cloud.ingest.checks import DAY_MS
    from cloud.ingest.retention import prune_raw_readings

    setup_logging("prune")
    settings, clock = _settings(database_url=database_url, raw_retention_days=retention_days)
    engine = make_engine(settings.database_url)
    try:
        upgrade_database(settings.database_url)
        report = prune_raw_readings(engine, clock.now_ms() - settings.raw_retention_days * DAY_MS)
    except (SQLAlchemyError, OSError) as error:
        _refuse(f"cannot prune the database: {_first_line(error)}", EXIT_DATABASE_UNAVAILABLE)
    finally:
        engine.dispose()
    typer.echo(
        f"Deleted {report.samples} samples, {report.counter_readings} counter readings and "
        f"{report.dead_letters} dead letters older than {settings.raw_retention_days} days."
    )


def respool_command(
    since: Annotated[
        str, typer.Option("--since", help="First day (or moment) to spool again, ISO 8601, UTC: 2026-09-01")
    ],
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Up to this day (or moment), not included [default: now]", show_default=False
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
    sites_dir: SitesDirOption = None,
) -> None:
    """Spool the time-series points of a period again from the database (raw readings still kept, 15-minute
    energies, counter corrections), for a time-series database that was lost, restored from an older backup
    or added later. The ingest processes' senders write them; InfluxDB replaces the points it has, so a period
    already sent is not doubled. Run it where INFLUX_URL is set (the clock: env LOKALNIE_CLOCK)."""
    from cloud.db.engine import make_engine
    from cloud.timeseries.respool import HOUR_MS, RespoolReport, respool
    from common.clock import iso_from_ms
    from common.sites import load_sites

    setup_logging("timeseries-respool")
    settings, clock = _start(database_url=database_url, sites_dir=sites_dir)
    if settings.influx_url is None:
        _refuse(
            "bad configuration: INFLUX_URL is not set, so no sender would write the lines",
            EXIT_BAD_CONFIGURATION,
        )
    since_ms = _moment_ms("--since", since)
    until_ms = _moment_ms("--until", until) if until is not None else clock.now_ms()
    if since_ms >= until_ms:
        _refuse(f"bad configuration: --since {since} is not before --until", EXIT_BAD_CONFIGURATION)
    devices = [(site.id, device.id) for site in load_sites(settings.sites_dir) for device in site.devices]

    def hour_done(start_ms: int, total: RespoolReport) -> None:
        if (start_ms + HOUR_MS) % (24 * HOUR_MS) == 0:
            logger.info("spooled up to %s: %d lines so far", iso_from_ms(start_ms + HOUR_MS), total.lines)

    engine = make_engine(settings.database_url)
    try:
        report = respool(engine, devices, since_ms, until_ms, clock.now_ms, hour_done=hour_done)
    except (SQLAlchemyError, OSError) as error:
        _refuse(f"cannot read the database: {_first_line(error)}", EXIT_DATABASE_UNAVAILABLE)
    finally:
        engine.dispose()
    typer.echo(
        f"Spooled {report.readings} readings, {report.intervals} 15-minute energies and {report.corrections} "
        f"counter corrections from {iso_from_ms(since_ms)} to {iso_from_ms(until_ms)}."
    )


def forget_worker_command(
    client_id: Annotated[
        str, typer.Argument(help="The retired worker's MQTT client id, as /metrics names it.")
    ],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Forget an ingest worker that was retired on purpose: its row of counters goes, and with it its
    series in /metrics and the alert that it is down. Refused for a worker seen alive within the last
    minute."""
    from cloud.db.engine import make_engine
    from cloud.ingest.metrics import ALIVE_WITHIN_MS
    from cloud.ingest.stats import forget_worker

    setup_logging("forget-ingest-worker")
    settings, _clock = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    alive_since_ms = time.time_ns() // 1_000_000 - 2 * ALIVE_WITHIN_MS
    try:
        with engine.begin() as connection:
            forgotten = forget_worker(connection, client_id, alive_since_ms)
    except (SQLAlchemyError, OSError) as error:
        _refuse(f"cannot change the database: {_first_line(error)}", EXIT_DATABASE_UNAVAILABLE)
    finally:
        engine.dispose()
    if not forgotten:
        _refuse(
            f"no retired ingest worker {client_id!r}: unknown, or alive within a minute",
            EXIT_BAD_CONFIGURATION,
        )
    typer.echo(f"Forgot ingest worker {client_id!r}.")


def _moment_ms(option: str, text: str) -> int:
    """An ISO 8601 date or date and time as milliseconds since the epoch, UTC unless it names its offset."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _refuse(
            f"bad configuration: {option} {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time",
            EXIT_BAD_CONFIGURATION,
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _settings(**options: Any) -> tuple[Settings, Clock]:
    """Settings from the environment and the options given, and the clock; on a problem, one line in the log
    and the exit code for a bad configuration."""
    try:
        # Given under the environment variables' names, so that an error names the variable.
        given = {_ENV_NAMES[name]: value for name, value in options.items() if value is not None}
        settings = Settings(**given)
    except ValidationError as error:
        _refuse(f"bad configuration: {describe_validation_error(error)}", EXIT_BAD_CONFIGURATION)
    try:
        return settings, clock_from_env()
    except ValueError as error:
        _refuse(f"bad configuration: LOKALNIE_CLOCK: {error}", EXIT_BAD_CONFIGURATION)


def _start(**options: Any) -> tuple[Settings, Clock]:
    """`_settings`, and a prepared database; on a problem, one line in the log and the exit code that says
    which kind of problem."""
    settings, clock = _settings(**options)
    try:
        sites = prepare_database(settings)
    except ConfigError as error:
        _refuse(f"bad configuration: {error}", EXIT_BAD_CONFIGURATION)
    except (SQLAlchemyError, OSError) as error:
        _refuse(f"cannot prepare the database: {_first_line(error)}", EXIT_DATABASE_UNAVAILABLE)
    logger.info("database ready; %d schools registered from %s", len(sites), settings.sites_dir)
    return settings, clock


def _first_line(error: BaseException) -> str:
    """What a database error says, in one line (the driver's error, not SQLAlchemy's wrapping)."""
    cause = getattr(error, "orig", None) or error
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__


def _refuse(reason: str, code: int) -> NoReturn:
    logger.error("refusing to start: %s", reason)
    raise typer.Exit(code)
