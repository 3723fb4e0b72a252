"""The ``lokalnie smog import`` command: the city's address points and its gas and district heat networks
into the calculator's tables, in one transaction; and ``lokalnie smog check-data``: whether a folder of data
files would load, and what in it waits for the city (figures to confirm, figures past their validity)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from cloud.smog.data import DATA_DIR, load_smog_data
from cloud.smog.errors import SmogDataError, SmogImportError
from cloud.smog.importer import import_addresses, import_networks


def smog_import_command(
    addresses: Annotated[
        Path,
        typer.Argument(help="Address points: PRG CSV (x, y in EPSG:2180, or lat, lon) or GeoJSON points."),
    ],
    gas: Annotated[Path, typer.Argument(help="Gas network lines, GeoJSON (WGS84, or crs EPSG:2180).")],
    heat: Annotated[Path, typer.Argument(help="District heat network lines, GeoJSON.")],
) -> None:
    """Load the address points and the gas and district heat networks, then compute each address's distance
    to each network. Reads DATABASE_URL. All or nothing: a refused row changes nothing."""
    from cloud.db.engine import make_engine
    from cloud.db.migrate import upgrade_database
    from cloud.settings import Settings

    url = Settings().database_url
    # The store's schema, as the API and the ingest bring it (their tables and these, one history).
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            gas_lines = import_networks(session, gas, "gas")
            heat_lines = import_networks(session, heat, "heat")
            points = import_addresses(session, addresses)
    except SmogImportError as error:
        typer.echo(f"Nothing imported: {error}", err=True)
        raise typer.Exit(1) from error
    finally:
        engine.dispose()
    typer.echo(
        f"Imported {points} address points, {gas_lines} gas lines and {heat_lines} district heat lines."
    )


def smog_check_data_command(
    directory: Annotated[
        Path,
        typer.Argument(
            help="The folder of data files [default: the shipped cloud/smog/data]", show_default=False
        ),
    ] = DATA_DIR,
) -> None:
    """Check the calculator's data files as the API will load them: every problem with its file, field and
    reason (exit 1), or the version, the figures still to confirm and those past their validity today."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        data = load_smog_data(directory)
    except SmogDataError as error:
        typer.echo(f"{directory}: the calculator would refuse these files:", err=True)
        for problem in error.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from error
    values = sum(1 for _item in data.sourced_items())
    unconfirmed = data.unconfirmed_keys()
    expired = data.expired_keys(datetime.now(ZoneInfo("Europe/Warsaw")).date())
    typer.echo(f"{directory}: version {data.version}, {values} sourced values; the calculator loads them.")
    typer.echo(f"To confirm (unconfirmed: true): {len(unconfirmed)}.")
    for key in expired:
        typer.echo(f"Past its validity: {key} (valid until {data.sourced(key).valid_until}).")
