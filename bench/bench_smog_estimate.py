"""Stop Smog estimates per second through the HTTP API, against a bare FastAPI endpoint returning a constant.

Uvicorn serves the smog routes in a subprocess over an SQLite database with the sample addresses and networks,
as ``lokalnie api`` serves (`cloud.api.serve`: one process, or ``BENCH_SMOG_PROCESSES``; no access log); a
second serves the bare endpoint, in as many processes. Two measurements each:

- fixed rate: an open-loop asyncio generator (httpx) sends ``BENCH_SMOG_RATE`` requests a second (200) for
  ``BENCH_SMOG_SECONDS`` (20) s, each scheduled at its own time; the latency counts from the scheduled moment,
  so a server that falls behind shows it (no coordinated omission). Median and 99th percentile.
- maximum throughput: ``wrk`` (Debian package ``wrk``, which ``make bench`` installs) with 2 threads and 16
  connections for 10 s. Required: a generator in Python saturates before the bare endpoint does (a closed
  httpx loop gave 638 req/s for it on a day wrk gave thousands), which flattered the ratio to 0.7.

The requests cycle through 50 sample addresses and three house sizes. The result's ratio is the estimate's
maximum throughput over the bare endpoint's. Goal: p99 under 50 ms at 200 requests a second, and at least a
third of the ceiling's throughput. Results: ``bench/results/smog_estimate.json`` (one process) or
``smog_estimate_<n>_processes.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.report import report
from cloud.api.serve import SharedLimits
from cloud.smog import EstimateRequest
from lokalnie.ports import free_port
from tests import servers

REPO = Path(__file__).resolve().parent.parent
RATE = float(os.environ.get("BENCH_SMOG_RATE", "200"))
# Also the estimate at a rate one worker keeps up with here, to show its latency when not saturated.
LOW_RATE = float(os.environ.get("BENCH_SMOG_LOW_RATE", "100"))
SECONDS = float(os.environ.get("BENCH_SMOG_SECONDS", "20"))
MAX_SECONDS = int(os.environ.get("BENCH_SMOG_MAX_SECONDS", "10"))
CONNECTIONS = 16
POOL = 64
PROCESSES = int(os.environ.get("BENCH_SMOG_PROCESSES", "1"))
DATABASE_ENV = "BENCH_SMOG_DATABASE_URL"


def estimate_app(limits: SharedLimits | None = None) -> FastAPI:
    """The smog routes as the API serves them, over the database named by ``BENCH_SMOG_DATABASE_URL``, with
    the rate limits counted in ``limits`` (shared by the serving processes) as in the API."""
    from cloud.api.limits import Rate, RateLimiter, parse_networks
    from cloud.api.routes import smog
    from cloud.db.engine import make_engine, make_session_factory
    from cloud.smog.sites import AddressSites
    from common.clock import SystemClock

    app = FastAPI()
    app.state.sessions = make_session_factory(make_engine(os.environ[DATABASE_ENV]))
    app.state.clock = SystemClock()
    app.state.smog_sites = AddressSites()
    # The routes' access rules run as in the API, with limits the load generator's one address never hits.
    unlimited = Rate(10**9, 1.0)
    records = limits.rate_limits if limits is not None else None
    app.state.rate_limiter = RateLimiter(
        {"estimates": unlimited, "search": unlimited}, SystemClock().now_ms, records=records
    )
    app.state.trusted_proxies = parse_networks(())
    app.include_router(smog.router)
    return app


# The size of an estimate's answer [bytes], for the second bare endpoint.
ANSWER_BYTES = 51_000


def bare_app(limits: SharedLimits | None = None) -> FastAPI:
    """The framework's ceiling here: one endpoint returning a constant; and, to tell the calculator's own cost
    from that of moving an answer of its size, one taking the estimate's request and returning a constant
    of an estimate's size. (No rate limits: ``limits`` is not used.)"""
    app = FastAPI()
    answer = b'{"padding":"' + b"x" * (ANSWER_BYTES - 14) + b'"}'

    @app.get("/constant")
    async def constant() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/constant-answer")
    async def constant_answer(request: EstimateRequest) -> Response:
        return Response(answer, media_type="application/json")

    return app


def prepare_database(path: Path) -> list[dict[str, Any]]:
    """Load the sample into a new SQLite file; the request bodies the generators cycle through."""
    from cloud.db.engine import make_engine
    from cloud.smog import create_smog_tables, import_sample
    from cloud.smog.tables import SmogAddress

    engine = make_engine(f"sqlite:///{path}")
    create_smog_tables(engine)
    with Session(engine) as session, session.begin():
        import_sample(session)
    with Session(engine) as session:
        ids = session.scalars(select(SmogAddress.id).order_by(SmogAddress.id).limit(50)).all()
    engine.dispose()
    standards = ["before_1967", "1967_1985", "from_1997"]
    return [
        {"address_id": address_id, "heated_area_m2": 80 + 40 * (i % 3), "building_standard": standards[i % 3]}
        for i, address_id in enumerate(ids)
    ]


def serve_app(factory: str, port: int) -> None:
    """Serve the app of ``factory`` (``module:function``) on ``port`` as ``lokalnie api`` serves the API
    (`cloud.api.serve`), from ``BENCH_SMOG_PROCESSES`` processes."""
    import importlib

    from cloud.api.serve import serve

    module, function = factory.split(":")
    make_app = getattr(importlib.import_module(module), function)
    raise SystemExit(serve(make_app, "127.0.0.1", port, PROCESSES, log_role="bench"))


@contextmanager
def api_server(factory: str, probe: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """`serve_app` of ``factory`` on a free port, its log in ``log``; the base URL once ``probe`` (a path)
    answers and every serving process is up."""
    port = free_port()
    code = f"from bench.bench_smog_estimate import serve_app; serve_app({factory!r}, {port})"
    # No access log (warnings only), as before this benchmark served through cloud.api.serve.
    environment = {**os.environ, **env, "PYTHONPATH": str(REPO), "LOKALNIE_LOG_LEVEL": "WARNING"}
    process = servers.start([sys.executable, "-c", code], log, environment)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        serving = PROCESSES if PROCESSES > 1 else 0
        while not _answers(f"{base}{probe}") or len(servers.child_pids(process.pid)) < serving:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        # Each serving process has imported the app; give the last one a moment to reach its accept loop.
        time.sleep(1.0)
        yield base
    finally:
        servers.stop_process(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


async def fixed_rate(url: str, bodies: list[dict[str, Any]] | None, rate: float = RATE) -> dict[str, float]:
    """Open loop at ``rate`` requests a second for SECONDS; latencies from each request's scheduled time.

    HTTP/1.1 over a pool of keep-alive connections written by hand: a general client (httpx) costs more CPU
    per request than the bare endpoint and, on a two-core machine, measured itself instead of the server.
    """
    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.raw_path.decode()
    if bodies:
        raws = [
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
            for payload in (json.dumps(body).encode() for body in bodies)
        ]
    else:
        raws = [f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()]
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(POOL):
        pool.put_nowait(await asyncio.open_connection(host, port))

    async def send(raw: bytes) -> int:
        reader, writer = await pool.get()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        pool.put_nowait((reader, writer))
        return int(head.split(b" ", 2)[1])

    for index in range(40):  # warm up
        await send(raws[index % len(raws)])
    count = int(rate * SECONDS)
    latencies: list[float] = []
    statuses: list[int] = []

    async def one(scheduled: float, raw: bytes) -> None:
        statuses.append(await send(raw))
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    start = time.perf_counter() + 0.05
    for index in range(count):
        scheduled = start + index / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(scheduled, raws[index % len(raws)])))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        _reader, writer = pool.get_nowait()
        writer.close()
    ordered = sorted(latencies)
    return {
        "rate_per_s": rate,
        "requests": count,
        "failures": sum(1 for status in statuses if status != 200),
        "achieved_per_s": count / elapsed,
        "median_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


_WRK_SCRIPT = """
local bodies = {%s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
"""


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def max_throughput_wrk(url: str, bodies: list[dict[str, Any]] | None, work: Path) -> dict[str, float]:
    command = [servers.require("wrk"), "-t2", f"-c{CONNECTIONS}", f"-d{MAX_SECONDS}s", "--latency"]
    if bodies:
        script = work / "estimate.lua"
        quoted = ", ".join(json.dumps(json.dumps(body)) for body in bodies)
        script.write_text(_WRK_SCRIPT % quoted)
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        # The figure would be that of the refusals: a defect of the benchmark, not a result.
        raise RuntimeError(f"{url} answered {errors.group(1)} requests with an error:\n{output}")
    return {
        "per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "median_ms": _milliseconds(re.search(r"\s50%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
        "p99_ms": _milliseconds(re.search(r"\s99%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
        "connections": CONNECTIONS,
    }


def measure(url: str, bodies: list[dict[str, Any]] | None, work: Path) -> dict[str, Any]:
    steady = asyncio.run(fixed_rate(url, bodies))
    peak = max_throughput_wrk(url, bodies, work)
    return {"fixed_rate": steady, "max_throughput": peak, "max_generator": "wrk 2 threads"}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-smog-") as directory:
        work = Path(directory)
        database = work / "smog.db"
        bodies = prepare_database(database)
        env = {DATABASE_ENV: f"sqlite:///{database}", "LOKALNIE_ENV": "development"}
        factory = "bench.bench_smog_estimate:estimate_app"
        with api_server(factory, "/api/v1/smog/addresses?q=Łaska", env, work / "estimate.log") as base:
            estimate = measure(f"{base}/api/v1/smog/estimate", bodies, work)
            estimate["fixed_low_rate"] = asyncio.run(
                fixed_rate(f"{base}/api/v1/smog/estimate", bodies, LOW_RATE)
            )
        with api_server("bench.bench_smog_estimate:bare_app", "/constant", env, work / "bare.log") as base:
            bare = measure(f"{base}/constant", None, work)
            sized = max_throughput_wrk(f"{base}/constant-answer", bodies, work)
    steady = estimate["fixed_rate"]
    estimate_peak = estimate["max_throughput"]["per_s"]
    bare_peak = bare["max_throughput"]["per_s"]
    report(
        "smog_estimate" if PROCESSES == 1 else f"smog_estimate_{PROCESSES}_processes",
        "Stop Smog estimates per second through the HTTP API (maximum)",
        estimate_peak,
        "req/s",
        bare_peak,
        baseline_name="bare FastAPI endpoint returning a constant (maximum)",
        details={
            "estimate": estimate,
            "bare": bare,
            "bare_with_an_answers_size": {
                "what": f"POST the estimate's request, validated; a constant {ANSWER_BYTES}-byte answer",
                **sized,
            },
            "fixed_rate_per_s": RATE,
            "fixed_rate_seconds": SECONDS,
            "goal_p99_under_50_ms_at_200_per_s": steady["p99_ms"] < 50 and steady["failures"] == 0,
            "goal_a_third_of_the_ceiling": estimate_peak >= bare_peak / 3,
            "server": f"uvicorn through cloud.api.serve (as lokalnie api), {PROCESSES} process(es); rate "
            "limits in shared records; no access log; SQLite with the sample data",
            "fixed_rate_generator": f"asyncio, hand-written HTTP/1.1 over {POOL} keep-alive connections",
        },
    )
    low = estimate["fixed_low_rate"]
    print(
        f"estimate at {RATE:g}/s: median {steady['median_ms']:.1f} ms, p99 {steady['p99_ms']:.1f} ms, "
        f"{steady['failures']} failures; at {LOW_RATE:g}/s: median {low['median_ms']:.1f} ms, "
        f"p99 {low['p99_ms']:.1f} ms; bare at {RATE:g}/s: p99 {bare['fixed_rate']['p99_ms']:.1f} ms; "
        f"bare with an answer's size: {sized.get('per_s', float('nan')):.0f} req/s"
    )


if __name__ == "__main__":
    main()
