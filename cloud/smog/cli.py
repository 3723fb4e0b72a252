"""The ``lokalnie smog import`` command: the city's address points and its gas and district heat networks
into the calculator's tables, in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from cloud.smog.errors import SmogImportError
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
