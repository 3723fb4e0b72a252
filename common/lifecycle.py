"""Running a service until the operator stops it: SIGINT (Ctrl-C) or SIGTERM (systemd, the demo) sets a stop
event that the service watches, so that it can finish what it is doing and close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType


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
def signals_call(callback: Callable[[int], None]) -> Iterator[None]:
    """For a synchronous program: call ``callback`` with the signal's number on SIGINT and SIGTERM while the
    block runs, then restore the previous handlers. A callback that sets an event the program watches stops
    it in order, where the default KeyboardInterrupt is raised wherever the main thread happens to be (inside
    a library's lock, say, which then stays held and hangs the exit)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        callback(signum)

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child process (between fork and exec, or in a forked child): ask the kernel for SIGTERM when the
    parent dies."""
    # Linux only: if the parent is killed (even with SIGKILL), the kernel sends this child SIGTERM.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
