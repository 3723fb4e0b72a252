"""The ``lokalnie smog purge`` command, for cron: delete the applications kept longer than the retention."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.orm import Session

from cloud.applications.config import ApplicationsConfig
from cloud.applications.service import purge_expired


def smog_purge_command(
    retention_days: Annotated[
        int | None,
        typer.Option(
            help="Override LOKALNIE_APPLICATIONS_RETENTION_DAYS (days after the last status change)."
        ),
    ] = None,
) -> None:
    """Delete every Stop Smog application (personal data, proof, history) whose last status change is older
    than the retention. Reads DATABASE_URL and LOKALNIE_APPLICATIONS_RETENTION_DAYS."""
    import time

    from cloud.db.engine import make_engine
    from cloud.db.migrate import upgrade_database
    from cloud.settings import Settings

    days = (
        retention_days if retention_days is not None else ApplicationsConfig.from_environment().retention_days
    )
    if days <= 0:
        typer.echo("retention-days must be positive", err=True)
        raise typer.Exit(2)
    url = Settings().database_url
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            deleted = purge_expired(session, int(time.time() * 1000), days)
    finally:
        engine.dispose()
    typer.echo(f"Deleted {len(deleted)} application(s) older than {days} days.")
