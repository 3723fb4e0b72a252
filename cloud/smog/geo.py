"""Coordinates and distances: the Polish CS92 grid (EPSG:2180) to and from WGS84, a local metric plane, and
the distance from points to the nearest of many line segments with a grid index.

All functions take scalars or NumPy arrays; latitudes and longitudes are in degrees, distances in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
Numeric: TypeAlias = float | FloatArray

# GRS80, the ellipsoid of ETRF2000 and so of CS92 (WGS84 differs from it by 0.1 mm in the semi-minor axis).
GRS80_A_M = 6_378_137.0
GRS80_F = 1.0 / 298.257222101

# PUWG 1992 / CS92: one transverse Mercator zone over all of Poland.
CS92_LON0_DEG = 19.0
CS92_K0 = 0.9993
CS92_FALSE_EASTING_M = 500_000.0
CS92_FALSE_NORTHING_M = -5_300_000.0

_N = GRS80_F / (2.0 - GRS80_F)
_RECTIFYING_RADIUS_M = GRS80_A_M / (1.0 + _N) * (1.0 + _N**2 / 4.0 + _N**4 / 64.0)
_ALPHA = (
    _N / 2.0 - 2.0 * _N**2 / 3.0 + 5.0 * _N**3 / 16.0 + 41.0 * _N**4 / 180.0,
    13.0 * _N**2 / 48.0 - 3.0 * _N**3 / 5.0 + 557.0 * _N**4 / 1440.0,
    61.0 * _N**3 / 240.0 - 103.0 * _N**4 / 140.0,
    49561.0 * _N**4 / 161280.0,
)
_BETA = (
    _N / 2.0 - 2.0 * _N**2 / 3.0 + 37.0 * _N**3 / 96.0 - _N**4 / 360.0,
    _N**2 / 48.0 + _N**3 / 15.0 - 437.0 * _N**4 / 1440.0,
    17.0 * _N**3 / 480.0 - 37.0 * _N**4 / 840.0,
    4397.0 * _N**4 / 161280.0,
)
_DELTA = (
    2.0 * _N - 2.0 * _N**2 / 3.0 - 2.0 * _N**3 + 116.0 * _N**4 / 45.0,
    7.0 * _N**2 / 3.0 - 8.0 * _N**3 / 5.0 - 227.0 * _N**4 / 45.0,
    56.0 * _N**3 / 15.0 - 136.0 * _N**4 / 35.0,
    4279.0 * _N**4 / 630.0,
)
_E = math.sqrt(GRS80_F * (2.0 - GRS80_F))


def _scalar_or_array(value: FloatArray) -> Numeric:
    return float(value) if value.ndim == 0 else value


def cs92_from_wgs84(lat_deg: Numeric, lon_deg: Numeric) -> tuple[Numeric, Numeric]:
    """Geographic coordinates to the CS92 grid (EPSG:2180).

    Parameters
    ----------
    lat_deg, lon_deg : numeric
        Latitude and longitude on GRS80/ETRF2000 (WGS84 to well under a metre) [degrees].

    Returns
    -------
    northing_m, easting_m : numeric
        CS92 ``x`` (northing) and ``y`` (easting), in the axis order of EPSG:2180 [m].

    Notes
    -----
    Transverse Mercator by Krüger's series in the third flattening :math:`n` to :math:`n^4` [1]_, accurate
    to well under a millimetre within Poland. With conformal latitude :math:`\\chi`, longitude from the
    central meridian :math:`\\Delta\\lambda = \\lambda - 19°`:

    .. math::

        \\xi' = \\arctan\\frac{\\tan\\chi}{\\cos\\Delta\\lambda},\\quad
        \\eta' = \\operatorname{artanh}(\\cos\\chi\\,\\sin\\Delta\\lambda),\\quad
        \\xi = \\xi' + \\sum_j \\alpha_j \\sin 2j\\xi' \\cosh 2j\\eta',\\quad
        \\eta = \\eta' + \\sum_j \\alpha_j \\cos 2j\\xi' \\sinh 2j\\eta'

        x = k_0 A \\xi - 5\\,300\\,000,\\quad y = k_0 A \\eta + 500\\,000

    with :math:`k_0 = 0.9993` and :math:`A` the rectifying radius.

    References
    ----------
    .. [1] C. F. F. Karney, "Transverse Mercator with an accuracy of a few nanometers", J. Geodesy 85
       (2011) 475–485.
    .. [2] Rozporządzenie Rady Ministrów w sprawie państwowego systemu odniesień przestrzennych (układ
       współrzędnych PL-1992), Dz.U. 2012 poz. 1247.
    """
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    dlon = np.radians(np.asarray(lon_deg, dtype=np.float64) - CS92_LON0_DEG)
    sin_lat = np.sin(lat)
    # tan of the conformal latitude
    t = np.sinh(np.arctanh(sin_lat) - _E * np.arctanh(_E * sin_lat))
    xi_p = np.arctan2(t, np.cos(dlon))
    eta_p = np.arctanh(np.sin(dlon) / np.sqrt(1.0 + t * t))
    xi = xi_p.copy()
    eta = eta_p.copy()
    for j, alpha in enumerate(_ALPHA, start=1):
        xi = xi + alpha * np.sin(2 * j * xi_p) * np.cosh(2 * j * eta_p)
        eta = eta + alpha * np.cos(2 * j * xi_p) * np.sinh(2 * j * eta_p)
    northing = CS92_FALSE_NORTHING_M + CS92_K0 * _RECTIFYING_RADIUS_M * xi
    easting = CS92_FALSE_EASTING_M + CS92_K0 * _RECTIFYING_RADIUS_M * eta
    return _scalar_or_array(northing), _scalar_or_array(easting)


def wgs84_from_cs92(northing_m: Numeric, easting_m: Numeric) -> tuple[Numeric, Numeric]:
    """CS92 grid coordinates (EPSG:2180) to latitude and longitude.

    Parameters
    ----------
    northing_m, easting_m : numeric
        CS92 ``x`` (northing) and ``y`` (easting) [m].

    Returns
    -------
    lat_deg, lon_deg : numeric
        Latitude and longitude on GRS80 [degrees].

    Notes
    -----
    The inverse series of :func:`cs92_from_wgs84` [1]_: :math:`\\xi' = \\xi - \\sum_j \\beta_j \\sin 2j\\xi
    \\cosh 2j\\eta`, likewise :math:`\\eta'`; conformal latitude :math:`\\chi = \\arcsin(\\sin\\xi' /
    \\cosh\\eta')`, then :math:`\\varphi = \\chi + \\sum_j \\delta_j \\sin 2j\\chi`.

    References
    ----------
    .. [1] C. F. F. Karney, "Transverse Mercator with an accuracy of a few nanometers", J. Geodesy 85
       (2011) 475–485.
    """
    scale = CS92_K0 * _RECTIFYING_RADIUS_M
    xi = (np.asarray(northing_m, dtype=np.float64) - CS92_FALSE_NORTHING_M) / scale
    eta = (np.asarray(easting_m, dtype=np.float64) - CS92_FALSE_EASTING_M) / scale
    xi_p = xi.copy()
    eta_p = eta.copy()
    for j, beta in enumerate(_BETA, start=1):
        xi_p = xi_p - beta * np.sin(2 * j * xi) * np.cosh(2 * j * eta)
        eta_p = eta_p - beta * np.cos(2 * j * xi) * np.sinh(2 * j * eta)
    chi = np.arcsin(np.sin(xi_p) / np.cosh(eta_p))
    lat = chi.copy()
    for j, delta in enumerate(_DELTA, start=1):
        lat = lat + delta * np.sin(2 * j * chi)
    lon = CS92_LON0_DEG + np.degrees(np.arctan2(np.sinh(eta_p), np.cos(xi_p)))
    return _scalar_or_array(np.degrees(lat)), _scalar_or_array(lon)


@dataclass(frozen=True)
class LocalPlane:
    """A flat metric plane tangent to the ellipsoid at ``(lat0_deg, lon0_deg)``: x east, y north, metres.

    Within ten kilometres of the origin (a town) lengths are right to better than 0.1 %.

    Notes
    -----
    Equirectangular with the ellipsoid's radii of curvature at the origin, meridional :math:`M` and prime
    vertical :math:`N`:

    .. math:: x = N \\cos\\varphi_0 \\,(\\lambda - \\lambda_0), \\quad y = M (\\varphi - \\varphi_0)
    """

    lat0_deg: float
    lon0_deg: float
    _m_per_rad_east: float = field(init=False, repr=False)
    _m_per_rad_north: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        phi = math.radians(self.lat0_deg)
        w = 1.0 - _E**2 * math.sin(phi) ** 2
        prime_vertical = GRS80_A_M / math.sqrt(w)
        meridional = GRS80_A_M * (1.0 - _E**2) / w**1.5
        object.__setattr__(self, "_m_per_rad_east", prime_vertical * math.cos(phi))
        object.__setattr__(self, "_m_per_rad_north", meridional)

    @classmethod
    def around(cls, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> LocalPlane:
        """A plane centred on the middle of the given points' bounding box."""
        lats = np.asarray(lat_deg, dtype=np.float64)
        lons = np.asarray(lon_deg, dtype=np.float64)
        return cls(
            float((lats.min() + lats.max()) / 2.0),
            float((lons.min() + lons.max()) / 2.0),
        )

    def to_xy(self, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Plane coordinates [m] of points given in degrees."""
        lat = np.radians(np.asarray(lat_deg, dtype=np.float64) - self.lat0_deg)
        lon = np.radians(np.asarray(lon_deg, dtype=np.float64) - self.lon0_deg)
        return lon * self._m_per_rad_east, lat * self._m_per_rad_north

    def to_latlon(self, x_m: npt.ArrayLike, y_m: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Degrees of points given in plane coordinates [m]."""
        lat = self.lat0_deg + np.degrees(np.asarray(y_m, dtype=np.float64) / self._m_per_rad_north)
        lon = self.lon0_deg + np.degrees(np.asarray(x_m, dtype=np.float64) / self._m_per_rad_east)
        return lat, lon


def point_segment_distance_m(
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    ax: npt.ArrayLike,
    ay: npt.ArrayLike,
    bx: npt.ArrayLike,
    by: npt.ArrayLike,
) -> FloatArray:
    """Distance from points P to segments AB in a metric plane, broadcast over the inputs.

    Parameters
    ----------
    px, py : array_like
        Points [m].
    ax, ay, bx, by : array_like
        Segment ends [m]; a segment with A = B is a point.

    Returns
    -------
    distance_m : numpy.ndarray
        Euclidean distance [m].

    Notes
    -----
    The nearest point of the segment is :math:`A + t (B - A)` with

    .. math:: t = \\operatorname{clip}\\left(\\frac{(P - A)\\cdot(B - A)}{|B - A|^2}, 0, 1\\right)
    """
    px_, py_ = np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64)
    ax_, ay_ = np.asarray(ax, dtype=np.float64), np.asarray(ay, dtype=np.float64)
    dx = np.asarray(bx, dtype=np.float64) - ax_
    dy = np.asarray(by, dtype=np.float64) - ay_
    length2 = dx * dx + dy * dy
    dot = (px_ - ax_) * dx + (py_ - ay_) * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(length2 > 0.0, dot / np.where(length2 > 0.0, length2, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return np.asarray(np.hypot(ax_ + t * dx - px_, ay_ + t * dy - py_), dtype=np.float64)


def nearest_segment_distance_brute_m(
    px: npt.ArrayLike, py: npt.ArrayLike, segments: FloatArray
) -> FloatArray:
    """Distance from each point to the nearest of ``segments`` (rows ax, ay, bx, by) by trying them all.

    The reference for :class:`SegmentIndex`; ``inf`` when there are no segments.
    """
    points_x = np.atleast_1d(np.asarray(px, dtype=np.float64))
    points_y = np.atleast_1d(np.asarray(py, dtype=np.float64))
    if len(segments) == 0:
        return np.full(points_x.shape, np.inf)
    distances = point_segment_distance_m(
        points_x[:, None],
        points_y[:, None],
        segments[None, :, 0],
        segments[None, :, 1],
        segments[None, :, 2],
        segments[None, :, 3],
    )
    return np.asarray(distances.min(axis=1), dtype=np.float64)


def _split_segments(segments: FloatArray, max_length_m: float) -> FloatArray:
    """Each segment cut into equal pieces no longer than ``max_length_m``."""
    if len(segments) == 0:
        return segments
    lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
    counts = np.maximum(np.ceil(lengths / max_length_m), 1).astype(np.int64)
    owner = np.repeat(np.arange(len(segments)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    step = (np.arange(owner.size) - first).astype(np.float64)
    total = counts[owner].astype(np.float64)
    start, end = step / total, (step + 1.0) / total
    a = segments[owner, :2]
    delta = segments[owner, 2:] - a
    return np.column_stack([a + delta * start[:, None], a + delta * end[:, None]])


class SegmentIndex:
    """A uniform grid over line segments that answers "how far is the nearest segment" for many points.

    Each segment is filed in every cell its bounding box touches. Points are answered together, cell by
    cell, in two passes. First the occupied cells nearest (in rings of cells) to the points' cell give an
    upper bound :math:`d` of each point's distance. Every segment within :math:`d` of a point has a point in
    a cell at most :math:`\\lfloor d / c \\rfloor + 1` rings away (cell size :math:`c`), so the second pass
    over those rings gives the exact nearest distance.

    Parameters
    ----------
    segments : numpy.ndarray
        Shape (n, 4): rows ax, ay, bx, by in a metric plane [m].
    cell_m : float
        Cell size [m]; about the typical distance asked for works well.
    """

    def __init__(self, segments: FloatArray, cell_m: float = 100.0) -> None:
        if cell_m <= 0:
            raise ValueError("cell_m must be positive")
        self.segments = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
        self.cell_m = float(cell_m)
        # Long segments are cut into pieces no longer than a cell, so that each piece's bounding box covers
        # at most 2 × 2 cells; the distance to a segment is the least distance to its pieces.
        self._pieces = _split_segments(self.segments, self.cell_m)
        filed: dict[tuple[int, int], list[int]] = {}
        if len(self._pieces):
            xs = self._pieces[:, [0, 2]]
            ys = self._pieces[:, [1, 3]]
            i0 = np.floor(xs.min(axis=1) / self.cell_m).astype(np.int64)
            i1 = np.floor(xs.max(axis=1) / self.cell_m).astype(np.int64)
            j0 = np.floor(ys.min(axis=1) / self.cell_m).astype(np.int64)
            j1 = np.floor(ys.max(axis=1) / self.cell_m).astype(np.int64)
            for number in range(len(self._pieces)):
                for i in range(int(i0[number]), int(i1[number]) + 1):
                    for j in range(int(j0[number]), int(j1[number]) + 1):
                        filed.setdefault((i, j), []).append(number)
        keys = list(filed)
        self._cell_i = np.array([key[0] for key in keys], dtype=np.int64)
        self._cell_j = np.array([key[1] for key in keys], dtype=np.int64)
        self._cell_segments = [np.asarray(filed[key], dtype=np.int64) for key in keys]

    def __len__(self) -> int:
        return len(self.segments)

    def nearest_distance_m(self, px: npt.ArrayLike, py: npt.ArrayLike) -> FloatArray:
        """Distance [m] from each point to the nearest segment; ``inf`` when the index is empty."""
        points_x = np.atleast_1d(np.asarray(px, dtype=np.float64))
        points_y = np.atleast_1d(np.asarray(py, dtype=np.float64))
        result = np.full(points_x.shape, np.inf)
        if len(self.segments) == 0 or points_x.size == 0:
            return result
        cell_i = np.floor(points_x / self.cell_m).astype(np.int64)
        cell_j = np.floor(points_y / self.cell_m).astype(np.int64)
        groups: dict[tuple[int, int], list[int]] = {}
        for number, key in enumerate(zip(cell_i.tolist(), cell_j.tolist(), strict=True)):
            groups.setdefault(key, []).append(number)
        for (i, j), members in groups.items():
            indices = np.asarray(members)
            result[indices] = self._answer_cell(i, j, points_x[indices], points_y[indices])
        return result

    def _segments_within(self, rings: FloatArray, limit: float) -> FloatArray:
        chosen = [self._cell_segments[number] for number in np.flatnonzero(rings <= limit)]
        return self._pieces[np.unique(np.concatenate(chosen))]

    def _answer_cell(self, i: int, j: int, xs: FloatArray, ys: FloatArray) -> FloatArray:
        # Rings between the points' cell and each occupied cell (Chebyshev distance in cells).
        rings = np.maximum(np.abs(self._cell_i - i), np.abs(self._cell_j - j)).astype(np.float64)
        bound = nearest_segment_distance_brute_m(xs, ys, self._segments_within(rings, float(rings.min())))
        reach = float(np.floor(bound.max() / self.cell_m) + 1.0)
        return nearest_segment_distance_brute_m(xs, ys, self._segments_within(rings, reach))
