"""Servers the ingest's tests stop and start again on purpose: a PostgreSQL cluster, a Mosquitto with
persistence and a VictoriaMetrics, each keeping its data directory and port across restarts; the ingest and
the time-series sender as real processes; and a publisher that, like an edge agent's outbox, sends every
message until the broker has acknowledged it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from common.broker import parse_broker_url
from common.mqtt import connect_properties, make_client
from lokalnie.ports import free_port
from tests import servers

RUNNER = "import sys, typer; from cloud import cli; typer.run(getattr(cli, sys.argv.pop(1)))"


class RestartablePostgres:
    """A PostgreSQL cluster on a fixed loopback port that can be stopped (a database outage) and started
    again with its data; user, password and database ``lokalnie``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.directory = Path(tempfile.mkdtemp(prefix="lokalnie-pg-ingest-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            self._prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.directory, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://lokalnie:lokalnie@127.0.0.1:{self.port}/lokalnie"

    def create(self) -> None:
        servers.init_cluster(self.data, self._prefix)
        self.start()
        servers._create_database(self.port)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.process = servers.start(
            [
                *self._prefix,
                servers.require("postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.directory),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            self.log_dir / "postgres.log",
        )
        servers.wait_for_postgres(self.port, self.process)

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when the server goes away."""
        if self.process is not None:
            servers.stop_postgres(self.process)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def persistent_mosquitto_config(port: int, directory: Path) -> str:
    """The test broker's configuration with persistence on: sessions and queued messages survive a
    restart (saved when the broker stops, and every second)."""
    plain = servers.mosquitto_config(port, directory)
    return plain.replace(
        "persistence false\n",
        f"persistence true\npersistence_location {directory}/\nautosave_interval 1\n",
    )


class TimeSeriesServer:
    """A time-series database of the tests, in its own directory, on a loopback HTTP port (``url``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """A clean stop (SIGTERM): the server writes out what it has accepted."""
        if self.process is not None:
            servers.stop_process(self.process, timeout_s=30)
            self.process = None


Server = TypeVar("Server", bound=TimeSeriesServer)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class VictoriaMetrics(TimeSeriesServer):
    """VictoriaMetrics (the Debian package) on a loopback port, keeping its data across restarts; written to
    through the InfluxDB 2.x write API, read back raw through ``/api/v1/export``."""

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = servers.start(
            [
                servers.require("victoria-metrics"),
                f"-storageDataPath={self.directory / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                "-loggerLevel=WARN",
            ],
            self.directory / "victoria-metrics.log",
        )
        servers.wait_for_port(self.port, process=self.process)

    def export(self, metric_pattern: str) -> list[dict[str, object]]:
        """Every raw sample of the metrics matching the regular expression, as VictoriaMetrics' export lines
        (``metric``, ``values``, ``timestamps``), without deduplication."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=30).raise_for_status()
        response = httpx.post(
            f"{self.url}/api/v1/export",
            data={"match[]": f'{{__name__=~"{metric_pattern}"}}', "reduce_mem_usage": "1"},
            timeout=60,
        )
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]


class InfluxDB1(TimeSeriesServer):
    """InfluxDB 1.x (Debian's ``influxdb`` package) on loopback ports: the InfluxQL engine the energy
    officer's dashboards query (InfluxDB 2.x answers the same InfluxQL through its v1 mapping), written to
    through the v1 write API."""

    DATABASE = "lokalnie"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "influxdb.conf"
        config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\ndir = "{self.directory / "meta"}"\n'
            f'[data]\ndir = "{self.directory / "data"}"\nwal-dir = "{self.directory / "wal"}"\n'
            "query-log-enabled = false\n"
            f'[http]\nbind-address = "127.0.0.1:{self.port}"\nlog-enabled = false\n'
            "[monitor]\nstore-enabled = false\n"
        )
        self.process = servers.start(
            [servers.require("influxd"), "run", "-config", str(config)], self.directory / "influxd.log"
        )
        servers.wait_for_port(self.port, process=self.process)
        self.query(f"CREATE DATABASE {self.DATABASE}")

    def write(self, body: bytes) -> None:
        """Line protocol with millisecond timestamps, as the sink writes it."""
        response = httpx.post(
            f"{self.url}/write", params={"db": self.DATABASE, "precision": "ms"}, content=body, timeout=60
        )
        response.raise_for_status()

    def query(self, influxql: str) -> dict[str, object]:
        """The one statement's result (``series``, or ``error``), with times in milliseconds."""
        response = httpx.post(
            f"{self.url}/query",
            data={"q": influxql, "db": self.DATABASE, "epoch": "ms"},
            timeout=60,
        )
        if response.status_code == 400:  # a statement it cannot parse: {"error": ...}
            return dict(response.json())
        response.raise_for_status()
        (result,) = response.json()["results"]
        return dict(result)


def raw_points(
    vm: VictoriaMetrics, metric_pattern: str
) -> dict[tuple[str, tuple[tuple[str, str], ...], int], list[float]]:
    """Every raw sample by (metric name, other labels, timestamp): the values stored there, one per write."""
    points: dict[tuple[str, tuple[tuple[str, str], ...], int], list[float]] = {}
    for line in vm.export(metric_pattern):
        metric = dict(line["metric"])  # type: ignore[call-overload]
        name = str(metric.pop("__name__"))
        labels = tuple(sorted((str(k), str(v)) for k, v in metric.items()))
        for ts, value in zip(line["timestamps"], line["values"], strict=True):  # type: ignore[call-overload]
            points.setdefault((name, labels, int(ts)), []).append(float(value))
    return points


def victoria_metrics(directory: Path) -> contextlib.AbstractContextManager[VictoriaMetrics]:
    return running(VictoriaMetrics(directory))


def influxdb_v1(directory: Path) -> contextlib.AbstractContextManager[InfluxDB1]:
    return running(InfluxDB1(directory))


def ingest_process(
    log: Path,
    *,
    database_url: str,
    mqtt_url: str,
    sites_dir: Path,
    group: str,
    client_id: str,
    influx_url: str | None = None,
    sender: bool = False,
    command: str = "ingest_command",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`lokalnie ingest` (or another command of `cloud.cli`) as a process in its own group, on real time."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("INFLUX_", "LOKALNIE_", "DATABASE_URL", "MQTT_URL"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "MQTT_URL": mqtt_url,
            "LOKALNIE_SITES_DIR": str(sites_dir),
            "LOKALNIE_INGEST_GROUP": group,
            "LOKALNIE_INGEST_CLIENT_ID": client_id,
            "LOKALNIE_INGEST_SESSION_EXPIRY_S": "600",
            "LOKALNIE_TIMESERIES_SENDER": "true" if sender else "false",
            "LOKALNIE_LOG_LEVEL": "INFO",
            **({"INFLUX_URL": influx_url} if influx_url else {}),
            **(extra_env or {}),
        }
    )
    return servers.start([sys.executable, "-c", RUNNER, command], log, env=env)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process: no goodbye, no clean-up, no flush."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


@dataclass
class Published:
    topic: str
    payload: bytes


class Publisher:
    """Publishes at QoS 1 with a persistent session, at a steady rate, from its own thread; `finish` then
    sends again every message the broker has not taken for a subscriber (as an edge agent's outbox should:
    no acknowledgement, a refusal, or "No matching subscribers") until all are, so every message reaches a
    subscriber's session at least once whatever happens to the broker meanwhile."""

    def __init__(
        self, broker_url: str, client_id: str, messages: Sequence[Published], rate_per_s: float
    ) -> None:
        self.messages = list(messages)
        self.rate_per_s = rate_per_s
        address = parse_broker_url(broker_url)
        self._client = make_client(address, client_id)
        self._client.max_inflight_messages_set(100)
        self._client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self._client.on_connect = lambda *_args: self._connected.set()
        # The reason code of the broker's PUBACK for each packet id (paho numbers its publishes 1, 2, ...).
        self._outcomes: dict[int, int] = {}
        self._client.on_publish = self._on_publish
        self._client.connect_async(
            address.host, address.port, clean_start=False, properties=connect_properties(600)
        )
        self._client.loop_start()
        self._infos: list[object] = []
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.sent = 0
        self.done = threading.Event()

    def _on_publish(
        self, _client: object, _userdata: object, mid: int, reason: object, _props: object
    ) -> None:
        # Called before paho marks the message published.
        self._outcomes[mid] = int(getattr(reason, "value", 0))

    def delivered(self, info: object) -> bool:
        """Whether the broker took a message for a subscriber: acknowledged with success. MQTT 5's "No
        matching subscribers" (0x10) means it went nowhere (after a broker restart Mosquitto 2.0 has lost
        the ingest's shared subscriptions until the workers subscribe again): an edge keeps such a message
        and sends it again."""
        return _acknowledged(info) and self._outcomes.get(info.mid) == 0  # type: ignore[attr-defined]

    def start(self) -> None:
        if not self._connected.wait(15):
            raise TimeoutError("the publisher could not connect to the broker")
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        for index, message in enumerate(self.messages):
            due = began + index / self.rate_per_s
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._infos.append(self._client.publish(message.topic, message.payload, qos=1))
            self.sent = index + 1
        self.done.set()

    def finish(self, timeout_s: float = 60.0) -> int:
        """Wait until every message was published and acknowledged, sending again those that were not;
        how many were sent again."""
        if not self.done.wait(timeout_s):
            raise TimeoutError("the publisher did not get through its messages")
        deadline = time.monotonic() + timeout_s
        again = 0
        while True:
            missing = [index for index, info in enumerate(self._infos) if not self.delivered(info)]
            if not missing:
                return again
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(missing)} messages were never acknowledged")
            if not self._client.is_connected():
                time.sleep(0.2)
                continue
            time.sleep(2.0)
            for index in missing:
                if not self.delivered(self._infos[index]):
                    message = self.messages[index]
                    self._infos[index] = self._client.publish(message.topic, message.payload, qos=1)
                    again += 1

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _acknowledged(info: object) -> bool:
    """Whether the broker acknowledged a message; False also when paho could not even send it."""
    try:
        return bool(info.is_published())  # type: ignore[attr-defined]
    except (RuntimeError, ValueError):
        return False
