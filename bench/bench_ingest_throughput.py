"""Readings per second from MQTT to committed storage, with one ingest worker and with two, against the
broker's own ceiling on the same messages; and the end-to-end lag at the 99th percentile at a fixed rate.

A fleet of schools (each an inverter and a grid meter, 13 readings per sample, 26 per message: one poll of a
school's two devices, as its edge agent sends it live) publishes through a real Mosquitto from two publisher
processes (paho, QoS 1). Everything runs on this machine: publishers, broker, ingest, database.

* Ceiling: the publishers send the whole stream as fast as they can; ``mosquitto_sub -q 1`` on the ingest's
  shared subscription takes it. Readings delivered per second, first publish to last delivery.
* Receiving alone: the same publishers, the same stream, taken by a consumer that receives and acknowledges
  as a worker does and stores nothing (``bench.receive_only``): the part of the gap to the ceiling that is
  not the store's.
* Throughput: the same publishers, the same stream, as fast as they can, with ``lokalnie ingest`` (one
  process, then two in one group) instead of mosquitto_sub. Readings committed per second, first publish to
  the last commit (read from the workers' counters, committed with the data); then every sample is counted
  in the database: nothing lost, nothing doubled.
* CPU time per message of each part of an ingest run, from the start to the last commit: the ingest
  processes, the broker and the database's server processes (PostgreSQL) from ``/proc``, the publishers
  from their own clocks. Printed per round and kept in the results: the ingest's own cost holds within a
  few per cent while the machine's speed and the broker's ceiling drift.
* Ceiling and throughput are measured in rounds (ceiling, one worker, two workers, ceiling again, one after
  the other; BENCH_INGEST_ROUNDS, 3 by default) because this shared machine's speed drifts by a fifth over
  minutes: a round's ceiling is the mean of its two, the figures are the medians of the rounds, and every
  round's ceilings and ratios are kept in the result.
* Lag: the publishers send at a fixed rate (BENCH_INGEST_READINGS_PER_S, 20,000 readings/s by default: one
  message per school every 10 s) for BENCH_INGEST_SECONDS, each sample timed when it is sent; lag = commit
  time minus sample time, p99 from the worker's lag histogram (linear within its bucket). Baseline:
  mosquitto_sub's receive time minus sample time at the same rate.

The stream is time-compressed for the throughput runs (each school's polls sent back to back, its samples
10 s apart), real-time for the lag run. Results: bench/results/ingest_*.json.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

import sqlalchemy as sa

from bench.report import report
from cloud.db.engine import make_engine
from cloud.db.register import prepare_database
from cloud.ingest.stats import LagHistogram
from cloud.settings import Settings
from tests import servers
from tests.cloud.conftest import write_sites
from tests.ingest import load

READINGS_PER_S = float(os.environ.get("BENCH_INGEST_READINGS_PER_S", "20000"))
FIXED_RATE_S = float(os.environ.get("BENCH_INGEST_SECONDS", "60"))
THROUGHPUT_MESSAGES = int(os.environ.get("BENCH_INGEST_MESSAGES", "60000"))
# postgresql, sqlite, and postgresql_durable: a server that waits for the disk at each commit (production).
DATABASES = [
    name for name in os.environ.get("BENCH_INGEST_DATABASES", "postgresql,sqlite").split(",") if name
]
PUBLISHERS = 2
POLL_MS = 10_000
GROUP = "bench"
FILTER = f"$share/{GROUP}/lokalnie/v1/+/telemetry"
# Rounds of (broker ceiling, one worker, two workers) per database; the figures are their medians.
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "3"))
# Seconds the publishers get to prepare their messages before a real-time stream starts.
LEAD_S = 20.0


@dataclass(frozen=True)
class Plan:
    """What the fleet sends: each school's polls from ``start_ms`` (each school a share of the period later
    in real time); ``realtime`` False sends everything at once."""

    school_ids: list[str]
    polls: int
    start_ms: int
    realtime: bool

    @property
    def messages(self) -> int:
        return len(self.school_ids) * self.polls

    @property
    def readings(self) -> int:
        return self.messages * load.READINGS_PER_POLL

    def school_start_ms(self, index: int) -> int:
        return self.start_ms + (index * POLL_MS // len(self.school_ids) if self.realtime else 0)

    @property
    def last_sample_ms(self) -> int:
        return self.school_start_ms(len(self.school_ids) - 1) + (self.polls - 1) * POLL_MS


def _messages(plan: Plan, share: int, shares: int) -> list[tuple[int, str, bytes]]:
    """(sample time, topic, payload) of this publisher's share of the schools, in sending order."""
    out = []
    for index in range(share, len(plan.school_ids), shares):
        school = load.SchoolStream(
            plan.school_ids[index], "b0b0b0b0", plan.school_start_ms(index), POLL_MS, index
        )
        for poll in range(plan.polls):
            batch = school.batch(poll)
            out.append((batch.samples[0].ts_ms, school.topic, batch.model_dump_json().encode()))
    out.sort(key=lambda item: item[0])
    return out


def _publish(port: int, plan: Plan, share: int, ready: Event, go: Event, cpu_s: Synchronized[float]) -> None:
    """One publisher process: prepare its messages, wait for the start, send them (on time in a real-time
    plan), wait for every PUBACK; the CPU time that took in ``cpu_s``."""
    from common.broker import parse_broker_url
    from common.mqtt import make_client

    messages = _messages(plan, share, PUBLISHERS)
    client = make_client(parse_broker_url(f"mqtt://127.0.0.1:{port}"), f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.set()
    go.wait()
    started_cpu_s = time.process_time()
    infos = []
    for due_ms, topic, payload in messages:
        if plan.realtime:
            delay_s = due_ms / 1000.0 - time.time()
            if delay_s > 0:
                time.sleep(delay_s)
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(300)
    cpu_s.value = time.process_time() - started_cpu_s
    client.disconnect()
    client.loop_stop()


@dataclass(frozen=True)
class Fleet:
    """The publisher processes: ``go`` starts them; ``cpu_s`` holds the CPU time each spent sending, once
    they have finished."""

    go: Event
    cpu_s: list[Synchronized[float]]


@contextmanager
def publishers(port: int, plan: Plan) -> Iterator[Fleet]:
    """Publisher processes with their messages ready; set the fleet's ``go`` to start them."""
    context = multiprocessing.get_context("fork")
    go = context.Event()
    readies = [context.Event() for _ in range(PUBLISHERS)]
    cpu_s = [context.Value("d", 0.0) for _ in range(PUBLISHERS)]
    processes = [
        context.Process(target=_publish, args=(port, plan, share, readies[share], go, cpu_s[share]))
        for share in range(PUBLISHERS)
    ]
    for process in processes:
        process.start()
    try:
        for ready in readies:
            if not ready.wait(600):
                raise TimeoutError("a publisher did not get ready")
        yield Fleet(go, cpu_s)
    finally:
        go.set()
        for process in processes:
            process.join(600)
            if process.is_alive():
                process.kill()


def broker_ceiling(work: Path, make_plan: Callable[[], Plan]) -> tuple[Plan, float, list[float]]:
    """mosquitto_sub taking the stream: (the plan, seconds from the first publish to the last delivery, each
    message's receive time minus its sample time [s])."""
    plan = make_plan()
    with servers.mosquitto(work / f"broker-{uuid.uuid4().hex[:6]}") as broker:
        out = work / "mosquitto_sub.txt"
        with out.open("wb") as sink:
            receiver = subprocess.Popen(
                [
                    servers.require("mosquitto_sub"),
                    "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                    "-t", FILTER, "-C", str(plan.messages), "-F", "%U %t",
                ],
                stdout=sink,
            )  # fmt: skip
        try:
            time.sleep(1.0)
            with publishers(broker.port, plan) as fleet:
                began = time.time()
                fleet.go.set()
                receiver.wait(1800)
            publishers_us = sum(value.value for value in fleet.cpu_s) / plan.messages * 1e6
            # The same publishers load the ingest runs: what they cost here tells their share there.
            print(f"  broker's ceiling: publishers' CPU {publishers_us:.0f} µs a message")
        finally:
            if receiver.poll() is None:
                receiver.kill()
        lines = out.read_text().splitlines()
    if len(lines) != plan.messages:
        raise RuntimeError(f"mosquitto_sub got {len(lines)} of {plan.messages} messages")
    return plan, max(float(line.split(" ", 1)[0]) for line in lines) - began, _lags(plan, lines)


def _lags(plan: Plan, lines: list[str]) -> list[float]:
    """Receive time minus sample time of each message, matching each topic's messages in order."""
    index_of = {school_id: index for index, school_id in enumerate(plan.school_ids)}
    seen: dict[str, int] = {}
    lags = []
    for line in lines:
        stamp, topic = line.split(" ", 1)
        school_id = topic.split("/")[2]
        poll = seen.get(school_id, 0)
        seen[school_id] = poll + 1
        lags.append(float(stamp) - (plan.school_start_ms(index_of[school_id]) + poll * POLL_MS) / 1000.0)
    return lags


def receive_only(work: Path, make_plan: Callable[[], Plan]) -> float:
    """The stream taken by a consumer that receives and acknowledges as an ingest worker does and stores
    nothing (`bench.receive_only`): readings/s, first publish to the last acknowledgement. What the ingest
    runs lose against it is the store's (and the database's) share, not receiving's."""
    plan = make_plan()
    with servers.mosquitto(work / f"broker-{uuid.uuid4().hex[:6]}") as broker:
        log = work / f"receive-only-{uuid.uuid4().hex[:6]}.log"
        env = {**os.environ, "LOKALNIE_INGEST_GROUP": GROUP}
        command = [sys.executable, "-m", "bench.receive_only", str(broker.port), str(plan.messages)]
        consumer = servers.start(command, log, env)
        try:
            servers.wait_for_log(log, "subscribed", timeout_s=60, process=consumer)
            with publishers(broker.port, plan) as fleet:
                began = time.time()
                fleet.go.set()
                if consumer.wait(1800) != 0:
                    raise RuntimeError(f"the receive-only consumer failed; see {log}")
        finally:
            servers.stop_process(consumer)
        done = [line for line in log.read_text().splitlines() if line.startswith("done ")]
    return plan.readings / (float(done[-1].split()[1]) - began)


def new_database(kind: str, work: Path, postgres: servers.Postgres | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{work / f'bench-{uuid.uuid4().hex[:8]}.db'}"
    if postgres is None:
        raise ValueError("no PostgreSQL server")
    return postgres.new_database("bench")


@dataclass
class IngestRun:
    plan: Plan
    seconds: float
    readings: int
    histogram: LagHistogram
    # Real time of the last commit minus the last sample's time.
    behind_last_sample_s: float
    # CPU time per message [µs] of the ingest processes, the broker, the database's server processes and
    # the publishers, from the start to the last commit.
    cpu_us_per_message: dict[str, float]


def ingest_run(
    work: Path, make_plan: Callable[[], Plan], database_url: str, sites_dir: Path, workers: int
) -> IngestRun:
    """The stream through ``workers`` ingest processes into ``database_url``; every sample counted after."""
    prepare_database(Settings(database_url=database_url, sites_dir=sites_dir))
    engine = make_engine(database_url)
    tag = uuid.uuid4().hex[:6]
    processes = []
    with servers.mosquitto(work / f"broker-{tag}") as broker:
        try:
            for number in range(1, workers + 1):
                log = work / f"ingest-{tag}-{number}.log"
                env = {
                    **os.environ,
                    "DATABASE_URL": database_url,
                    "MQTT_URL": broker.url,
                    "LOKALNIE_SITES_DIR": str(sites_dir),
                    "LOKALNIE_INGEST_GROUP": GROUP,
                    "LOKALNIE_INGEST_CLIENT_ID": f"bench-{tag}-{number}",
                    "LOKALNIE_LOG_LEVEL": "INFO",
                }
                process = servers.start([sys.executable, "-m", "lokalnie", "ingest"], log, env)
                processes.append(process)
                servers.wait_for_log(log, "subscribed to", timeout_s=600, process=process)

            def committed() -> int:
                with engine.connect() as connection:
                    return int(
                        connection.exec_driver_sql(
                            "SELECT COALESCE(SUM(samples), 0) FROM ingest_workers"
                        ).scalar_one()
                    )

            plan = make_plan()
            total = plan.messages * 2
            with publishers(broker.port, plan) as fleet:
                began = time.time()
                watched = _watched(processes, broker, engine)
                cpu_before = {pid: cpu_seconds(pid) for pids in watched.values() for pid in pids}
                fleet.go.set()
                while (stored := committed()) < total:
                    if any(process.poll() is not None for process in processes):
                        raise RuntimeError(f"an ingest process died; see {work}")
                    if time.time() - began > 3600:
                        raise TimeoutError(f"only {stored} of {total} samples committed")
                    time.sleep(0.05)
                finished = time.time()
                cpu_s = {
                    part: sum(cpu_seconds(pid) - cpu_before.get(pid, 0.0) for pid in pids)
                    for part, pids in _watched(processes, broker, engine).items()
                }
            cpu_s["publishers"] = sum(value.value for value in fleet.cpu_s)
            with engine.connect() as connection:
                counted = int(connection.exec_driver_sql("SELECT COUNT(*) FROM samples").scalar_one())
                readings, messages, transactions = (
                    int(value)
                    for value in connection.exec_driver_sql(
                        "SELECT SUM(readings), SUM(messages), SUM(transactions) FROM ingest_workers"
                    ).one()
                )
                histograms = [
                    LagHistogram.from_json(_as_dict(row[0]))
                    for row in connection.exec_driver_sql("SELECT lag_histogram FROM ingest_workers")
                ]
        finally:
            for process in processes:
                servers.stop_process(process)
            engine.dispose()
    if counted != total:
        raise RuntimeError(f"{counted} samples stored, {total} published")
    merged = LagHistogram()
    for histogram in histograms:
        merged = LagHistogram(
            {key: merged.counts[key] + histogram.counts[key] for key in merged.counts},
            merged.sum_s + histogram.sum_s,
        )
    cpu_us_per_message = {part: seconds / plan.messages * 1e6 for part, seconds in cpu_s.items()}
    # How full the workers' batches were: per-transaction costs weigh by this.
    print(f"  {workers} worker(s): {messages / max(transactions, 1):.0f} messages a transaction")
    return IngestRun(
        plan,
        finished - began,
        readings,
        merged,
        finished - plan.last_sample_ms / 1000.0,
        cpu_us_per_message,
    )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time [s] a process has used, user and system; 0 when it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _pids_mentioning(text: str) -> list[int]:
    """The processes whose command line contains ``text``."""
    pids = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in path.read_bytes().decode(errors="replace"):
                pids.append(int(path.parent.name))
        except OSError:
            continue  # gone meanwhile
    return pids


def _watched(
    workers: list[subprocess.Popen[bytes]], broker: servers.Broker, engine: sa.Engine
) -> dict[str, list[int]]:
    """The processes whose CPU time a run counts, by part: the ingest workers, the broker (found by its
    directory in its command line) and, on PostgreSQL, the server processes serving the run's database."""
    watched = {
        "ingest": [process.pid for process in workers],
        "broker": _pids_mentioning(str(broker.directory)),
    }
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            watched["database"] = list(
                connection.exec_driver_sql(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).scalars()
            )
    return watched


def _as_dict(value: object) -> dict[str, object] | None:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else None


def load_average() -> list[float]:
    return [float(part) for part in Path("/proc/loadavg").read_text().split()[:3]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def postgres_server(work: Path, kind: str) -> Iterator[servers.Postgres | None]:
    """The PostgreSQL server of a database kind: ``postgresql`` is the tests' (no waiting for the disk),
    ``postgresql_durable`` one that fsyncs every commit as production does."""
    if kind == "sqlite":
        yield None
        return
    with servers.postgres(work / kind, durable=kind == "postgresql_durable") as server:
        yield server


def throughput_round(
    work: Path,
    make_plan: Callable[[], Plan],
    kind: str,
    postgres: servers.Postgres | None,
    sites_dir: Path,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """One round, each part right after the other: the broker's ceiling, a consumer that only receives and
    acknowledges, one ingest worker, two, and the ceiling again, on the same messages [readings/s]; and the
    CPU time per message of each part of the two ingest runs. The machine's speed drifts by a fifth over
    minutes: the round's ceiling is the mean of the two taken around the ingest runs, so that a drift during
    the round weighs on both sides of the ratio."""
    plan, seconds, _ = broker_ceiling(work, make_plan)
    measured = {"ceiling_before": plan.readings / seconds, "receive_only": receive_only(work, make_plan)}
    cpu = {}
    for workers, key in ((1, "one_worker"), (2, "two_workers")):
        run = ingest_run(work, make_plan, new_database(kind, work, postgres), sites_dir, workers)
        measured[key] = run.readings / run.seconds
        cpu[key] = run.cpu_us_per_message
    plan, seconds, _ = broker_ceiling(work, make_plan)
    measured["ceiling_after"] = plan.readings / seconds
    measured["ceiling"] = (measured["ceiling_before"] + measured["ceiling_after"]) / 2
    return measured, cpu


def main() -> None:
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        schools = max(1, round(READINGS_PER_S * POLL_MS / 1000 / load.READINGS_PER_POLL))
        school_ids = load.school_ids(schools, prefix="b")
        sites_dir = write_sites(work / "sites", school_ids)
        polls = max(2, THROUGHPUT_MESSAGES // schools)
        two_hours_ago = (time.time_ns() // 10**6 - 2 * 3600 * 1000) // 900_000 * 900_000

        def compressed() -> Plan:
            return Plan(school_ids, polls, two_hours_ago, realtime=False)

        def realtime() -> Plan:
            return Plan(
                school_ids,
                max(2, int(FIXED_RATE_S * 1000 / POLL_MS)),
                time.time_ns() // 10**6 + int(LEAD_S * 1000),
                True,
            )

        plan = compressed()
        print(f"{schools} schools, {plan.messages} messages, {plan.readings} readings")
        realtime_plan, _, broker_lags = broker_ceiling(work, realtime)
        broker_p99 = percentile(broker_lags, 0.99)
        print(f"broker at {READINGS_PER_S:.0f} readings/s: delivery lag p99 {broker_p99 * 1000:.1f} ms")

        for kind in DATABASES:
            with postgres_server(work, kind) as postgres:
                rounds = []
                cpu_rounds = []
                for number in range(1, ROUNDS + 1):
                    measured, cpu = throughput_round(work, compressed, kind, postgres, sites_dir)
                    rounds.append(measured)
                    cpu_rounds.append(cpu)
                    one, two, ceiling = (measured[k] for k in ("one_worker", "two_workers", "ceiling"))
                    print(
                        f"{kind}, round {number}: broker {ceiling:.0f} "
                        f"({measured['ceiling_before']:.0f} before, {measured['ceiling_after']:.0f} after), "
                        f"receive only {measured['receive_only']:.0f} "
                        f"({measured['receive_only'] / ceiling:.2f}), "
                        f"one worker {one:.0f} "
                        f"({one / ceiling:.2f}), two {two:.0f} ({two / ceiling:.2f}) readings/s"
                    )
                    for key, parts in cpu.items():
                        shares = ", ".join(f"{part} {us:.0f}" for part, us in parts.items())
                        print(f"  CPU per message [µs], {key.replace('_', ' ')}: {shares}")
                ceiling = statistics.median(r["ceiling"] for r in rounds)
                for workers, key in ((1, "one_worker"), (2, "two_workers")):
                    rate = statistics.median(r[key] for r in rounds)
                    ratios = [r[key] / r["ceiling"] for r in rounds]
                    report(
                        f"ingest_{key}_{kind}",
                        f"readings per second from MQTT to committed {kind} rows with {workers} ingest "
                        f"worker(s), the publishers going as fast as they can ({schools} schools, "
                        f"{load.READINGS_PER_POLL} readings per message); median of {ROUNDS} rounds",
                        rate,
                        "readings/s",
                        ceiling,
                        baseline_name="Mosquitto delivering the same messages to mosquitto_sub -q 1, "
                        "median of the same rounds",
                        details={
                            "messages": plan.messages,
                            "readings": plan.readings,
                            "rounds": rounds,
                            "cpu_us_per_message_per_round": [cpu[key] for cpu in cpu_rounds],
                            "ratio_per_round": ratios,
                            "ratio_median_of_rounds": statistics.median(ratios),
                            "receive_only_ratio_per_round": [
                                r["receive_only"] / r["ceiling"] for r in rounds
                            ],
                            "ingest_workers": workers,
                            "publisher_processes": PUBLISHERS,
                            "nothing_lost_or_doubled": True,
                            "load_average_after": load_average(),
                        },
                    )
                run = ingest_run(work, realtime, new_database(kind, work, postgres), sites_dir, 1)
                p99 = run.histogram.quantile(0.99) or 0.0
                duration_s = run.plan.polls * POLL_MS / 1000
                print(
                    f"{kind}: {run.readings / duration_s:.0f} readings/s for {duration_s:.0f} s, "
                    f"lag p99 {p99:.2f} s; last commit {run.behind_last_sample_s:.2f} s after the last sample"
                )
                report(
                    f"ingest_lag_p99_{kind}",
                    "end-to-end lag at the 99th percentile (commit time minus sample time), one ingest "
                    f"worker, {kind}, {READINGS_PER_S:.0f} readings/s sustained for {duration_s:.0f} s",
                    p99,
                    "s",
                    broker_p99,
                    baseline_name="Mosquitto delivering the same stream to mosquitto_sub -q 1 (receive minus "
                    "sample time, p99)",
                    details={
                        "offered_readings_per_s": run.plan.readings / duration_s,
                        "cpu_us_per_message": run.cpu_us_per_message,
                        "committed_readings": run.readings,
                        "committed_readings_per_s_over_the_run": run.readings / duration_s,
                        "last_commit_after_last_sample_s": run.behind_last_sample_s,
                        "lag_p50_s": run.histogram.quantile(0.5),
                        "lag_histogram": run.histogram.to_json(),
                        "lag_p99_resolution": "interpolated in its bucket (stats.LAG_BOUNDS_S)",
                        "broker_delivery_lag_p50_s": percentile(broker_lags, 0.5),
                        "broker_realtime_messages": realtime_plan.messages,
                        "nothing_lost_or_doubled": True,
                        "load_average_after": load_average(),
                    },
                )


if __name__ == "__main__":
    main()
