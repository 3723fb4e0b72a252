"""`lokalnie edge ...`: the commands a school's Raspberry Pi runs, and the installer's tools.

* ``run``: the agent, until SIGINT or SIGTERM (systemd runs it; see firmware-config/pi/).
* ``probe HOST[:PORT] | --rtu /dev/ttyUSB0``: what answers there, decoded with units.
* ``check --site FILE``: the site file validated and each of its devices polled once.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from common.broker import DEFAULT_BROKER_URL, parse_broker_url
from common.clock import SystemClock, clock_from_env
from common.config import ConfigError
from common.lifecycle import run_until_signalled
from common.logs import setup_logging
from common.sites import RtuTransport, TcpTransport, load_site

if TYPE_CHECKING:
    from edge.modbus.profiles import Profile
    from edge.probe import ProbeReport, ProfileMatch

app = typer.Typer(help="The edge agent of one school: polls its Modbus devices and publishes to MQTT.")
log = logging.getLogger(__name__)
console = Console()

EXIT_BAD_CONFIG = 2
EXIT_DEVICE_PROBLEM = 1
DEFAULT_PROFILES = Path(__file__).resolve().parent.parent / "firmware-config" / "profiles"


def _profiles_dir(profiles: Path | None, site: Path | None = None) -> Path:
    if profiles is not None:
        return profiles
    if site is not None and (beside := site.resolve().parent.parent / "profiles").is_dir():
        return beside
    return DEFAULT_PROFILES


ProfilesOption = Annotated[
    Path | None,
    typer.Option(
        envvar="LOKALNIE_PROFILES_DIR",
        help="Device profiles. Default: profiles/ beside sites/, or the shipped ones.",
    ),
]


@app.command()
def run(
    site: Annotated[
        Path,
        typer.Option(
            envvar="LOKALNIE_SITE",
            help="The school's site file, named <school>.yaml (firmware-config/sites/).",
        ),
    ],
    mqtt: Annotated[
        str, typer.Option(envvar="MQTT_URL", help="Broker URL, mqtt[s]://user:password@host:port.")
    ] = DEFAULT_BROKER_URL,
    ca_file: Annotated[
        Path | None,
        typer.Option(envvar="MQTT_CA_FILE", help="CA certificate that signed the broker's (TLS)."),
    ] = None,
    cert_file: Annotated[
        Path | None, typer.Option(envvar="MQTT_CERT_FILE", help="The school's client certificate (TLS).")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(envvar="MQTT_KEY_FILE", help="The client certificate's private key (TLS).")
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(envvar="LOKALNIE_OUTBOX", help="Outbox file. Default: var/edge/<school>/outbox.db."),
    ] = None,
    outbox_max_mb: Annotated[
        float, typer.Option(envvar="LOKALNIE_OUTBOX_MAX_MB", min=1, help="Outbox bound [MB]: oldest dropped.")
    ] = 512,
    outbox_max_days: Annotated[
        float, typer.Option(envvar="LOKALNIE_OUTBOX_MAX_DAYS", min=0.01, help="Outbox bound [days].")
    ] = 60,
    backfill_rate: Annotated[
        float,
        typer.Option(
            envvar="LOKALNIE_BACKFILL_RATE", min=0, help="Backlog replay [samples/s]; 0: unlimited."
        ),
    ] = 200,
    backfill_delay_max: Annotated[
        float,
        typer.Option(
            envvar="LOKALNIE_BACKFILL_DELAY_MAX_S", min=0, help="Random delay before a replay, up to [s]."
        ),
    ] = 300,
    hold_until_clock_sync: Annotated[
        bool,
        typer.Option(
            envvar="LOKALNIE_HOLD_UNTIL_CLOCK_SYNC",
            help="Hold readings while the kernel says the clock is not synchronised (a Pi without a "
            "battery clock), and stamp them when it is. The real clock only.",
        ),
    ] = False,
    profiles: ProfilesOption = None,
) -> None:
    """Run the agent of one school until SIGINT or SIGTERM. The clock comes from LOKALNIE_CLOCK."""
    setup_logging("edge")
    try:
        school = load_site(site)
        broker = parse_broker_url(mqtt, ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        _check_tls_files(ca_file, cert_file, key_file)
        clock = clock_from_env()
        from edge.agent import EdgeAgent, build_pollers
        from edge.clock_sync import boot_id, kernel_clock_synchronized
        from edge.outbox import Outbox, OutboxLimits
        from edge.publisher import PublisherSettings

        pollers = build_pollers(school, _profiles_dir(profiles, site))
    except (ConfigError, ValueError) as error:
        log.error("cannot start: %s", error)
        raise typer.Exit(EXIT_BAD_CONFIG) from None
    limits = OutboxLimits(max_bytes=round(outbox_max_mb * 1e6), max_age_days=outbox_max_days)
    box = Outbox(outbox or Path("var/edge") / school.id / "outbox.db", limits)
    settings = PublisherSettings(
        backfill_samples_per_s=backfill_rate, backfill_delay_max_s=backfill_delay_max
    )
    # Only the real clock: a simulated one (demos, tests) is right by construction.
    holding = hold_until_clock_sync and isinstance(clock, SystemClock)
    agent = EdgeAgent(
        school,
        pollers,
        box,
        broker,
        clock,
        publisher_settings=settings,
        clock_synchronized=kernel_clock_synchronized if holding else None,
        boot=boot_id() if holding else "",
    )
    try:
        asyncio.run(run_until_signalled(agent.run))
    finally:
        box.close()


def _check_tls_files(*paths: Path | None) -> None:
    for path in paths:
        if path is not None and not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist or is not a file")


@app.command()
def probe(
    target: Annotated[
        str | None, typer.Argument(help="HOST[:PORT] of a Modbus TCP device or gateway.")
    ] = None,
    unit: Annotated[int, typer.Option(min=0, max=247, help="Modbus unit id (slave address).")] = 1,
    rtu: Annotated[
        str | None,
        typer.Option(help="Serial port of an RS-485 adapter, e.g. /dev/ttyUSB0 (instead of HOST)."),
    ] = None,
    baud: Annotated[int, typer.Option(help="Serial line speed.")] = 9600,
    parity: Annotated[str, typer.Option(help="Serial parity: N, E or O.")] = "N",
    stopbits: Annotated[int, typer.Option(help="Serial stop bits: 1 or 2.")] = 1,
    timeout: Annotated[float, typer.Option(min=0.1, help="How long to wait for each answer [s].")] = 2.0,
    profiles: ProfilesOption = None,
) -> None:
    """Find what answers at an address: its SunSpec models, or the shipped profile it matches, with values."""
    setup_logging("edge", "WARNING")
    try:
        transport = _transport(target, rtu, baud, parity, stopbits)
        from edge.modbus.profiles import load_profiles

        known = load_profiles(_profiles_dir(profiles))
    except (ConfigError, ValueError) as error:
        typer.echo(f"lokalnie edge probe: {error}", err=True)
        raise typer.Exit(EXIT_BAD_CONFIG) from None
    from edge.probe import probe as run_probe

    report = asyncio.run(run_probe(transport, unit, known, timeout))
    _print_probe(report)
    if report.error is not None and not report.models and report.best is None:
        raise typer.Exit(EXIT_DEVICE_PROBLEM)


def _transport(
    target: str | None, rtu: str | None, baud: int, parity: str, stopbits: int
) -> TcpTransport | RtuTransport:
    if (target is None) == (rtu is None):
        raise ValueError("give either HOST[:PORT] or --rtu PORT")
    if rtu is not None:
        return RtuTransport.model_validate(
            {"device": rtu, "baud": baud, "parity": parity, "stopbits": stopbits}
        )
    assert target is not None
    host, _, port = target.rpartition(":") if ":" in target else (target, "", "502")
    return TcpTransport(host=host or target, port=int(port))


def _print_probe(report: ProbeReport) -> None:
    console.print(f"[bold]{report.target}[/bold], unit {report.unit}")
    if report.sunspec_base is not None:
        console.print(f"SunSpec map at register {report.sunspec_base}: {len(report.models)} models")
        for model in report.models:
            table = Table(
                title=f"model {model.model_id} at {model.address} (length {model.length}): {model.label}"
            )
            for column in ("point", "value", "unit", "meaning"):
                table.add_column(column)
            for point in model.points:
                table.add_row(point.path, _shown(point.value), point.units or "", point.meaning or "")
            console.print(table)
    else:
        console.print("No SunSpec marker at 40000, 0 or 50000.")
    if report.error:
        console.print(f"[red]{report.error}[/red]")
    table = Table(title="Shipped profiles, best match first")
    for column in ("profile", "score", "fits", "problems"):
        table.add_column(column)
    for match in report.matches:
        problems = match.error or _problems(match)
        table.add_row(match.profile.name, f"{match.score:.2f}", "yes" if match.fits else "no", problems)
    console.print(table)
    best = report.best
    if best is not None and best.result is not None and best.result.values is not None:
        units = _units(best.profile)
        values = Table(title=f"Values read with profile {best.profile.name}")
        for column in ("quantity", "value", "unit"):
            values.add_column(column)
        for name, value in best.result.values.items():
            values.add_row(name, _shown(value), units.get(name, ""))
        console.print(values)


def _problems(match: ProfileMatch) -> str:
    result = match.result
    if result is None:
        return ""
    found = [
        f"refused {r.address}..{r.address + r.count - 1} (exception {r.exception_code})"
        for r in result.refusals
    ]
    if result.implausible:
        found.append(f"implausible: {', '.join(result.implausible)}")
    if result.mismatch:
        found.append(result.mismatch)
    return "; ".join(found)


def _units(profile: Profile) -> dict[str, str]:
    return {field.name: field.unit or "" for field in profile.fields}


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@app.command()
def check(
    site: Annotated[
        Path,
        typer.Option(envvar="LOKALNIE_SITE", help="The school's site file to check against its devices."),
    ],
    profiles: ProfilesOption = None,
) -> None:
    """Validate a site file and poll each of its devices once; exit 0 only if every device reads well."""
    setup_logging("edge", "WARNING")
    from edge.probe import check_site

    try:
        school = load_site(site)
        checks = asyncio.run(check_site(school, _profiles_dir(profiles, site)))
    except (ConfigError, ValueError) as error:
        typer.echo(f"lokalnie edge check: {error}", err=True)
        raise typer.Exit(EXIT_BAD_CONFIG) from None
    failed = False
    for item in checks:
        problems = item.problems
        failed = failed or bool(problems)
        status = "[red]PROBLEM[/red]" if problems else "[green]OK[/green]"
        console.print(f"{status} {item.device.id} ({item.profile.name}, unit {item.device.unit})")
        for problem in problems:
            console.print(f"    {problem}")
        if item.result is not None and item.result.identity:
            console.print(f"    identity: {' '.join(item.result.identity.values())}")
        values = item.result.values if item.result is not None else None
        for name, value in (values or {}).items():
            console.print(f"    {name} = {_shown(value)}")
    raise typer.Exit(EXIT_DEVICE_PROBLEM if failed else 0)
