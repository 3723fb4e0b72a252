"""`lokalnie`: one command-line program with a subcommand per role.

Each role lives in its own package and may be installed alone (a school's Raspberry Pi installs only the
``edge`` extra), so a role's commands are registered only when its package can be imported; otherwise the
command explains which extra to install.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer


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


def _command(app: typer.Typer, name: str, module: str, attribute: str, extra: str) -> None:
    app.command(name)(_load(name, module, attribute, extra))


def _group(app: typer.Typer, name: str, module: str, extra: str) -> None:
    try:
        group: typer.Typer = importlib.import_module(module).app
    except ImportError as error:
        app.command(name)(_missing(name, extra, error))
        return
    app.add_typer(group, name=name)


def _subcommands(
    app: typer.Typer, group_name: str, help_text: str, commands: list[tuple[str, str, str]], extra: str
) -> None:
    """A group of commands gathered from several modules (e.g. `lokalnie smog import` and `smog purge`)."""
    group = typer.Typer(help=help_text, no_args_is_help=True)
    for name, module, attribute in commands:
        group.command(name)(_load(f"{group_name} {name}", module, attribute, extra))
    app.add_typer(group, name=group_name)


def _cloud(name: str, attribute: str) -> tuple[str, Callable[[typer.Typer], None]]:
    return name, lambda app: _command(app, name, "cloud.cli", attribute, "cloud")


# Every command and how it is registered, in the order `lokalnie --help` lists them.
_COMMANDS: dict[str, Callable[[typer.Typer], None]] = dict(
    [
        ("edge", lambda app: _group(app, "edge", "edge.cli", "edge")),
        ("sim", lambda app: _command(app, "sim", "simulators.cli", "sim_command", "sim")),
        _cloud("ingest", "ingest_command"),
        _cloud("api", "api_command"),
        _cloud("prune", "prune_command"),
        _cloud("timeseries-sink", "sink_command"),
        _cloud("timeseries-respool", "respool_command"),
        _cloud("forget-ingest-worker", "forget_worker_command"),
        ("users", lambda app: _group(app, "users", "cloud.auth.cli", "cloud")),
        ("broker", lambda app: _group(app, "broker", "cloud.broker.cli", "cloud")),
        ("demo", lambda app: _command(app, "demo", "lokalnie.demo", "demo_command", "dev")),
        (
            "smog",
            lambda app: _subcommands(
                app,
                "smog",
                "The Stop Smog calculator's data and the residents' applications.",
                [
                    ("import", "cloud.smog.cli", "smog_import_command"),
                    ("check-data", "cloud.smog.cli", "smog_check_data_command"),
                    ("purge", "cloud.applications.cli", "smog_purge_command"),
                ],
                "cloud",
            ),
        ),
    ]
)


def build_app(only: str | None = None) -> typer.Typer:
    """The program with every command; with ``only``, with that one alone."""
    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)

    @app.callback()
    def lokalnie() -> None:
        """lokalnie: school PV telemetry, energy balancing and services for Zduńska Wola."""

    for name, register in _COMMANDS.items():
        if only is None or name == only:
            register(app)
    return app


def main() -> None:
    """The `lokalnie` program. It registers only the command it is asked to run: registering one imports its
    package, and importing every role's took 2.9 s of the 3.6 s `lokalnie edge run` needed to start (on a
    school's Raspberry Pi, and 16 times over in the demo)."""
    asked = next((argument for argument in sys.argv[1:] if not argument.startswith("-")), None)
    build_app(asked if asked in _COMMANDS else None)()


def __getattr__(name: str) -> typer.Typer:
    """``lokalnie.cli.app``: the program with every command (for tests and documentation)."""
    if name == "app":
        return build_app()
    raise AttributeError(name)
