"""`lokalnie demo`: the whole system on one machine, on a simulated clock.

Starts Mosquitto, the simulated devices of the 16 schools (Modbus TCP on loopback), one edge agent per
school, the ingest and the API, and shows a live table of the schools read from the API. Ctrl-C, or the
end of ``--duration``, stops everything it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from common.clock import CLOCK_ENV, ScaledClock, SystemClock, datetime_from_ms, ms_from_datetime
from common.config import ConfigError
from common.lifecycle import signals_call
from common.sites import Site, load_sites, write_site
from lokalnie.ports import free_port, free_port_run, port_is_free
from lokalnie.processes import ProcessGroup

REPO = Path(__file__).resolve().parent.parent
WARSAW = ZoneInfo("Europe/Warsaw")
MOSQUITTO_PATHS = ("mosquitto", "/usr/sbin/mosquitto")
STARTUP_S = 3.0


def warsaw_time_ms(text: str) -> int:
    """An ISO 8601 time as epoch ms; a time without an offset is read as Warsaw time, as a person means it."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=WARSAW)
    return ms_from_datetime(moment)


def find_mosquitto() -> str | None:
    return next((found for path in MOSQUITTO_PATHS if (found := shutil.which(path))), None)


def demo_command(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many real seconds (default: run until Ctrl-C).")
    ] = None,
    speed: Annotated[float, typer.Option(help="How many simulated seconds pass in one real second.")] = 60.0,
    start: Annotated[
        str | None,
        typer.Option(help="Simulated start time, ISO 8601 (e.g. 2026-06-15T10:00:00). Default: now."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the API on 127.0.0.1.")] = 8000,
    sites_dir: Annotated[Path, typer.Option(help="Site files of the schools to simulate.")] = REPO
    / "firmware-config"
    / "sites",
    work_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its database, outboxes and logs.")
    ] = Path("var/demo"),
) -> None:
    """Run the whole system on this machine: simulated schools, edge agents, broker, ingest and API."""
    console = Console()
    mosquitto = find_mosquitto()
    if mosquitto is None:
        console.print(
            "[red]Mosquitto is not installed.[/red] Install it with:  sudo apt-get install -y mosquitto"
        )
        raise typer.Exit(2)
    try:
        sites = load_sites(sites_dir)
        start_ms = warsaw_time_ms(start) if start else SystemClock().now_ms()
    except (ConfigError, ValueError) as error:
        console.print(f"[red]cannot start:[/red] {error}")
        raise typer.Exit(2) from None
    if not port_is_free(port):
        console.print(f"[red]port {port} is in use[/red]; choose another with --port")
        raise typer.Exit(2)

    run_dir = _fresh_run_dir(work_dir)
    clock = ScaledClock(start_ms, speed, anchor_ms=SystemClock().now_ms() + int(STARTUP_S * 1000))
    group = ProcessGroup(run_dir / "logs")
    stop = threading.Event()
    with signals_call(lambda _signum: stop.set()):
        try:
            _start_system(group, mosquitto, sites, run_dir, clock, port)
            console.print(
                f"lokalnie demo: {len(sites)} schools, clock x{speed:g} from {_local(start_ms)}; "
                f"API http://127.0.0.1:{port}  (logs in {run_dir / 'logs'}; Ctrl-C stops)"
            )
            _show_live_table(console, group, port, clock, duration, stop)
        finally:
            console.print("stopping ...")
            group.stop_all()
            console.print("stopped; every process the demo started has ended.")


def _fresh_run_dir(work_dir: Path) -> Path:
    run_dir = work_dir / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (run_dir / "sites").mkdir(parents=True)
    return run_dir.resolve()


def _start_system(
    group: ProcessGroup, mosquitto: str, sites: list[Site], run_dir: Path, clock: ScaledClock, api_port: int
) -> None:
    from simulators.loopback import loopback_site

    broker_port = free_port()
    config = run_dir / "mosquitto.conf"
    config.write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nlog_type error\nlog_type warning\n"
    )
    group.start("mosquitto", [mosquitto, "-c", str(config)])
    first_port = free_port_run(2 * len(sites))
    site_paths = [
        write_site(loopback_site(site, first_port + 2 * index), run_dir / "sites")
        for index, site in enumerate(sites)
    ]
    env = {
        **os.environ,
        CLOCK_ENV: clock.spec(),
        "MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
        "DATABASE_URL": f"sqlite:///{run_dir / 'lokalnie.db'}",
        "LOKALNIE_SITES_DIR": str(run_dir / "sites"),
        "LOKALNIE_PROFILES_DIR": str(REPO / "firmware-config" / "profiles"),
    }
    lokalnie = [sys.executable, "-m", "lokalnie"]
    group.start(
        "sim", [*lokalnie, "sim", *[arg for path in site_paths for arg in ("--site", str(path))]], env
    )
    group.start("ingest", [*lokalnie, "ingest"], env)
    group.start("api", [*lokalnie, "api", "--port", str(api_port)], env)
    for site, path in zip(sites, site_paths, strict=True):
        outbox = run_dir / "outbox" / f"{site.id}.db"
        group.start(
            f"edge-{site.id}", [*lokalnie, "edge", "run", "--site", str(path), "--outbox", str(outbox)], env
        )


def _show_live_table(
    console: Console,
    group: ProcessGroup,
    api_port: int,
    clock: ScaledClock,
    duration: float | None,
    stop: threading.Event,
) -> None:
    import httpx

    deadline = time.monotonic() + duration if duration is not None else None
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=2.0) as api,
        Live(console=console, refresh_per_second=2, transient=False) as live,
    ):
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            crashed = [f"{name} (exit {code})" for name, code in group.exited()]
            if crashed:
                raise RuntimeError(f"demo processes ended unexpectedly: {', '.join(crashed)}")
            live.update(_table(api, clock))
            stop.wait(1.0)


def _table(api: Any, clock: ScaledClock) -> Table:
    table = Table(title=f"lokalnie — {_local(clock.now_ms())} (symulacja x{clock.speed:g})")
    for header, justify in (
        ("Szkoła", "left"),
        ("PV [kW]", "right"),
        ("Dziś [kWh]", "right"),
        ("Sieć [kW]", "right"),
        ("Łącze", "left"),
        ("Wiek [s]", "right"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    with contextlib.suppress(Exception):
        for school in api.get("/api/v1/schools").json():
            live = api.get(f"/api/v1/schools/{school['id']}/live").json()
            table.add_row(*_row(school, live))
    return table


def _row(school: dict[str, Any], live: dict[str, Any]) -> list[str]:
    def kilo(value: float | None) -> str:
        return "—" if value is None else f"{value / 1000:.2f}"

    link = live.get("link", {}).get("state", "unknown")
    colour = {"online": "green", "offline": "red"}.get(link, "yellow")
    ages = [device.get("age_s") for device in live.get("devices", []) if device.get("age_s") is not None]
    return [
        school["name"].replace(" w Zduńskiej Woli", ""),
        kilo(live.get("pv_power_w")),
        kilo(live.get("today_pv_wh")),
        kilo(live.get("grid_power_w")),
        f"[{colour}]{link}[/{colour}]",
        f"{min(ages):.0f}" if ages else "—",
    ]


def _local(epoch_ms: int) -> str:
    return datetime_from_ms(epoch_ms).astimezone(WARSAW).strftime("%Y-%m-%d %H:%M:%S")
