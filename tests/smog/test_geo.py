"""CS92 (EPSG:2180) against PROJ, round trips, point-to-segment distances and the segment grid index."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.smog.geo import (
    LocalPlane,
    SegmentIndex,
    cs92_from_wgs84,
    nearest_segment_distance_brute_m,
    point_segment_distance_m,
    wgs84_from_cs92,
)

# Computed once with PROJ 9.5.1 (pyproj, EPSG:4326 → EPSG:2180); x is the northing, y the easting.
PROJ_REFERENCE = [
    (51.6, 18.94, 414836.6483009979, 495845.6037756295),
    (54.8, 14.1, 781723.5974508226, 185220.44928706484),
    (49.0, 24.1, 138365.916561638, 872846.3789243212),
    (52.0, 19.0, 459309.2094016103, 500000.0),
    (51.59231, 18.93815, 413981.76722817775, 495716.7866334615),
]

polish_lat = st.floats(49.0, 54.9)
polish_lon = st.floats(14.1, 24.2)
coordinate = st.floats(-2000.0, 2000.0)


@pytest.mark.parametrize(("lat", "lon", "x", "y"), PROJ_REFERENCE)
def test_cs92_matches_proj_to_a_millimetre(lat: float, lon: float, x: float, y: float) -> None:
    northing, easting = cs92_from_wgs84(lat, lon)
    assert northing == pytest.approx(x, abs=1e-3)
    assert easting == pytest.approx(y, abs=1e-3)
    back_lat, back_lon = wgs84_from_cs92(x, y)
    assert back_lat == pytest.approx(lat, abs=1e-8)
    assert back_lon == pytest.approx(lon, abs=1e-8)


@given(polish_lat, polish_lon)
def test_cs92_round_trip(lat: float, lon: float) -> None:
    northing, easting = cs92_from_wgs84(lat, lon)
    back_lat, back_lon = wgs84_from_cs92(northing, easting)
    # 1e-9 degrees is about 0.1 mm.
    assert back_lat == pytest.approx(lat, abs=1e-9)
    assert back_lon == pytest.approx(lon, abs=1e-9)


def test_cs92_accepts_arrays() -> None:
    lats = np.array([row[0] for row in PROJ_REFERENCE])
    lons = np.array([row[1] for row in PROJ_REFERENCE])
    northing, easting = cs92_from_wgs84(lats, lons)
    assert np.allclose(northing, [row[2] for row in PROJ_REFERENCE], atol=1e-3)
    assert np.allclose(easting, [row[3] for row in PROJ_REFERENCE], atol=1e-3)


def test_local_plane_lengths_match_cs92_scaled() -> None:
    # 1 km east and 1 km north of Zduńska Wola's centre measured in the plane and in CS92 (whose scale near
    # 19° E is 0.9993) agree to 0.1 %.
    plane = LocalPlane(51.6, 18.94)
    lat, lon = plane.to_latlon(np.array([1000.0, 0.0]), np.array([0.0, 1000.0]))
    x0, y0 = cs92_from_wgs84(51.6, 18.94)
    for index in range(2):
        x, y = cs92_from_wgs84(float(lat[index]), float(lon[index]))
        assert math.hypot(x - x0, y - y0) / 0.9993 == pytest.approx(1000.0, rel=1e-3)


@given(coordinate, coordinate, coordinate, coordinate, st.floats(0.0, 1.0))
def test_point_on_segment_is_at_zero(ax: float, ay: float, bx: float, by: float, t: float) -> None:
    px, py = ax + t * (bx - ax), ay + t * (by - ay)
    assert float(point_segment_distance_m(px, py, ax, ay, bx, by)) == pytest.approx(0.0, abs=1e-6)


@given(coordinate, coordinate, coordinate, coordinate, coordinate, coordinate)
def test_distance_is_symmetric_in_the_ends_and_below_the_ends(
    px: float, py: float, ax: float, ay: float, bx: float, by: float
) -> None:
    forward = float(point_segment_distance_m(px, py, ax, ay, bx, by))
    backward = float(point_segment_distance_m(px, py, bx, by, ax, ay))
    assert forward == pytest.approx(backward, abs=1e-6)
    assert forward <= math.hypot(px - ax, py - ay) + 1e-6
    assert forward <= math.hypot(px - bx, py - by) + 1e-6
    assert forward >= 0.0


@given(coordinate, coordinate, coordinate, coordinate, coordinate, coordinate, coordinate, coordinate)
def test_distance_changes_no_faster_than_the_point_moves(
    px: float, py: float, qx: float, qy: float, ax: float, ay: float, bx: float, by: float
) -> None:
    # Triangle inequality: d(Q, AB) <= |PQ| + d(P, AB).
    d_p = float(point_segment_distance_m(px, py, ax, ay, bx, by))
    d_q = float(point_segment_distance_m(qx, qy, ax, ay, bx, by))
    assert d_q <= math.hypot(px - qx, py - qy) + d_p + 1e-6


def test_distance_to_a_known_segment() -> None:
    assert float(point_segment_distance_m(5.0, 3.0, 0.0, 0.0, 10.0, 0.0)) == pytest.approx(3.0)
    assert float(point_segment_distance_m(13.0, 4.0, 0.0, 0.0, 10.0, 0.0)) == pytest.approx(5.0)
    assert float(point_segment_distance_m(1.0, 1.0, 0.0, 0.0, 0.0, 0.0)) == pytest.approx(math.sqrt(2.0))


segments_strategy = st.lists(
    st.tuples(coordinate, coordinate, coordinate, coordinate), min_size=1, max_size=40
).map(lambda rows: np.asarray(rows, dtype=np.float64))
points_strategy = st.lists(st.tuples(st.floats(-5000, 5000), st.floats(-5000, 5000)), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(segments_strategy, points_strategy, st.sampled_from([7.0, 50.0, 100.0, 700.0]))
def test_index_agrees_with_trying_every_segment(
    segments: np.ndarray, points: list[tuple[float, float]], cell_m: float
) -> None:
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    expected = nearest_segment_distance_brute_m(xs, ys, segments)
    found = SegmentIndex(segments, cell_m=cell_m).nearest_distance_m(xs, ys)
    assert np.allclose(found, expected, atol=1e-6)


def test_empty_index_answers_infinity() -> None:
    assert np.isinf(SegmentIndex(np.empty((0, 4))).nearest_distance_m([0.0], [0.0])).all()


def test_index_is_fast_for_a_town() -> None:
    import time

    rng = np.random.default_rng(1)
    starts = rng.uniform(-3000, 3000, size=(3000, 2))
    ends = starts + rng.uniform(-80, 80, size=(3000, 2))
    segments = np.column_stack([starts, ends])
    points = rng.uniform(-3000, 3000, size=(15000, 2))
    began = time.perf_counter()
    found = SegmentIndex(segments).nearest_distance_m(points[:, 0], points[:, 1])
    elapsed = time.perf_counter() - began
    sample = rng.choice(len(points), 300, replace=False)
    expected = nearest_segment_distance_brute_m(points[sample, 0], points[sample, 1], segments)
    assert np.allclose(found[sample], expected)
    assert elapsed < 10.0
