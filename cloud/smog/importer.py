"""Loading the city's address points and network lines into the calculator's tables.

The functions write through the caller's session and never commit: run them inside one transaction
(``with session.begin(): ...``) so that a refused file leaves the tables as they were. A file with any
refused row raises :class:`~cloud.smog.errors.SmogImportError` before anything is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cloud.smog.addresses import read_addresses, search_key
from cloud.smog.errors import RowProblem, SmogImportError
from cloud.smog.networks import nearest_line_distance_m, read_network_geojson, stored_lines
from cloud.smog.sample import SAMPLE_DIR
from cloud.smog.tables import NETWORK_KINDS, SmogAddress, SmogNetwork


def import_addresses(session: Session, path: Path) -> int:
    """Replace the address points with those of ``path`` (CSV or GeoJSON) and compute their distances to
    the networks already loaded. Returns the number of points."""
    records, problems = read_addresses(path)
    seen: dict[str, int] = {}
    for record in records:
        key = search_key(record.street, record.number)
        if key in seen:
            problems.append(
                RowProblem(
                    str(path),
                    record.line,
                    f"{record.street} {record.number} repeats the address of line {seen[key]}",
                )
            )
        else:
            seen[key] = record.line
    if not records and not problems:
        problems.append(RowProblem(str(path), 0, "the file has no address points"))
    if problems:
        raise SmogImportError(problems)
    session.execute(delete(SmogAddress))
    session.add_all(
        SmogAddress(
            street=record.street,
            number=record.number,
            postcode=record.postcode,
            search_key=search_key(record.street, record.number),
            lat=record.lat,
            lon=record.lon,
        )
        for record in records
    )
    session.flush()
    recompute_distances(session)
    return len(records)


def import_networks(session: Session, path: Path, kind: str) -> int:
    """Replace the network lines of ``kind`` (``gas`` or ``heat``) with those of the GeoJSON ``path``.

    Distances are not recomputed here (several networks are usually loaded together): call
    :func:`recompute_distances` after the last one, as :func:`import_addresses` does. Returns the number of
    lines.
    """
    if kind not in NETWORK_KINDS:
        raise ValueError(f"network kind must be one of {NETWORK_KINDS}, got {kind!r}")
    lines, problems = read_network_geojson(path)
    if not lines and not problems:
        problems.append(RowProblem(str(path), 0, "the file has no network lines"))
    if problems:
        raise SmogImportError(problems)
    session.execute(delete(SmogNetwork).where(SmogNetwork.kind == kind))
    session.add_all(
        SmogNetwork(kind=kind, geometry=json.dumps(line.geometry, separators=(",", ":")), source=line.source)
        for line in lines
    )
    session.flush()
    return len(lines)


def import_sample(session: Session, directory: Path = SAMPLE_DIR) -> int:
    """The town's shipped sample (docs/smog.md: real street names, invented networks): the networks first, so
    that the addresses' distances are measured to them; the number of addresses."""
    import_networks(session, directory / "gas.geojson", "gas")
    import_networks(session, directory / "heat.geojson", "heat")
    return import_addresses(session, directory / "addresses.csv")


def recompute_distances(session: Session) -> int:
    """Recompute every address point's distance to each network (``None`` where a network is not loaded).

    Returns the number of address points updated.
    """
    rows = session.execute(select(SmogAddress.id, SmogAddress.lat, SmogAddress.lon)).all()
    if not rows:
        return 0
    ids = [row.id for row in rows]
    lats = np.fromiter((row.lat for row in rows), dtype=np.float64, count=len(rows))
    lons = np.fromiter((row.lon for row in rows), dtype=np.float64, count=len(rows))
    columns: dict[str, list[float | None]] = {}
    for kind in NETWORK_KINDS:
        lines = stored_lines(session, kind)
        if lines:
            distances = nearest_line_distance_m(lats, lons, lines)
            columns[kind] = [round(float(value), 2) if math.isfinite(value) else None for value in distances]
        else:
            columns[kind] = [None] * len(ids)
    session.execute(
        update(SmogAddress),
        [
            {"id": address_id, "distance_gas_m": gas, "distance_heat_m": heat}
            for address_id, gas, heat in zip(ids, columns["gas"], columns["heat"], strict=True)
        ],
    )
    session.flush()
    return len(ids)
