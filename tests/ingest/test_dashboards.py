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

from cloud.ingest.metrics import IngestFigures, prometheus_text
from cloud.timeseries import lines as tsl
from cloud.timeseries.outbox import Depth

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "deploy" / "grafana" / "dashboards"
# The platform's own state, from the API's /metrics through VictoriaMetrics (tests/deploy/test_alerts.py
# runs its queries); every other dashboard is the energy officer's, on InfluxDB.
PLATFORM_DASHBOARD = DASHBOARD_DIR / "platform.json"
DASHBOARDS = sorted(path for path in DASHBOARD_DIR.glob("*.json") if path != PLATFORM_DASHBOARD)
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources"


def provisioned_uid(source_type: str) -> str:
    """The uid Grafana gives the data source of ``source_type`` it provisions: a dashboard names its data
    source by this uid, and Grafana finds no data source for a panel that names another."""
    (source,) = [
        source
        for path in sorted(DATASOURCES.glob("*.yaml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
        if source["type"] == source_type
    ]
    uid = source["uid"]
    assert isinstance(uid, str)
    return uid


DATASOURCE_UID = provisioned_uid("influxdb")
# No worker, device or link: every metric family /metrics serves is still declared.
EMPTY_FIGURES = IngestFigures(
    workers=[],
    spool=Depth(0, 0, None),
    devices=[],
    links_online={},
    conditions=[],
    now_ms=0,
    real_now_ms=0,
)


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
    uids = [json.loads(path.read_text())["uid"] for path in [*DASHBOARDS, PLATFORM_DASHBOARD]]
    assert len(uids) >= 3 and len(set(uids)) == len(uids)


def platform_queries() -> dict[str, str]:
    """The platform dashboard's PromQL by panel title; each panel names the provisioned VictoriaMetrics."""
    dashboard = json.loads(PLATFORM_DASHBOARD.read_text())
    source = {"type": "prometheus", "uid": provisioned_uid("prometheus")}
    found = {}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == source, panel["title"]
        (target,) = panel["targets"]
        assert target["datasource"] == source, panel["title"]
        found[panel["title"]] = target["expr"]
    return found


def test_the_platform_dashboard_reads_the_metrics_the_api_serves() -> None:
    served = set(re.findall(r"^# TYPE (lokalnie_[a-z_]+) ", prometheus_text(EMPTY_FIGURES), re.MULTILINE))
    for title, expr in platform_queries().items():
        names = set(re.findall(r"\b(lokalnie_[a-z_]+)", expr))
        assert names, title
        for name in names:
            assert re.sub(r"_(bucket|sum|count)$", "", name) in served, f"{title}: {name}"


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
