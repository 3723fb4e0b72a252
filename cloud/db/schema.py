"""Every table of the store in one `MetaData`: the core models' and those areas keep on their own
(the Stop Smog calculator, the residents' applications). Migrations are written and checked against it."""

from __future__ import annotations

from sqlalchemy import MetaData

from cloud.applications.tables import applications_metadata
from cloud.db.models import Base
from cloud.smog.tables import smog_metadata


def all_tables() -> MetaData:
    """A `MetaData` holding a copy of every table of the store."""
    combined = MetaData(naming_convention=Base.metadata.naming_convention)
    for metadata in (Base.metadata, smog_metadata, applications_metadata):
        for table in metadata.tables.values():
            table.to_metadata(combined)
    return combined
