"""Running a service until the operator stops it: SIGINT (Ctrl-C) or SIGTERM (systemd, the demo) sets a stop
event that the service watches, so that it can finish what it is doing and close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator


async def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGINT and SIGTERM set ``stop``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await main(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """For a synchronous program: SIGINT and SIGTERM set the event yielded, instead of raising
    KeyboardInterrupt wherever the main thread happens to be (inside a lock of a library, say, which then
    stays held and hangs the exit). The previous handlers come back on leaving."""
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
