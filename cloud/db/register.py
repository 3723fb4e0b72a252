"""The register of schools and their devices, mirrored from the site files into the database at start."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table, delete, insert

from cloud.db.engine import make_engine
from cloud.db.migrate import upgrade_database
from cloud.db.models import Device, School
from cloud.db.upserts import upsert
from cloud.settings import Settings
from common.sites import Site, load_sites

_SCHOOLS: Table = School.__table__  # type: ignore[assignment]
_DEVICES: Table = Device.__table__  # type: ignore[assignment]


def sync_register(connection: Connection, sites: Sequence[Site]) -> None:
    """Insert or update every school and device of ``sites``; rows of schools not listed stay as they are."""
    if not sites:
        return
    dialect = connection.dialect.name
    school_columns = ["name", "type", "address", "lat", "lon", "pv_kwp", "pupils"]
    connection.execute(
        upsert(_SCHOOLS, dialect, ["id"], school_columns),
        [
            {
                "id": site.id,
                "name": site.name,
                "type": site.type.value,
                "address": site.address,
                "lat": site.location.lat,
                "lon": site.location.lon,
                "pv_kwp": site.pv_kwp,
                "pupils": site.pupils,
            }
            for site in sites
        ],
    )
    # A school's devices are exactly those its site file lists now.
    connection.execute(delete(_DEVICES).where(_DEVICES.c.school_id.in_([site.id for site in sites])))
    connection.execute(
        insert(_DEVICES),
        [
            {"school_id": site.id, "device_id": device.id, "kind": device.kind.value}
            for site in sites
            for device in site.devices
        ],
    )


def prepare_database(settings: Settings) -> list[Site]:
    """Read the site files, migrate the database and register the schools; the sites read.

    `common.config.ConfigError` for a bad site file, before the database is touched.
    """
    sites = load_sites(settings.sites_dir)
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            sync_register(connection, sites)
    finally:
        engine.dispose()
    return sites
