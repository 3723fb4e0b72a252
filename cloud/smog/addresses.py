"""The city's address points: reading them as the national register PRG publishes them (CSV with CS92
coordinates, or GeoJSON points), the normalised search key, and the resident's address search that forgives
diacritics, case, street prefixes, letter suffixes and word order."""

from __future__ import annotations

import csv
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.smog.errors import RowProblem
from cloud.smog.geo import wgs84_from_cs92
from cloud.smog.tables import SmogAddress

# Poland's extent with a margin: a point outside it is a wrong column or a wrong coordinate system.
POLAND_LAT_DEG = (48.9, 55.0)
POLAND_LON_DEG = (14.0, 24.3)
POSTCODE_PATTERN = re.compile(r"^\d{2}-\d{3}$")
HOUSE_NUMBER_PATTERN = re.compile(r"^\d{1,5}[a-z]{0,2}(/\d{1,5}[a-z]{0,2})?$")
# Words a street's name may begin with in the register or in a query; they do not tell streets apart.
STREET_PREFIXES = frozenset({"ul", "ulica", "al", "aleja", "aleje", "os", "osiedle", "pl", "plac"})
TOWN_NAMES = ("zdunska wola",)

# ł has no Unicode decomposition, so NFKD alone would keep it.
_FOLD_TABLE = str.maketrans({"ł": "l", "Ł": "L"})
_QUERY_TOKEN = re.compile(r"\d+[a-z]{0,2}(?:/\d+[a-z]?)?|[a-z]+")
_POSTCODE_IN_TEXT = re.compile(r"\b\d{2}-\d{3}\b")

# Column names of a PRG address-point export and of simpler CSV files, folded (see _header_key).
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "street": ("ulica", "street", "nazwaulicy"),
    "number": ("numerporzadkowy", "numer", "number", "nr", "numerbudynku"),
    "postcode": ("kodpocztowy", "postcode", "kod"),
    "northing": ("x", "northing", "x2180"),
    "easting": ("y", "easting", "y2180"),
    "lat": ("lat", "latitude", "szerokosc"),
    "lon": ("lon", "lng", "longitude", "dlugosc"),
}


def in_poland(lat_deg: float, lon_deg: float) -> bool:
    """Whether a point lies within Poland's extent (with a margin)."""
    lat_ok = POLAND_LAT_DEG[0] <= lat_deg <= POLAND_LAT_DEG[1]
    return lat_ok and POLAND_LON_DEG[0] <= lon_deg <= POLAND_LON_DEG[1]


def fold(text: str) -> str:
    """Lower case without Polish diacritics: ``"Łaska Żółta"`` → ``"laska zolta"``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_TABLE))
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def street_key(street: str) -> str:
    """A street's name as searched: folded, punctuation dropped, leading ``ul.``/``al.``/``os.``/``pl.``
    words removed: ``"ul. Getta Żydowskiego"`` → ``"getta zydowskiego"``."""
    words = re.findall(r"[0-9a-z]+", fold(street))
    while len(words) > 1 and words[0] in STREET_PREFIXES:
        words = words[1:]
    return " ".join(words)


def number_key(number: str) -> str:
    """A house number as searched: folded, without spaces: ``"12 A"`` → ``"12a"``."""
    return re.sub(r"\s+", "", fold(number))


def search_key(street: str, number: str) -> str:
    return f"{street_key(street)} {number_key(number)}"


@dataclass(frozen=True)
class AddressRecord:
    """An address point read from an import file, in WGS84."""

    street: str
    number: str
    postcode: str
    lat: float
    lon: float
    line: int


def _header_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", fold(name))


def _columns(fieldnames: Sequence[str]) -> dict[str, str]:
    """Role (street, number, …) to the file's own column name."""
    by_key = {_header_key(name): name for name in fieldnames}
    found: dict[str, str] = {}
    for role, aliases in _COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in by_key:
                found[role] = by_key[alias]
                break
    return found


def _parse_float(text: str | None) -> float:
    if text is None or not text.strip():
        raise ValueError("empty")
    value = float(text.strip().replace(",", "."))
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def _check_address(
    street: str, number: str, postcode: str, lat: float, lon: float
) -> tuple[str, str, str] | str:
    """Cleaned (street, number, postcode), or the reason the row is refused."""
    street = " ".join(street.split())
    number = " ".join(number.split())
    postcode = postcode.strip()
    if not street_key(street):
        return "street is empty"
    if not HOUSE_NUMBER_PATTERN.match(number_key(number)):
        return f"house number {number!r} is not a number with an optional letter suffix"
    if not POSTCODE_PATTERN.match(postcode):
        return f"postcode {postcode!r} is not of the form 00-000"
    if not in_poland(lat, lon):
        return (
            f"point ({lat:.5f} N, {lon:.5f} E) is outside Poland: check the coordinate columns "
            "(CS92 x is the northing, y the easting)"
        )
    return street, number, postcode


def read_addresses_csv(path: Path) -> tuple[list[AddressRecord], list[RowProblem]]:
    """Address points of a CSV file shaped like a PRG export.

    Columns are found by name, case and diacritics ignored: ``ulica``/``street``,
    ``numerPorzadkowy``/``numer``/``number``, ``kodPocztowy``/``postcode``, and either CS92 (EPSG:2180)
    ``x`` (northing) and ``y`` (easting) or WGS84 ``lat`` and ``lon``. The delimiter (``;`` or ``,``) is
    detected. Returns the good rows and one problem per refused row with its line number.
    """
    text = path.read_text(encoding="utf-8-sig")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    columns = _columns(reader.fieldnames or [])
    missing = [role for role in ("street", "number", "postcode") if role not in columns]
    has_cs92 = "northing" in columns and "easting" in columns
    has_wgs84 = "lat" in columns and "lon" in columns
    if not (has_cs92 or has_wgs84):
        missing.append("x and y (EPSG:2180) or lat and lon")
    if missing:
        return [], [RowProblem(str(path), 1, f"header lacks the column(s): {', '.join(missing)}")]
    records: list[AddressRecord] = []
    problems: list[RowProblem] = []
    for row in reader:
        line = reader.line_num
        try:
            if has_wgs84:
                lat, lon = _parse_float(row.get(columns["lat"])), _parse_float(row.get(columns["lon"]))
            else:
                northing = _parse_float(row.get(columns["northing"]))
                easting = _parse_float(row.get(columns["easting"]))
                lat_n, lon_n = wgs84_from_cs92(northing, easting)
                lat, lon = float(lat_n), float(lon_n)
        except ValueError as error:
            problems.append(RowProblem(str(path), line, f"coordinates are not numbers ({error})"))
            continue
        checked = _check_address(
            row.get(columns["street"]) or "",
            row.get(columns["number"]) or "",
            row.get(columns["postcode"]) or "",
            lat,
            lon,
        )
        if isinstance(checked, str):
            problems.append(RowProblem(str(path), line, checked))
            continue
        records.append(AddressRecord(*checked, lat=lat, lon=lon, line=line))
    return records, problems


def geojson_is_cs92(document: dict[str, Any]) -> bool:
    """Whether a GeoJSON document declares EPSG:2180 in its (pre-RFC 7946) ``crs`` member; its positions
    are then [easting, northing]. Otherwise they are WGS84 [lon, lat] as RFC 7946 requires."""
    crs = document.get("crs")
    name = str(crs.get("properties", {}).get("name", "")) if isinstance(crs, dict) else ""
    return name.replace("::", ":").upper().endswith("EPSG:2180")


def read_feature_collection(path: Path) -> tuple[list[Any], bool] | RowProblem:
    """The features of a GeoJSON FeatureCollection file and whether its positions are EPSG:2180
    (`geojson_is_cs92`); the problem, as line 0, when the file is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        return RowProblem(str(path), 0, f"not a readable GeoJSON file ({error})")
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        return RowProblem(str(path), 0, "not a GeoJSON FeatureCollection")
    return features, geojson_is_cs92(document)


def read_addresses_geojson(path: Path) -> tuple[list[AddressRecord], list[RowProblem]]:
    """Address points of a GeoJSON FeatureCollection of Points with the same property names as the CSV.

    A refused feature is reported as line 0 with its 1-based feature number in the reason.
    """
    collection = read_feature_collection(path)
    if isinstance(collection, RowProblem):
        return [], [collection]
    features, cs92 = collection
    records: list[AddressRecord] = []
    problems: list[RowProblem] = []
    for number, feature in enumerate(features, start=1):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            problems.append(RowProblem(str(path), 0, f"feature {number}: geometry is not a Point"))
            continue
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            problems.append(RowProblem(str(path), 0, f"feature {number}: properties are not an object"))
            continue
        try:
            first, second = (float(value) for value in geometry["coordinates"][:2])
            if not (math.isfinite(first) and math.isfinite(second)):
                raise ValueError("not finite")
        except (KeyError, TypeError, ValueError) as error:
            problems.append(RowProblem(str(path), 0, f"feature {number}: bad coordinates ({error})"))
            continue
        if cs92:
            lat_n, lon_n = wgs84_from_cs92(second, first)
            lat, lon = float(lat_n), float(lon_n)
        else:
            lon, lat = first, second
        columns = _columns(list(properties))
        checked = _check_address(
            str(properties.get(columns.get("street", ""), "") or ""),
            str(properties.get(columns.get("number", ""), "") or ""),
            str(properties.get(columns.get("postcode", ""), "") or ""),
            lat,
            lon,
        )
        if isinstance(checked, str):
            problems.append(RowProblem(str(path), 0, f"feature {number}: {checked}"))
            continue
        records.append(AddressRecord(*checked, lat=lat, lon=lon, line=number))
    return records, problems


def read_addresses(path: Path) -> tuple[list[AddressRecord], list[RowProblem]]:
    """Address points of a ``.csv`` or ``.geojson``/``.json`` file."""
    if path.suffix.lower() in (".geojson", ".json"):
        return read_addresses_geojson(path)
    return read_addresses_csv(path)


# --- search ----------------------------------------------------------------------------------------------


class AddressMatch(BaseModel):
    """An address found by the search, as the API returns it."""

    model_config = ConfigDict(frozen=True)

    id: int
    street: str
    number: str
    postcode: str
    label: str
    lat: float
    lon: float
    distance_gas_m: float | None
    distance_heat_m: float | None


@dataclass(frozen=True)
class ParsedQuery:
    words: tuple[str, ...]
    numbers: tuple[str, ...]


def parse_query(query: str) -> ParsedQuery:
    """Split a resident's query into street words and number-like tokens, dropping street prefixes, the
    postcode and the town's name: ``"ul. Łaska 41 A, 98-220 Zduńska Wola"`` → words ``("laska",)``, numbers
    ``("41a",)``."""
    text = _POSTCODE_IN_TEXT.sub(" ", fold(query))
    for town in TOWN_NAMES:
        text = text.replace(town, " ")
    tokens = _QUERY_TOKEN.findall(text)
    merged: list[str] = []
    for token in tokens:
        # "41 a" is one house number, not the number 41 and a street word "a".
        if len(token) == 1 and token.isalpha() and merged and merged[-1][-1].isdigit():
            merged[-1] += token
        else:
            merged.append(token)
    words = tuple(token for token in merged if token.isalpha() and token not in STREET_PREFIXES)
    numbers = tuple(token for token in merged if token[0].isdigit())
    return ParsedQuery(words, numbers)


def _natural(number: str) -> tuple[int, str]:
    digits = re.match(r"\d+", number)
    return (int(digits.group()) if digits else 0, number)


def match_score(query: ParsedQuery, street: str, number: str) -> float | None:
    """How well an address matches a parsed query (higher is better), or ``None`` when it does not.

    Every query word must begin a word of the street (``lask`` matches ``laska``); a number token must be
    the house number (exactly, or its digits with the letter left out) or a word of the street (``3 maja``).
    """
    street_words = street_key(street).split()
    house = number_key(number)
    score = 0.0
    for word in query.words:
        if word in street_words:
            score += 3.0
        elif any(candidate.startswith(word) for candidate in street_words):
            score += 2.0
        else:
            return None
    house_matched = False
    for token in query.numbers:
        if token in street_words:
            score += 3.0
        elif not house_matched and token == house:
            score += 5.0
            house_matched = True
        elif not house_matched and house.startswith(token) and not house[len(token) :][:1].isdigit():
            score += 4.0
            house_matched = True
        else:
            return None
    return score


def _label(address: SmogAddress) -> str:
    return f"{address.street} {address.number}, {address.postcode} Zduńska Wola"


def to_match(address: SmogAddress) -> AddressMatch:
    return AddressMatch(
        id=address.id,
        street=address.street,
        number=address.number,
        postcode=address.postcode,
        label=_label(address),
        lat=address.lat,
        lon=address.lon,
        distance_gas_m=address.distance_gas_m,
        distance_heat_m=address.distance_heat_m,
    )


def rank_addresses(query: str, addresses: Iterable[SmogAddress], limit: int) -> list[SmogAddress]:
    """The best ``limit`` addresses for ``query``: by score, then street, then house number in order."""
    parsed = parse_query(query)
    if not parsed.words and not parsed.numbers:
        return []
    scored = [
        (score, address)
        for address in addresses
        if (score := match_score(parsed, address.street, address.number)) is not None
    ]
    scored.sort(key=lambda item: (-item[0], street_key(item[1].street), _natural(number_key(item[1].number))))
    return [address for _score, address in scored[:limit]]


def search_addresses(session: Session, query: str, limit: int = 10) -> list[AddressMatch]:
    """Addresses matching a resident's query, best first.

    Tolerates Polish diacritics (``ł`` → ``l``), case, ``ul.``/``al.``/``os.``/``pl.`` prefixes, letter
    suffixes (``12a``, ``12 A``) and word order: ``"Łaska 41"``, ``"ul. laska 41"`` and ``"41 łaska"`` find
    the same point. The database narrows the candidates by the query's longest word (or number); the
    ranking is done here.
    """
    if limit <= 0:
        return []
    parsed = parse_query(query)
    needles = sorted(parsed.words, key=len, reverse=True) or list(parsed.numbers)
    if not needles:
        return []
    statement = select(SmogAddress).where(SmogAddress.search_key.like(f"%{needles[0]}%"))
    candidates = session.scalars(statement).all()
    return [to_match(address) for address in rank_addresses(query, candidates, limit)]
