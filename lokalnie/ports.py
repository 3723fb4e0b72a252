"""Finding free TCP ports on loopback, for the demo and the tests that run the system on one machine."""

from __future__ import annotations

import random
import socket


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port (a bind succeeds)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Where `free_port` looks: below the ports the kernel hands outgoing connections
# (net.ipv4.ip_local_port_range, 32768–60999 by default), where a port found free can be taken by some
# connection's source port before the server meant for it binds it (CI once saw a simulator refused
# 127.0.0.1:49115 that way); and above the rows `free_port_run` takes from 20000.
FREE_PORTS = range(24000, 32768)
# The next port `free_port` tries: ports go round the range, so one is not handed out twice in a row before
# its server binds it; processes start at different places.
_next_port = FREE_PORTS.start + random.randrange(len(FREE_PORTS))


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, outside the kernel's range for outgoing
    connections."""
    global _next_port
    for _ in FREE_PORTS:
        port = _next_port
        _next_port = port + 1 if port + 1 in FREE_PORTS else FREE_PORTS.start
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port between {FREE_PORTS.start} and {FREE_PORTS.stop - 1}")


def free_port_run(count: int, first: int = 20000) -> int:
    """The first of ``count`` consecutive loopback ports that are all free (a row of simulated devices)."""
    start = first
    while start + count < 60000:
        busy = next((port for port in range(start, start + count) if not port_is_free(port)), None)
        if busy is None:
            return start
        start = busy + 1
    raise RuntimeError(f"no {count} consecutive free ports found")
