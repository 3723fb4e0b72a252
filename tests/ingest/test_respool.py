"""Spooling a period again from the relational store (`cloud.timeseries.respool`, `lokalnie
timeseries-respool`): the lines are those the ingest spooled; a time-series database that missed everything
gets every point, and a second run doubles nothing (InfluxDB 1.x, which keys points as 2.x does); the outbox
is let grow only so far; bad options are refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.ingest import stats
from cloud.timeseries import outbox
from cloud.timeseries.respool import HOUR_MS, respool
from tests.ingest.conftest import NOW_MS, IngestDb
from tests.ingest.servers import InfluxDB1, influxdb_v1
from tests.ingest.test_dashboard_queries import school_day

pytestmark = pytest.mark.integration
Q = 15 * 60 * 1000
SINCE_MS = NOW_MS - 9 * Q
UNTIL_MS = NOW_MS + HOUR_MS


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB1]:
    with influxdb_v1(tmp_path / "influxdb") as server:
        yield server


def devices(ingest_db: IngestDb) -> list[tuple[str, str]]:
    return [(school, device) for school in ingest_db.school_ids for device in ("inverter", "meter")]


def take_outbox(ingest_db: IngestDb) -> list[str]:
    """Every line waiting in the outbox, in order; the outbox emptied as a sender empties it."""
    taken: list[str] = []
    while lease := outbox.claim(ingest_db.engine, "test", NOW_MS, 60_000, max_lines=10**6):
        taken.extend(lease.body.decode().splitlines())
        outbox.sent(ingest_db.engine, lease, None)
    return taken


def latest_by_point(lines: list[str]) -> dict[tuple[str, str], str]:
    """Each point's last fields, by (measurement and tags, time): what InfluxDB keeps of lines written in
    turn."""
    kept = {}
    for line in lines:
        series, fields, ts = line.split(" ")
        kept[(series, ts)] = fields
    return kept


def store_school_day(ingest_db: IngestDb, timeseries: bool) -> None:
    with ingest_db.engine.begin() as connection:
        stats.register_worker(connection, "w1", "g", 0)
    ingest_db.store(timeseries=timeseries, worker_id="w1").store(school_day(ingest_db.school_ids))


def test_the_lines_spooled_again_are_those_the_ingest_spooled(ingest_db: IngestDb) -> None:
    store_school_day(ingest_db, timeseries=True)
    spooled = take_outbox(ingest_db)
    report = respool(ingest_db.engine, devices(ingest_db), SINCE_MS, UNTIL_MS, lambda: NOW_MS)
    again = take_outbox(ingest_db)
    assert report.lines == len(again)
    assert report.corrections == 1
    # Readings and corrections are spooled once each; an interval again whenever it changes while complete.
    assert latest_by_point(again) == latest_by_point(spooled)
    assert len(again) == len(latest_by_point(spooled))


def test_a_database_that_missed_everything_gets_every_point_once(
    ingest_db: IngestDb, influxdb: InfluxDB1
) -> None:
    if not ingest_db.url.startswith("sqlite"):
        pytest.skip("the lines are the same whichever database they come from (the test above)")
    store_school_day(ingest_db, timeseries=False)
    assert take_outbox(ingest_db) == []

    def counts() -> tuple[int, int, int]:
        found = []
        for query in (
            'SELECT count("frequency_hz") FROM "readings"',
            'SELECT count("pv_wh") FROM "energy_15min"',
            'SELECT count("counted_wh") FROM "counter_corrections"',
        ):
            series = influxdb.query(query)["series"]
            found.append(int(series[0]["values"][0][1]))  # type: ignore[index]
        return found[0], found[1], found[2]

    for _run in range(2):
        report = respool(ingest_db.engine, devices(ingest_db), SINCE_MS, UNTIL_MS, lambda: NOW_MS)
        influxdb.write("\n".join(take_outbox(ingest_db)).encode())
        samples = ingest_db.scalar("SELECT COUNT(*) FROM samples")
        intervals = ingest_db.scalar("SELECT COUNT(*) FROM intervals WHERE complete")
        assert counts() == (samples, intervals, 1)
        assert (report.readings, report.intervals, report.corrections) == (samples, intervals, 1)


def test_it_waits_for_the_senders_while_the_outbox_is_full(ingest_db: IngestDb) -> None:
    store_school_day(ingest_db, timeseries=False)
    sent: list[str] = []
    waits = 0

    def sender_sends() -> None:
        nonlocal waits
        waits += 1
        sent.extend(take_outbox(ingest_db))

    report = respool(
        ingest_db.engine,
        devices(ingest_db),
        SINCE_MS,
        UNTIL_MS,
        lambda: NOW_MS,
        max_waiting_lines=10,
        wait=sender_sends,
    )
    sent.extend(take_outbox(ingest_db))
    # Four hours from 07:45, data in the first three: each hour after the first waits for the lines of the one
    # before it to be sent.
    assert waits == 3
    assert len(sent) == report.lines == len(set(sent))


def run_command(
    ingest_db: IngestDb, *options: str, influx_url: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFLUX_", "LOKALNIE_", "DATABASE_URL"))}
    env |= {"DATABASE_URL": ingest_db.url, "LOKALNIE_SITES_DIR": str(ingest_db.settings.sites_dir)}
    if influx_url is not None:
        env["INFLUX_URL"] = influx_url
    return subprocess.run(
        [sys.executable, "-m", "lokalnie", "timeseries-respool", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_spools_a_period_and_refuses_bad_options_in_one_line(ingest_db: IngestDb) -> None:
    if not ingest_db.url.startswith("sqlite"):
        pytest.skip("the command's options do not depend on the database")
    store_school_day(ingest_db, timeseries=False)
    since, until = "2026-03-02T07:45:00", "2026-03-02T11:00:00+00:00"
    done = run_command(ingest_db, "--since", since, "--until", until, influx_url="http://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    samples = ingest_db.scalar("SELECT COUNT(*) FROM samples")
    assert f"Spooled {samples} readings" in done.stdout
    assert len(take_outbox(ingest_db)) > int(samples)  # type: ignore[call-overload]
    for options, influx_url, reason in [
        (["--since", since], None, "INFLUX_URL is not set"),
        (["--since", "wczoraj"], "http://127.0.0.1:9", "--since 'wczoraj' is not a date"),
        (["--since", until, "--until", since], "http://127.0.0.1:9", "is not before --until"),
    ]:
        refused = run_command(ingest_db, *options, influx_url=influx_url)
        assert refused.returncode == 2, refused.stderr
        assert reason in refused.stderr
        assert "Traceback" not in refused.stderr
    assert take_outbox(ingest_db) == []
