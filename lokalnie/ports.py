"""Finding free TCP ports on loopback, for the demo and the tests that run the system on one machine."""

from __future__ import annotations

import socket


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port (a bind succeeds)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_run(count: int, first: int = 20000) -> int:
    """The first of ``count`` consecutive loopback ports that are all free (a row of simulated devices)."""
    start = first
    while start + count < 60000:
        busy = next((port for port in range(start, start + count) if not port_is_free(port)), None)
        if busy is None:
            return start
        start = busy + 1
    raise RuntimeError(f"no {count} consecutive free ports found")
