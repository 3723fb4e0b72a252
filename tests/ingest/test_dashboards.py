"""The energy officer's Grafana dashboards (deploy/grafana/dashboards) against the time-series schema they
read: every panel on the InfluxDB data source, every query over a measurement the sink writes, with fields
and tags it writes there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.timeseries import lines as tsl

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources"


def _provisioned_influxdb_uid() -> str:
    """The uid Grafana gives the InfluxDB data source it provisions: a dashboard names its data source by
    this uid, and Grafana shows "data source not found" on every panel that names another."""
    (source,) = [
        source
        for path in sorted(DATASOURCES.glob("*.yaml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
        if source["type"] == "influxdb"
    ]
    uid = source["uid"]
    assert isinstance(uid, str)
    return uid


DATASOURCE_UID = _provisioned_influxdb_uid()


def _published_quantities() -> set[str]:
    """Every reading a device profile publishes: the fields of ``readings``."""
    names: set[str] = set()
    for path in (REPO / "firmware-config" / "profiles").glob("*.yaml"):
        for item in yaml.safe_load(path.read_text()).get("fields", []):
            if item.get("publish", True):
                names.add(item["name"])
    return names


def _fields_of(line: str) -> set[str]:
    return {pair.split("=", 1)[0] for pair in line.split(" ")[1].split(",")}


def _tags_of(line: str) -> set[str]:
    return {pair.split("=", 1)[0] for pair in line.split(" ")[0].split(",")[1:]}


def schema() -> dict[str, tuple[set[str], set[str]]]:
    """(fields, tags) of each measurement, from lines the sink itself makes."""
    reading = tsl.reading_line("sp5", "inverter", "pv_inverter", 0, {"power_w": 1.0})
    interval = tsl.interval_line(
        "sp5", 0, {"pv_wh": 0, "import_wh": 0, "export_wh": 0, "consumption_wh": 0, "complete": True}
    )
    correction = tsl.correction_line("sp5", "inverter", "pv_inverter", "energy_wh", "reset", 0, 1.0, 0.0, 0.0)
    assert reading is not None
    return {
        tsl.READINGS: (_published_quantities(), _tags_of(reading)),
        tsl.ENERGY_15MIN: (_fields_of(interval), _tags_of(interval)),
        tsl.COUNTER_CORRECTIONS: (_fields_of(correction), _tags_of(correction)),
    }


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [target["query"] for panel in dashboard["panels"] for target in panel["targets"]]
    found.extend(
        variable["query"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"
    )
    return found


def test_there_are_dashboards_with_unique_uids() -> None:
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert len(uids) >= 2 and len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_queries_the_influxdb_data_source_with_influxql(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["rawQuery"] is True and target["query"].startswith(("SELECT ", "SHOW "))
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == DATASOURCE_UID


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_reads_fields_and_tags_the_sink_writes(path: Path) -> None:
    known = schema()
    for query in queries(json.loads(path.read_text())):
        measurements = re.findall(r'FROM "([a-z0-9_]+)"', query)
        assert len(measurements) == 1, query
        fields, tags = known[measurements[0]]
        select = re.sub(r' AS "[^"]*"', "", query.split(" FROM ", 1)[0])
        for name in re.findall(r'"([a-z0-9_]+)"', select):
            assert name in fields, f"field {name} in {query}"
        rest = query.split(" FROM ", 1)[1]
        for name in re.findall(r'"([a-z_]+)" (?:=|=~|!=)', rest) + re.findall(r"GROUP BY [^;]*", rest):
            for tag in re.findall(r'"([a-z_]+)"', name) if name.startswith("GROUP BY") else [name]:
                assert tag in tags, f"tag {tag} in {query}"
        if query.startswith("SHOW TAG VALUES"):
            key = re.search(r'WITH KEY = "([a-z_]+)"', query)
            assert key and key.group(1) in tags
