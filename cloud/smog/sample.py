"""The synthetic sample shipped in ``cloud/smog/data/sample``: address points on real street names of
Zduńska Wola and plausible gas and district heat networks, for development, tests and demonstrations.

The street lines are drawn by hand around the town centre; they are NOT the town's real geometry, and the
networks are NOT the real gas or district heat networks. ``python -m cloud.smog.sample`` rewrites the files.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud.smog.geo import LocalPlane, cs92_from_wgs84

SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "sample"
POSTCODE = "98-220"
# Plane origin near the town centre; streets below are in metres east (x) and north (y) of it.
ORIGIN = LocalPlane(51.6000, 18.9350)
HOUSE_SPACING_M = 64.0
SOURCE = "lokalnie synthetic sample (NOT the real network)"


@dataclass(frozen=True)
class SampleStreet:
    """A street as a polyline [m], the share of its length (from the start) with gas, and whether district
    heat runs along it (over the same share)."""

    name: str
    points: tuple[tuple[float, float], ...]
    gas_share: float
    heat_share: float = 0.0


STREETS: tuple[SampleStreet, ...] = (
    SampleStreet("Łaska", ((300, 100), (1300, 700), (2300, 1350)), gas_share=0.55),
    SampleStreet("Sieradzka", ((-200, -50), (-1200, -200), (-2200, -350)), gas_share=0.6),
    SampleStreet("Szadkowska", ((50, 300), (0, 1100), (-100, 1600)), gas_share=0.6),
    SampleStreet("Kilińskiego", ((-300, 350), (400, 420)), gas_share=1.0, heat_share=1.0),
    SampleStreet("Złotnickiego", ((-650, 200), (-650, 950)), gas_share=1.0, heat_share=1.0),
    SampleStreet("Żeromskiego", ((100, -100), (750, -300)), gas_share=1.0),
    SampleStreet("Kościelna", ((-50, 0), (-50, 330)), gas_share=1.0, heat_share=1.0),
    SampleStreet("Dąbrowskiego", ((-400, -300), (450, -420)), gas_share=1.0, heat_share=0.4),
    SampleStreet("Spacerowa", ((600, -600), (1250, -900)), gas_share=0.5),
    SampleStreet("Ogrodowa", ((-300, 620), (320, 720)), gas_share=1.0),
    SampleStreet("Piwna", ((60, 20), (360, 60)), gas_share=1.0, heat_share=1.0),
    SampleStreet("Królewska", ((-260, 100), (-260, -380)), gas_share=1.0),
    SampleStreet("Okrzei", ((200, -520), (260, -1150)), gas_share=0.8),
    SampleStreet("Zielona", ((-850, -620), (-200, -720)), gas_share=1.0),
    SampleStreet("Kacza", ((700, 200), (1150, 0)), gas_share=0.0),
    SampleStreet("Karsznicka", ((300, -800), (520, -1500), (760, -1620)), gas_share=0.45),
    SampleStreet("Getta Żydowskiego", ((-150, 150), (150, 240)), gas_share=1.0, heat_share=1.0),
    SampleStreet("Mickiewicza", ((-720, -100), (-720, 420)), gas_share=1.0, heat_share=1.0),
    SampleStreet("Paryska", ((900, -200), (1600, -420)), gas_share=0.0),
    SampleStreet("Łódzka", ((400, 250), (1400, 320), (2300, 200)), gas_share=0.6),
)
# The district heat trunk from the (sample) heat plant north-west of the centre to the centre.
HEAT_TRUNK_M: tuple[tuple[float, float], ...] = ((-1100, 1000), (-650, 950), (-650, 200), (-50, 150))


def _cut(points: tuple[tuple[float, float], ...], share: float) -> list[tuple[float, float]]:
    """The first ``share`` of a polyline's length."""
    xy = np.asarray(points, dtype=np.float64)
    lengths = np.hypot(*np.diff(xy, axis=0).T)
    wanted = share * float(lengths.sum())
    result = [tuple(xy[0])]
    for (start, end), length in zip(itertools.pairwise(xy), lengths, strict=True):
        if wanted >= length:
            result.append(tuple(end))
            wanted -= length
            continue
        if wanted > 0:
            result.append(tuple(start + (end - start) * wanted / length))
        break
    return [(float(x), float(y)) for x, y in result]


def _houses(street: SampleStreet, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """(number, x, y): odd numbers on the left, even on the right, set back 6–24 m from the street's axis."""
    xy = np.asarray(street.points, dtype=np.float64)
    houses: list[tuple[str, float, float]] = []
    odd, even = 1, 2
    for start, end in itertools.pairwise(xy):
        direction = end - start
        length = float(np.hypot(*direction))
        unit = direction / length
        left = np.array([-unit[1], unit[0]])
        for along in np.arange(HOUSE_SPACING_M / 2, length, HOUSE_SPACING_M):
            for side, sign in (("odd", 1.0), ("even", -1.0)):
                setback = float(rng.uniform(6.0, 24.0))
                shift = float(rng.uniform(-6.0, 6.0))
                point = start + unit * (along + shift) + left * sign * setback
                number = odd if side == "odd" else even
                houses.append((str(number), float(point[0]), float(point[1])))
                # Now and then a plot is divided and the rear house gets a letter: 41a.
                if rng.random() < 0.08:
                    rear = point + left * sign * 18.0
                    houses.append((f"{number}a", float(rear[0]), float(rear[1])))
                if side == "odd":
                    odd += 2
                else:
                    even += 2
    return houses


def _lonlat(points: list[tuple[float, float]]) -> list[list[float]]:
    lat, lon = ORIGIN.to_latlon([p[0] for p in points], [p[1] for p in points])
    return [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]


def build_sample() -> dict[str, str]:
    """The sample files' contents by file name."""
    rng = np.random.default_rng(2026)
    rows: list[tuple[str, str, float, float]] = []
    for street in STREETS:
        rows.extend((street.name, number, x, y) for number, x, y in _houses(street, rng))
    lat, lon = ORIGIN.to_latlon([row[2] for row in rows], [row[3] for row in rows])
    northing, easting = cs92_from_wgs84(lat, lon)
    csv_text = io.StringIO()
    writer = csv.writer(csv_text, delimiter=";", lineterminator="\n")
    writer.writerow(["idIIP", "miejscowosc", "ulica", "numerPorzadkowy", "kodPocztowy", "status", "x", "y"])
    features = []
    for index, (name, number, _x, _y) in enumerate(rows):
        north = float(np.atleast_1d(northing)[index])
        east = float(np.atleast_1d(easting)[index])
        writer.writerow(
            [
                f"PL.SAMPLE.{index + 1:05d}",
                "Zduńska Wola",
                name,
                number,
                POSTCODE,
                "istniejacy",
                f"{north:.2f}",
                f"{east:.2f}",
            ]
        )
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(float(lon[index]), 7), round(float(lat[index]), 7)],
                },
                "properties": {"ulica": name, "numerPorzadkowy": number, "kodPocztowy": POSTCODE},
            }
        )
    gas = [
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": _lonlat(_cut(street.points, street.gas_share))},
            "properties": {"name": street.name, "source": SOURCE},
        }
        for street in STREETS
        if street.gas_share > 0
    ]
    heat_lines = [_cut(street.points, street.heat_share) for street in STREETS if street.heat_share > 0]
    heat_lines.append([(float(x), float(y)) for x, y in HEAT_TRUNK_M])
    heat = [
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": _lonlat(line)},
            "properties": {"source": SOURCE},
        }
        for line in heat_lines
    ]

    def collection(items: Sequence[Mapping[str, object]]) -> str:
        # One feature a line: readable diffs when the sample changes.
        lines = ",\n".join(json.dumps(item, ensure_ascii=False) for item in items)
        return '{"type": "FeatureCollection", "features": [\n' + lines + "\n]}\n"

    return {
        "addresses.csv": csv_text.getvalue(),
        "addresses.geojson": collection(features),
        "gas.geojson": collection(gas),
        "heat.geojson": collection(heat),
    }


def write_sample(directory: Path = SAMPLE_DIR) -> None:
    """Write the sample files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in build_sample().items():
        (directory / name).write_text(text, encoding="utf-8")


def main() -> None:
    write_sample()


if __name__ == "__main__":
    main()
