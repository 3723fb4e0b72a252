"""Free loopback ports for the servers the tests and the demo start."""

from __future__ import annotations

import socket

import pytest

from lokalnie import ports
from lokalnie.ports import FREE_PORTS, free_port


def test_free_ports_lie_outside_the_kernels_range_for_outgoing_connections_and_do_not_repeat() -> None:
    """A port in the kernel's range can be taken by an outgoing connection's source port before the server
    meant for it binds it; and two calls must not hand out one port before either is bound."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
        first_outgoing = int(file.read().split()[0])
    found = [free_port() for _ in range(50)]
    assert all(port in FREE_PORTS and port < first_outgoing for port in found)
    assert len(set(found)) == len(found)


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        monkeypatch.setattr(ports, "_next_port", port)
        assert free_port() != port, "the port something listens on is passed over"
