"""Address normalisation and search, the import of address points and networks into SQLite, all-or-nothing
imports with line numbers, and the import command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from cloud.smog.addresses import fold, number_key, parse_query, search_addresses, street_key
from cloud.smog.errors import SmogImportError
from cloud.smog.importer import import_addresses, import_networks, import_sample, recompute_distances
from cloud.smog.sample import SAMPLE_DIR, build_sample
from cloud.smog.tables import SmogAddress, SmogNetwork, create_smog_tables

CSV_HEADER = "idIIP;miejscowosc;ulica;numerPorzadkowy;kodPocztowy;status;x;y\n"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'smog.db'}")
    create_smog_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def loaded(engine: Engine) -> Engine:
    with Session(engine) as session, session.begin():
        import_sample(session)
    return engine


def test_fold_and_keys() -> None:
    assert fold("Łaska ŻÓŁTA Ćma") == "laska zolta cma"
    assert street_key("ul. Getta Żydowskiego") == "getta zydowskiego"
    assert street_key("Plac Wolności") == "wolnosci"
    assert number_key("12 A") == "12a"


def test_parse_query_forgives_form() -> None:
    for query in ("Łaska 41", "ul. laska 41", "41 łaska", "UL.ŁASKA 41", "łaska 41, 98-220 Zduńska Wola"):
        parsed = parse_query(query)
        assert parsed.words == ("laska",), query
        assert parsed.numbers == ("41",), query
    assert parse_query("Łaska 41 A").numbers == ("41a",)


def test_sample_files_are_what_the_generator_makes() -> None:
    for name, text in build_sample().items():
        assert (SAMPLE_DIR / name).read_text(encoding="utf-8") == text, name


def test_sample_import_counts_and_distances(loaded: Engine) -> None:
    with Session(loaded) as session:
        count = session.scalar(select(func.count()).select_from(SmogAddress))
        assert count is not None and 300 <= count <= 600
        statement = select(SmogNetwork.kind, func.count()).group_by(SmogNetwork.kind)
        kinds = {kind: count for kind, count in session.execute(statement)}
        assert kinds["gas"] > 5 and kinds["heat"] > 3
        rows = session.scalars(select(SmogAddress)).all()
        assert all(row.distance_gas_m is not None and row.distance_heat_m is not None for row in rows)
        assert all(51.585 <= row.lat <= 51.615 and 18.90 <= row.lon <= 18.97 for row in rows)
        assert all(row.postcode == "98-220" for row in rows)
        # Houses near gas, near district heat and far from both are all in the sample.
        assert any(row.distance_gas_m is not None and row.distance_gas_m <= 20 for row in rows)
        assert any(row.distance_heat_m is not None and row.distance_heat_m <= 100 for row in rows)
        assert any((row.distance_gas_m or 0) > 200 and (row.distance_heat_m or 0) > 500 for row in rows)


def test_csv_and_geojson_of_the_sample_give_the_same_points(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        import_addresses(session, SAMPLE_DIR / "addresses.csv")
        from_csv = {
            (row.street, row.number): (row.lat, row.lon) for row in session.scalars(select(SmogAddress))
        }
    with Session(engine) as session, session.begin():
        import_addresses(session, SAMPLE_DIR / "addresses.geojson")
        from_geojson = {
            (row.street, row.number): (row.lat, row.lon) for row in session.scalars(select(SmogAddress))
        }
    assert from_csv.keys() == from_geojson.keys()
    for key, (lat, lon) in from_csv.items():
        # CS92 to 1 cm in the CSV: 1e-6 degrees is about 0.1 m.
        assert lat == pytest.approx(from_geojson[key][0], abs=1e-6)
        assert lon == pytest.approx(from_geojson[key][1], abs=1e-6)


@pytest.mark.parametrize("query", ["ul. Łaska 41", "laska 41", "41 łaska", "ŁASKA 41", "al. Łaska 41"])
def test_search_finds_laska_41(loaded: Engine, query: str) -> None:
    with Session(loaded) as session:
        found = search_addresses(session, query, limit=5)
    assert found, query
    assert (found[0].street, found[0].number) == ("Łaska", "41")
    assert found[0].label == "Łaska 41, 98-220 Zduńska Wola"


def test_search_by_prefix_and_letter_suffix(loaded: Engine) -> None:
    with Session(loaded) as session:
        suffixed = session.scalars(select(SmogAddress).where(SmogAddress.number.like("%a"))).first()
        assert suffixed is not None
        found = search_addresses(session, f"{suffixed.number.upper()} {fold(suffixed.street)[:4]}", limit=3)
        assert (found[0].street, found[0].number) == (suffixed.street, suffixed.number)
        spaced = search_addresses(session, f"{suffixed.street} {suffixed.number[:-1]} A", limit=3)
        assert (spaced[0].street, spaced[0].number) == (suffixed.street, suffixed.number)
        street_only = search_addresses(session, "zeromsk", limit=50)
        assert street_only and {match.street for match in street_only} == {"Żeromskiego"}
        numbers = [int(match.number.rstrip("a")) for match in street_only]
        assert numbers == sorted(numbers)
        assert search_addresses(session, "Nieistniejąca 5", limit=5) == []
        assert search_addresses(session, "Łaska 4000", limit=5) == []
        assert len(search_addresses(session, "Łaska", limit=3)) == 3


def test_search_with_diacritics_in_multiword_street(loaded: Engine) -> None:
    with Session(loaded) as session:
        found = search_addresses(session, "getta zydowskiego 3", limit=3)
        assert (found[0].street, found[0].number) == ("Getta Żydowskiego", "3")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_rows_are_reported_with_line_numbers(engine: Engine, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.csv",
        CSV_HEADER
        + "1;Zduńska Wola;Łaska;1;98-220;istniejacy;414956.95;495810.02\n"
        + "2;Zduńska Wola;Łaska;x1;98-220;istniejacy;414956.95;495810.02\n"
        + "3;Zduńska Wola;Łaska;3;98220;istniejacy;414956.95;495810.02\n"
        + "4;Zduńska Wola;Łaska;5;98-220;istniejacy;abc;495810.02\n"
        + "5;Zduńska Wola;Łaska;7;98-220;istniejacy;14956.95;495810.02\n"
        + "6;Zduńska Wola;Łaska;1;98-220;istniejacy;414950.00;495810.02\n",
    )
    with Session(engine) as session, session.begin(), pytest.raises(SmogImportError) as refused:
        import_addresses(session, path)
    lines = {problem.line: problem.reason for problem in refused.value.problems}
    assert set(lines) == {3, 4, 5, 6, 7}
    assert "house number" in lines[3]
    assert "postcode" in lines[4]
    assert "not numbers" in lines[5]
    assert "outside Poland" in lines[6]
    assert "repeats the address of line 2" in lines[7]
    assert "bad.csv:3:" in str(refused.value)


def test_missing_columns_are_reported(engine: Engine, tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", "ulica;numer;x;y\nŁaska;1;414956.95;495810.02\n")
    with (
        Session(engine) as session,
        pytest.raises(SmogImportError, match=r"header lacks the column\(s\): postcode"),
    ):
        import_addresses(session, path)


def test_a_failed_import_changes_nothing(loaded: Engine, tmp_path: Path) -> None:
    with Session(loaded) as session:
        before = session.scalar(select(func.count()).select_from(SmogAddress))
        gas_before = session.scalar(
            select(func.count()).select_from(SmogNetwork).where(SmogNetwork.kind == "gas")
        )
    good_gas = tmp_path / "gas.geojson"
    good_gas.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "LineString", "coordinates": [[18.93, 51.60], [18.94, 51.60]]},
                        "properties": {},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    bad_addresses = _write(tmp_path / "bad.csv", CSV_HEADER + "1;Zduńska Wola;Łaska;1;98-220;x;abc;def\n")
    with pytest.raises(SmogImportError), Session(loaded) as session, session.begin():
        # The new gas network is written first, then the address file is refused: all is rolled back.
        import_networks(session, good_gas, "gas")
        import_addresses(session, bad_addresses)
    with Session(loaded) as session:
        assert session.scalar(select(func.count()).select_from(SmogAddress)) == before
        gas_after = session.scalar(
            select(func.count()).select_from(SmogNetwork).where(SmogNetwork.kind == "gas")
        )
        assert gas_after == gas_before


def test_bad_network_features_are_refused(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "net.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [18.9, 51.6]}},
                    {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[18.9, 51.6]]}},
                    {
                        "type": "Feature",
                        "geometry": {"type": "LineString", "coordinates": [[2.3, 48.8], [2.4, 48.8]]},
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    with Session(engine) as session, pytest.raises(SmogImportError) as refused:
        import_networks(session, path, "heat")
    reasons = [problem.reason for problem in refused.value.problems]
    assert reasons[0].startswith("feature 1: geometry is not a LineString")
    assert reasons[1].startswith("feature 2: a line needs at least two positions")
    assert reasons[2].startswith("feature 3: position") and "outside Poland" in reasons[2]
    with pytest.raises(ValueError, match="network kind"):
        import_networks(Session(engine), path, "water")


def test_networks_in_cs92_geojson(engine: Engine, tmp_path: Path) -> None:
    # The same line as WGS84 and as EPSG:2180 (legacy crs member) gives the same distances.
    from cloud.smog.geo import cs92_from_wgs84

    line_wgs84 = [[18.93, 51.60], [18.95, 51.601]]
    line_cs92 = []
    for lon, lat in line_wgs84:
        northing, easting = cs92_from_wgs84(lat, lon)
        line_cs92.append([float(easting), float(northing)])
    documents = {
        "wgs84": {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": line_wgs84}}],
        },
        "cs92": {
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2180"}},
            "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": line_cs92}}],
        },
    }
    distances = {}
    for name, document in documents.items():
        path = tmp_path / f"{name}.geojson"
        path.write_text(json.dumps(document), encoding="utf-8")
        with Session(engine) as session, session.begin():
            import_networks(session, path, "gas")
            import_addresses(session, SAMPLE_DIR / "addresses.csv")
            distances[name] = [
                row.distance_gas_m for row in session.scalars(select(SmogAddress).order_by(SmogAddress.id))
            ]
            assert recompute_distances(session) == len(distances[name])
    for a, b in zip(distances["wgs84"], distances["cs92"], strict=True):
        assert a == pytest.approx(b, abs=0.05)


def test_import_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from cloud.smog.cli import smog_import_command

    app = typer.Typer()
    app.command()(smog_import_command)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            str(SAMPLE_DIR / "addresses.csv"),
            str(SAMPLE_DIR / "gas.geojson"),
            str(SAMPLE_DIR / "heat.geojson"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Imported 582 address points" in result.output
    bad = _write(tmp_path / "bad.csv", CSV_HEADER + "1;Zduńska Wola;Łaska;1;98-220;x;abc;def\n")
    result = runner.invoke(app, [str(bad), str(SAMPLE_DIR / "gas.geojson"), str(SAMPLE_DIR / "heat.geojson")])
    assert result.exit_code == 1
    assert "bad.csv:2" in result.output
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(SmogAddress)) == 582
    engine.dispose()
    # The import made the store's schema through its migrations: the API and the ingest start on it.
    from cloud.db.migrate import upgrade_database

    upgrade_database(f"sqlite:///{tmp_path / 'cli.db'}")
