"""The alerts the city's IT gets by mail, run for real: the API's ``/metrics`` over a database with a silent
device, an offline school and a dead ingest worker; Debian's VictoriaMetrics scraping it with
deploy/monitoring/scrape.yaml and a monitoring API key made with ``lokalnie users create-key``, as
deploy/README.md says; Debian's vmalert evaluating deploy/monitoring/alerts.yaml; and Debian's Alertmanager
with the configuration compose writes from `.env`, which must end up holding exactly the alerts expected.

Only what a test cannot wait for is changed: the scrape and evaluation intervals (seconds instead of
minutes), every rule's ``for`` (0 s), and the addresses (loopback ports and the test's files).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from cloud.db.engine import make_engine
from cloud.ingest import stats
from cloud.ingest.store import Message, StoreOptions, TelemetryStore
from common.wire import (
    Channel,
    HealthEvent,
    LinkState,
    Severity,
    Status,
    encode,
    school_topic,
)
from lokalnie.ports import free_port
from tests import servers
from tests.cloud.conftest import meter_sample, pv_sample
from tests.conftest import SITES_DIR
from tests.deploy.test_config import DEPLOY, compose, env_example, resolve
from tests.ingest.conftest import SettableClock, telemetry
from tests.ingest.test_dashboards import platform_queries

MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "alerts.yaml"
SCRAPE = MONITORING / "scrape.yaml"
# Schools of the repository's register (firmware-config/sites), each with an inverter and a meter.
SPEAKING, SILENT = "sp5", "sp1"
TIMEOUT_S = 90.0


def wait_for(
    what: str, check: Callable[[], Any], log: Path | None = None, timeout_s: float = TIMEOUT_S
) -> Any:
    """Poll ``check`` until it returns something true (transport errors count as not yet); that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except httpx.TransportError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"{what} did not happen within {timeout_s} s\n{tail}")
        time.sleep(0.5)


def test_the_rules_load_and_each_tells_a_person_in_polish_what_to_do() -> None:
    checked = subprocess.run(
        [servers.require("vmalert"), f"-rule={RULES}", "-dryRun"], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert len(rules) >= 7
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        summary, description = rule["annotations"]["summary"], rule["annotations"]["description"]
        assert summary and description, rule["alert"]
        assert any(letter in summary + description for letter in "ąćęłńóśźż"), f"{rule['alert']}: not Polish"


def alertmanager_config(values: dict[str, str]) -> str:
    return resolve(compose()["configs"]["alertmanager"]["content"], values)


def test_the_alertmanager_configuration_compose_writes_from_env_is_valid(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_config(env_example()))
    checked = subprocess.run(
        [servers.require("amtool"), "check-config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "receivers" in checked.stdout


def condition(
    school: str, seq: int, device: str | None, code: str, severity: Severity, now_ms: int
) -> Message:
    event = HealthEvent(
        school=school,
        stream="e0e0e0e0",
        seq=seq,
        device=device,
        code=code,
        severity=severity,
        active=True,
        ts_ms=now_ms - 3_600_000,
        message_pl="opis dla woźnego",
    )
    return Message(school_topic(school, Channel.EVENTS), encode(event), now_ms)


def fill(engine: Engine, now_ms: int, worker: str) -> None:
    """sp5's devices spoke a minute ago, sp1's two hours ago, the other schools' never; sp5 online, sp1
    offline; sp5's agent reports its outbox dropping readings (critical), its inverter asleep (a note), its
    client certificate expiring within a month, its clock not synchronised and its card short of room
    (warnings of their own); an ingest worker last seen an hour ago, which saw the broker's certificate
    expiring in 10 days (``worker`` "dead"), or none ever ("never")."""
    store = TelemetryStore(engine, SettableClock(now_ms), None, StoreOptions())
    for school, age_ms in ((SPEAKING, 60_000), (SILENT, 7_200_000)):
        polled_ms = now_ms - age_ms
        polls = [pv_sample(1, polled_ms, 1000.0), meter_sample(2, polled_ms, 5000.0, 100.0)]
        state = LinkState.ONLINE if school == SPEAKING else LinkState.OFFLINE
        status = Status(school=school, state=state, since_ms=now_ms - 7_200_000)
        store.store(
            [
                telemetry(school, polls),
                Message(school_topic(school, Channel.STATUS), encode(status), now_ms),
            ]
        )
    store.store(
        [
            condition(SPEAKING, 1, None, "outbox_dropped", Severity.CRITICAL, now_ms),
            condition(SPEAKING, 2, "inverter", "device_unreachable", Severity.INFO, now_ms),
            condition(SPEAKING, 3, None, "client_certificate_expiring", Severity.WARNING, now_ms),
            condition(SPEAKING, 4, None, "clock_unsynchronized", Severity.WARNING, now_ms),
            condition(SPEAKING, 5, None, "storage_low", Severity.WARNING, now_ms),
        ]
    )
    if worker == "dead":
        with engine.begin() as connection:
            stats.register_worker(connection, "ingest-1", "ingest", now_ms - 3_600_000)
            stats.record_broker_certificate(connection, "ingest-1", now_ms + 10 * 86_400_000)


def inverters_watched() -> bool:
    """Whether an inverter's silence counts now (alerts.yaml: 10:00 to 13:00 UTC)."""
    return 10 <= time.gmtime().tm_hour < 13


def with_test_timing(rules: dict[str, Any]) -> dict[str, Any]:
    for group in rules["groups"]:
        group["interval"] = "2s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    return rules


def scrape_config(api_port: int, key_file: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(SCRAPE.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "lokalnie-api" and job["static_configs"] == [{"targets": ["api:8000"]}]
    assert job["bearer_token_file"] == "/run/lokalnie/monitoring/api-key"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{api_port}"]}]
    job["bearer_token_file"] = str(key_file)
    return config


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            servers.stop_process(process)


@pytest.mark.parametrize("worker", ["dead", "never"])
def test_a_silent_device_an_offline_school_and_a_dead_ingest_are_mailed_and_nothing_else(
    worker: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'api.db'}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "LOKALNIE_SITES_DIR": str(SITES_DIR),
    }
    api_port, vm_port, vmalert_port, am_port = (free_port() for _ in range(4))
    api_log = tmp_path / "api.log"
    processes.append(
        servers.start(
            [sys.executable, "-m", "lokalnie", "api", "--host", "127.0.0.1", "--port", str(api_port)],
            api_log,
            env,
        )
    )
    wait_for("the API's start", lambda: httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=2), api_log)

    # deploy/README.md, "Alerts by mail": the key VictoriaMetrics signs in with.
    made = subprocess.run(
        [sys.executable, "-m", "lokalnie", "users", "create-key", "monitoring", "--role", "monitoring"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    key_file = tmp_path / "monitoring" / "api-key"
    key_file.parent.mkdir()
    key_file.write_text(made.stdout)
    engine = make_engine(database_url)
    try:
        fill(engine, time.time_ns() // 1_000_000, worker)
    finally:
        engine.dispose()

    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(alertmanager_config(env_example()))
    processes.append(
        servers.start(
            [
                servers.require("prometheus-alertmanager"),
                f"--config.file={am_config}",
                f"--storage.path={tmp_path / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
        )
    )
    scrape = tmp_path / "scrape.yaml"
    scrape.write_text(yaml.safe_dump(scrape_config(api_port, key_file)))
    processes.append(
        servers.start(
            [
                servers.require("victoria-metrics"),
                f"-storageDataPath={tmp_path / 'vm'}",
                f"-httpListenAddr=127.0.0.1:{vm_port}",
                f"-promscrape.config={scrape}",
                "-search.latencyOffset=0s",
            ],
            tmp_path / "victoria-metrics.log",
        )
    )
    rules = tmp_path / "alerts.yaml"
    rules.write_text(yaml.safe_dump(with_test_timing(yaml.safe_load(RULES.read_text())), allow_unicode=True))
    processes.append(
        servers.start(
            [
                servers.require("vmalert"),
                f"-rule={rules}",
                f"-datasource.url=http://127.0.0.1:{vm_port}",
                f"-notifier.url=http://127.0.0.1:{am_port}",
                f"-httpListenAddr=127.0.0.1:{vmalert_port}",
                "-evaluationInterval=2s",
            ],
            tmp_path / "vmalert.log",
        )
    )

    def firing() -> set[tuple[str, ...]]:
        answer = httpx.get(f"http://127.0.0.1:{am_port}/api/v2/alerts", timeout=5)
        answer.raise_for_status()
        return {
            (
                alert["labels"]["alertname"],
                alert["labels"].get("school", ""),
                alert["labels"].get("device", ""),
            )
            for alert in answer.json()
        }

    watched = inverters_watched()
    expected = {
        ("LokalnieIngestDown", "", ""),
        ("LokalnieDeviceSilent", SILENT, "meter"),
        ("LokalnieSchoolOffline", SILENT, ""),
        ("LokalnieSchoolCondition", SPEAKING, ""),
        ("LokalnieSchoolCertificateExpiring", SPEAKING, ""),
        ("LokalnieSchoolClockUnsynchronized", SPEAKING, ""),
        ("LokalnieSchoolStorageLow", SPEAKING, ""),
    } | ({("LokalnieDeviceSilent", SILENT, "inverter")} if watched else set())
    if worker == "dead":
        expected |= {("LokalnieBrokerCertificateExpiring", "", ""), ("LokalnieIngestWorkerDown", "", "")}
    wait_for("the expected alerts", lambda: firing() >= expected, tmp_path / "vmalert.log")
    # A few more evaluations: nothing else may join them (the API is scraped, sp5 spoke a minute ago).
    time.sleep(6)
    if inverters_watched() == watched:  # else the hour turned meanwhile, and the inverter's alert with it
        assert firing() == expected
    scraped = httpx.get(f"http://127.0.0.1:{vm_port}/api/v1/query", params={"query": "up"}, timeout=5).json()
    assert [series["value"][1] for series in scraped["data"]["result"]] == ["1"], "scraped with the key"
    assert "Traceback" not in api_log.read_text()

    # The energy officer's "Platforma" dashboard reads the same VictoriaMetrics: every query runs.
    for title, expr in platform_queries().items():
        answer = httpx.get(f"http://127.0.0.1:{vm_port}/api/v1/query", params={"query": expr}, timeout=5)
        assert answer.status_code == 200 and answer.json()["status"] == "success", f"{title}: {answer.text}"
        result = answer.json()["data"]["result"]
        # Two schools spoke: four devices with an age, two links with a state; five conditions raised.
        series = {
            "lokalnie_device_sample_age_seconds": 4,
            "lokalnie_school_link_up": 2,
            "lokalnie_school_condition_active == 1": 5,
        }
        if expr in series:
            assert len(result) == series[expr], f"{title}: {result}"
