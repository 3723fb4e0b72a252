"""The gas and district heat networks: reading their lines from GeoJSON, and the distance from address
points (or any point) to the nearest line of a network, in metres."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.smog.addresses import in_poland, read_feature_collection
from cloud.smog.errors import RowProblem
from cloud.smog.geo import FloatArray, LocalPlane, SegmentIndex, wgs84_from_cs92
from cloud.smog.tables import NETWORK_KINDS, SmogNetwork

# Cell of the segment grid: about the distance limits in use (20 m gas, 100 m heat) keeps few candidates.
INDEX_CELL_M = 100.0


@dataclass(frozen=True)
class NetworkLine:
    """One network feature: a GeoJSON LineString or MultiLineString geometry in WGS84 and its source."""

    geometry: dict[str, Any]
    source: str

    def paths(self) -> list[list[tuple[float, float]]]:
        """The feature's polylines as lists of (lon, lat)."""
        if self.geometry["type"] == "LineString":
            return [[(float(lon), float(lat)) for lon, lat, *_ in self.geometry["coordinates"]]]
        return [[(float(lon), float(lat)) for lon, lat, *_ in part] for part in self.geometry["coordinates"]]


def _check_path(path: Any, cs92: bool) -> list[list[float]]:
    """A polyline's positions as WGS84 [lon, lat]; ``ValueError`` with the reason when unusable."""
    if not isinstance(path, list) or len(path) < 2:
        raise ValueError("a line needs at least two positions")
    converted: list[list[float]] = []
    for position in path:
        if not isinstance(position, list) or len(position) < 2:
            raise ValueError(f"position {position!r} is not [x, y]")
        first, second = float(position[0]), float(position[1])
        if not (math.isfinite(first) and math.isfinite(second)):
            raise ValueError("a coordinate is not finite")
        if cs92:
            lat_n, lon_n = wgs84_from_cs92(second, first)
            lat, lon = float(lat_n), float(lon_n)
        else:
            lon, lat = first, second
        if not in_poland(lat, lon):
            raise ValueError(f"position ({lat:.5f} N, {lon:.5f} E) is outside Poland")
        converted.append([round(lon, 7), round(lat, 7)])
    return converted


def read_network_geojson(path: Path) -> tuple[list[NetworkLine], list[RowProblem]]:
    """Network lines of a GeoJSON FeatureCollection of LineStrings or MultiLineStrings.

    Positions are WGS84 [lon, lat] (RFC 7946) unless the document's ``crs`` names EPSG:2180; they are stored
    in WGS84. A feature's ``source`` property (else the file's name) says where the line comes from. A
    refused feature is reported as line 0 with its 1-based feature number in the reason.
    """
    collection = read_feature_collection(path)
    if isinstance(collection, RowProblem):
        return [], [collection]
    features, cs92 = collection
    lines: list[NetworkLine] = []
    problems: list[RowProblem] = []
    for number, feature in enumerate(features, start=1):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        if not isinstance(geometry, dict) or kind not in ("LineString", "MultiLineString"):
            problems.append(
                RowProblem(str(path), 0, f"feature {number}: geometry is not a LineString or MultiLineString")
            )
            continue
        try:
            if kind == "LineString":
                coordinates: Any = _check_path(geometry.get("coordinates"), cs92)
            else:
                parts = geometry.get("coordinates")
                if not isinstance(parts, list) or not parts:
                    raise ValueError("a MultiLineString needs at least one line")
                coordinates = [_check_path(part, cs92) for part in parts]
        except (TypeError, ValueError) as error:
            problems.append(RowProblem(str(path), 0, f"feature {number}: {error}"))
            continue
        properties = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
        source = str(properties.get("source") or path.name)[:300]
        lines.append(NetworkLine({"type": kind, "coordinates": coordinates}, source))
    return lines, problems


def segments_lonlat(lines: Sequence[NetworkLine]) -> FloatArray:
    """All segments of the lines, shape (n, 4): lon_a, lat_a, lon_b, lat_b [degrees]."""
    rows = [
        (a[0], a[1], b[0], b[1])
        for line in lines
        for path in line.paths()
        for a, b in itertools.pairwise(path)
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def nearest_line_distance_m(
    lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike, lines: Sequence[NetworkLine]
) -> FloatArray:
    """Distance [m] from each point to the nearest of ``lines``; ``inf`` when there are no lines.

    Points and lines are projected to one :class:`~cloud.smog.geo.LocalPlane` around them all, then
    answered by a :class:`~cloud.smog.geo.SegmentIndex`.
    """
    lats = np.atleast_1d(np.asarray(lat_deg, dtype=np.float64))
    lons = np.atleast_1d(np.asarray(lon_deg, dtype=np.float64))
    segments = segments_lonlat(lines)
    if len(segments) == 0 or lats.size == 0:
        return np.full(lats.shape, np.inf)
    plane = LocalPlane.around(
        np.concatenate([lats, segments[:, 1], segments[:, 3]]),
        np.concatenate([lons, segments[:, 0], segments[:, 2]]),
    )
    ax, ay = plane.to_xy(segments[:, 1], segments[:, 0])
    bx, by = plane.to_xy(segments[:, 3], segments[:, 2])
    index = SegmentIndex(np.column_stack([ax, ay, bx, by]), cell_m=INDEX_CELL_M)
    px, py = plane.to_xy(lats, lons)
    return index.nearest_distance_m(px, py)


def stored_lines(session: Session, kind: str) -> list[NetworkLine]:
    """The network lines of ``kind`` (``gas`` or ``heat``) in the database."""
    if kind not in NETWORK_KINDS:
        raise ValueError(f"network kind must be one of {NETWORK_KINDS}, got {kind!r}")
    rows = session.scalars(select(SmogNetwork).where(SmogNetwork.kind == kind)).all()
    return [NetworkLine(json.loads(row.geometry), row.source) for row in rows]


def distances_for_point(session: Session, lat_deg: float, lon_deg: float) -> dict[str, float | None]:
    """Distance [m] from one point to each stored network, ``None`` for a network that is not loaded."""
    result: dict[str, float | None] = {}
    for kind in NETWORK_KINDS:
        lines = stored_lines(session, kind)
        result[kind] = float(nearest_line_distance_m(lat_deg, lon_deg, lines)[0]) if lines else None
    return result
