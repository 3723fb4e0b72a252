"""`lokalnie`: one command-line program with a subcommand per role.

Each role lives in its own package and may be installed alone (a school's Raspberry Pi installs only the
``edge`` extra), so a role's commands are registered only when its package can be imported; otherwise the
command explains which extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import typer

app = typer.Typer(
    help="lokalnie: school PV telemetry, energy balancing and services for Zduńska Wola.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _missing(command: str, extra: str, error: ImportError) -> Callable[[], None]:
    def explain() -> None:
        typer.echo(
            f"'lokalnie {command}' needs the {extra} extra: pip install 'lokalnie[{extra}]' ({error})",
            err=True,
        )
        raise typer.Exit(2)

    explain.__doc__ = f"(not installed: pip install 'lokalnie[{extra}]')"
    return explain


def _load(command: str, module: str, attribute: str, extra: str) -> Any:
    """The function behind a command, or one that explains which extra to install."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as error:
        return _missing(command, extra, error)


def _command(name: str, module: str, attribute: str, extra: str) -> None:
    app.command(name)(_load(name, module, attribute, extra))


def _group(name: str, module: str, extra: str) -> None:
    try:
        group: typer.Typer = importlib.import_module(module).app
    except ImportError as error:
        app.command(name)(_missing(name, extra, error))
        return
    app.add_typer(group, name=name)


def _subcommands(group_name: str, help_text: str, commands: list[tuple[str, str, str]], extra: str) -> None:
    """A group of commands gathered from several modules (e.g. `lokalnie smog import` and `smog purge`)."""
    group = typer.Typer(help=help_text, no_args_is_help=True)
    for name, module, attribute in commands:
        group.command(name)(_load(f"{group_name} {name}", module, attribute, extra))
    app.add_typer(group, name=group_name)


_group("edge", "edge.cli", "edge")
_command("sim", "simulators.cli", "sim_command", "sim")
_command("ingest", "cloud.cli", "ingest_command", "cloud")
_command("api", "cloud.cli", "api_command", "cloud")
_command("prune", "cloud.cli", "prune_command", "cloud")
_command("timeseries-sink", "cloud.cli", "sink_command", "cloud")
_command("timeseries-respool", "cloud.cli", "respool_command", "cloud")
_command("forget-ingest-worker", "cloud.cli", "forget_worker_command", "cloud")
_group("users", "cloud.auth.cli", "cloud")
_group("broker", "cloud.broker.cli", "cloud")
_command("demo", "lokalnie.demo", "demo_command", "dev")
_subcommands(
    "smog",
    "The Stop Smog calculator's data and the residents' applications.",
    [
        ("import", "cloud.smog.cli", "smog_import_command"),
        ("check-data", "cloud.smog.cli", "smog_check_data_command"),
        ("purge", "cloud.applications.cli", "smog_purge_command"),
    ],
    "cloud",
)
