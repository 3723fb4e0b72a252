"""The calculator's two tables, on their own ``MetaData`` (``smog_metadata``) so that the store's migrations
can take them over without the calculator importing the main models: the city's address points with their
distances to the networks, and the gas and district heat network lines."""

from __future__ import annotations

from sqlalchemy import Engine, Float, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The same constraint names as the main models, so that one migration style fits both.
smog_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NETWORK_KINDS = ("gas", "heat")


class SmogBase(DeclarativeBase):
    metadata = smog_metadata


class SmogAddress(SmogBase):
    """An address point of the national register (PRG), in WGS84, with its distances to the networks
    computed at import (``None`` while no network of that kind is loaded)."""

    __tablename__ = "smog_addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    street: Mapped[str] = mapped_column(String(200))
    number: Mapped[str] = mapped_column(String(32))
    postcode: Mapped[str] = mapped_column(String(6))
    # Street without prefix and diacritics, then the number: "laska 41a"; see cloud.smog.addresses.
    search_key: Mapped[str] = mapped_column(String(250), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    distance_gas_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    distance_heat_m: Mapped[float | None] = mapped_column(Float, nullable=True)


class SmogNetwork(SmogBase):
    """One network line (a GeoJSON LineString or MultiLineString in WGS84) of kind ``gas`` or ``heat``."""

    __tablename__ = "smog_networks"
    __table_args__ = (Index("ix_smog_networks_kind", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    geometry: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(300))


def create_smog_tables(engine: Engine) -> None:
    """Create the calculator's tables where missing (tests and development; production uses migrations)."""
    smog_metadata.create_all(engine)
