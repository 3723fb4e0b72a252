"""Serving the API from one process or from several on one port, for more than one core.

With several, this process (the supervisor) holds the port (bound, not listening, so that nothing else takes
it), makes the state the processes share (`SharedLimits`: the rate limiter's buckets and the sign-in
throttle's failures, in shared memory), forks the serving processes and starts a new one when one dies.
SIGTERM or SIGINT stops them all, each finishing the requests it has begun.

Each serving process listens on a socket of its own with ``SO_REUSEPORT``: the kernel spreads new
connections evenly among them by their addresses. From one shared listening socket, the process that
happened to be awake accepted most of a burst (measured: 51 of 64 kept-alive connections in one process),
and kept-alive connections, as a proxy's, stay where they were accepted. The price: connections waiting in a
dying process's queue are reset.

Not uvicorn's own ``--workers``: its processes rebuild the listening socket from a file descriptor without
the TCP protocol number, so their connections do not get ``TCP_NODELAY`` and every answer on a kept-alive
connection after the first waits about 40 ms for the client's delayed acknowledgement (uvicorn issue #3149;
measured here, 362 requests a second for a constant answer with two such workers against 6,200 with one
process). A socket made here with ``IPPROTO_TCP`` gets it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloud.api.limits import rate_limit_records
from cloud.auth.throttle import throttle_records
from cloud.shared_records import SharedRecords
from common.lifecycle import die_with_parent, signals_call
from common.logs import setup_logging

logger = logging.getLogger(__name__)

# A serving process that dies this soon after its start counts towards a crash loop.
QUICK_DEATH_S = 10.0
# Quick deaths in a row after which the supervisor gives up (the cause is not passing).
MAX_QUICK_DEATHS = 5
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SharedLimits:
    """The state the API's processes share, made by the supervisor before it forks them."""

    rate_limits: SharedRecords
    sign_in_failures: SharedRecords

    @classmethod
    def create(cls) -> SharedLimits:
        return cls(rate_limit_records(), throttle_records())


# Makes the app one serving process serves; None: alone, with private limits.
AppFactory = Callable[[SharedLimits | None], Any]


def serve(make_app: AppFactory, host: str, port: int, processes: int = 1, log_role: str = "api") -> int:
    """Serve ``make_app``'s app on ``host:port`` from ``processes`` processes until SIGTERM or SIGINT; the
    exit code (1 when the serving processes kept dying)."""
    import uvicorn

    if processes == 1:
        config = uvicorn.Config(make_app(None), host=host, port=port, log_config=None)
        # uvicorn handles SIGINT and SIGTERM itself while it runs, then raises the signal again: ours swallows
        # it.
        with signals_call(lambda _signum: None):
            uvicorn.Server(config).run()
        return 0
    try:
        with tcp_socket(host, port):  # held, not listening: the port is ours
            return _Supervisor(make_app, (host, port), SharedLimits.create(), processes, log_role).run()
    except OSError as error:
        logger.error("cannot listen on %s:%d: %s", host, port, error.strerror or error)
        return 1


def tcp_socket(host: str, port: int, listen: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, listening if ``listen``; made with
    ``IPPROTO_TCP`` (see the module's docstring)."""
    family, _type, _proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    made = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    made.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    made.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    made.bind(address)
    if listen:
        made.listen(2048)
    return made


class _Supervisor:
    def __init__(
        self, make_app: AppFactory, address: tuple[str, int], limits: SharedLimits, count: int, role: str
    ) -> None:
        self.make_app = make_app
        self.address = address
        self.limits = limits
        self.role = role
        self.stop = threading.Event()
        self.context = multiprocessing.get_context("fork")
        self.children: dict[int, tuple[Any, float]] = {}
        self.count = count

    def run(self) -> int:
        with signals_call(lambda signum: self._stopping(signum)):
            for number in range(1, self.count + 1):
                self._start(number)
            logger.info("serving from %d processes", self.count)
            code = self._watch()
            self._stop_all()
        return code

    def _stopping(self, signum: int) -> None:
        logger.info("%s received: stopping the serving processes", signal.Signals(signum).name)
        self.stop.set()

    def _start(self, number: int) -> None:
        child = self.context.Process(
            target=_serve_one,
            args=(self.make_app, self.address, self.limits, f"{self.role}-{number}"),
            name=f"{self.role}-{number}",
        )
        child.start()
        self.children[number] = (child, time.monotonic())

    def _watch(self) -> int:
        quick_deaths = 0
        while not self.stop.wait(0.2):
            for number, (child, started) in list(self.children.items()):
                if child.is_alive():
                    continue
                lived_s = time.monotonic() - started
                quick_deaths = quick_deaths + 1 if lived_s < QUICK_DEATH_S else 0
                logger.error(
                    "serving process %s ended (exit code %s) after %.0f s",
                    child.name,
                    child.exitcode,
                    lived_s,
                )
                if quick_deaths >= MAX_QUICK_DEATHS:
                    logger.error("serving processes keep dying: stopping")
                    return 1
                if self.stop.wait(RESTART_DELAY_S):
                    return 0
                self._start(number)
                logger.info("serving process %s started again", child.name)
        return 0

    def _stop_all(self) -> None:
        for child, _ in self.children.values():
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child, _ in self.children.values():
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                logger.error("serving process %s did not stop in %.0f s: killed", child.name, STOP_TIMEOUT_S)
                child.kill()
                child.join()


def _serve_one(make_app: AppFactory, address: tuple[str, int], limits: SharedLimits, role: str) -> None:
    """A serving process: the app over the shared limits, on its own socket of the port."""
    import asyncio

    import uvicorn

    die_with_parent()
    # The supervisor's handlers came with the fork; until uvicorn sets its own, a signal simply ends this one.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    setup_logging(role)
    listener = tcp_socket(*address, listen=True)
    config = uvicorn.Config(make_app(limits), log_config=None)
    server = uvicorn.Server(config)
    with signals_call(lambda _signum: None):
        asyncio.run(server.serve(sockets=[listener]))
