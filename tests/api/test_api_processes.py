"""``lokalnie api --processes 2``: two real serving processes on one port share the rate limits, the sign-in
throttle and the signing key; one that dies is started again; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lokalnie.ports import free_port
from tests import servers
from tests.conftest import SITES_DIR

SEARCHES_PER_HOUR = 12
START_TIMEOUT_S = 60.0


@dataclass
class RunningApi:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def children(self) -> set[int]:
        """The serving processes' ids."""
        return servers.child_pids(self.process.pid)

    def served_by(self) -> Counter[str]:
        """How many requests each serving process logged, by its name in the log (api-1, api-2)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return Counter(line.split()[2] for line in lines if " uvicorn.access: " in line)


def _wait_until(
    condition: Callable[[], bool], what: str, log: Path, timeout_s: float = START_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """One API for the module's tests (each uses its own limit or username; the last one stops it)."""
    tmp_path = tmp_path_factory.mktemp("api-processes")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
        "LOKALNIE_SITES_DIR": str(SITES_DIR),
        # Sign-ins are limited by the throttle here, not by the address's rate.
        "LOKALNIE_RATE_LIMITS": f"search={SEARCHES_PER_HOUR}/hour,login=100/minute",
    }
    for name in ("LOKALNIE_ENV", "LOKALNIE_SECRET_KEY", "LOKALNIE_APPLICATIONS_KEY"):
        env.pop(name, None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lokalnie",
            "users",
            "add",
            "ewa",
            "--role",
            "energy_officer",
            "--name",
            "Ewa",
            "--password-stdin",
        ],
        input=b"correct horse battery staple\n",
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = tmp_path / "api.log"
    command = [sys.executable, "-m", "lokalnie", "api", "--port", str(port), "--processes", "2"]
    process = servers.start(command, log, env)
    running = RunningApi(process, f"http://127.0.0.1:{port}", log)
    try:

        def answering() -> bool:
            assert process.poll() is None, f"the API exited:\n{log.read_text()[-3000:]}"
            try:
                return httpx.get(f"{running.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait_until(answering, "the API to answer", log)
        _wait_until(lambda: len(running.children()) == 2, "two serving processes", log)
        yield running
    finally:
        servers.stop_process(process)


def _each_on_its_own_connection(url: str, count: int, method: str = "GET", **kwargs: object) -> list[int]:
    """``count`` requests at once, each on a new connection: the kernel hands them to both processes."""

    def one(_: int) -> int:
        with httpx.Client(timeout=10) as client:
            return client.request(method, url, **kwargs).status_code  # type: ignore[arg-type]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def test_two_processes_allow_a_client_the_rate_once(api: RunningApi) -> None:
    before = api.served_by()
    statuses = _each_on_its_own_connection(f"{api.url}/api/v1/smog/addresses?q=Łaska", 4 * SEARCHES_PER_HOUR)
    served = api.served_by() - before
    assert served["api-1"] > SEARCHES_PER_HOUR / 2 and served["api-2"] > SEARCHES_PER_HOUR / 2, served
    assert Counter(statuses) == {200: SEARCHES_PER_HOUR, 429: 3 * SEARCHES_PER_HOUR}


def _burst_of_kept_alive_connections(
    api: RunningApi, path: str, headers: dict[str, str], count: int
) -> list[int]:
    """Open ``count`` connections at once, as a proxy fills its pool, then a request on each; the statuses."""
    host, port = api.url.removeprefix("http://").split(":")
    connections = [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]
    try:
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        for connection in connections:
            connection.sendall(request)
        return [int(connection.recv(65536).split(b" ", 2)[1]) for connection in connections]
    finally:
        for connection in connections:
            connection.close()


def test_kept_alive_connections_spread_over_both_and_a_token_works_in_each(api: RunningApi) -> None:
    # The signing key is made once (development, no LOKALNIE_SECRET_KEY), not once per process.
    signed_in = httpx.post(
        f"{api.url}/api/v1/auth/token", data={"username": "ewa", "password": "correct horse battery staple"}
    )
    assert signed_in.status_code == 200, signed_in.text
    bearer = {"authorization": f"Bearer {signed_in.json()['access_token']}"}
    before = api.served_by()
    statuses = _burst_of_kept_alive_connections(api, "/api/v1/auth/me", bearer, 48)
    assert statuses == [200] * 48
    # From one shared listening socket, the process awake at the time took most of such a burst (51 of 64).
    served = api.served_by() - before
    assert served["api-1"] >= 12 and served["api-2"] >= 12, served


def test_two_processes_throttle_a_guesser_once(api: RunningApi) -> None:
    before = api.served_by()
    # A username nobody has: refused and counted as a wrong password is.
    guesses = _each_on_its_own_connection(
        f"{api.url}/api/v1/auth/token", 10, "POST", data={"username": "adam", "password": "wrong"}
    )
    served = api.served_by() - before
    assert served["api-1"] > 0 and served["api-2"] > 0, served
    # Five failures in all, however the guesses fell on the two processes; then the pair waits.
    assert Counter(guesses) == {401: 5, 429: 5}, Counter(guesses)


def test_a_dead_serving_process_is_replaced_and_sigterm_stops_all(api: RunningApi) -> None:
    # The module's last test: it stops the API.
    first = api.children()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    _wait_until(lambda: len(api.children()) == 2 and victim not in api.children(), "a new process", api.log)
    assert httpx.get(f"{api.url}/healthz", timeout=5).status_code == 200
    assert "ended (exit code -9)" in api.log.read_text()

    children = api.children()
    api.process.send_signal(signal.SIGTERM)
    assert api.process.wait(START_TIMEOUT_S) == 0
    for child in children:
        assert not Path(f"/proc/{child}").exists(), f"serving process {child} outlived the API"
    assert "Traceback" not in api.log.read_text()
