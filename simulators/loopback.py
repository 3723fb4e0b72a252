"""Moving a school's devices onto the loopback interface, so that many schools run on one machine."""

from __future__ import annotations

from collections.abc import Sequence

from common.sites import Site, TcpTransport

LOOPBACK_HOST = "127.0.0.1"


def tcp_endpoint_count(site: Site) -> int:
    """How many distinct (host, port) pairs the site's TCP devices use: the ports `loopback_site` takes."""
    return len(
        {
            (device.transport.host, device.transport.port)
            for device in site.devices
            if isinstance(device.transport, TcpTransport)
        }
    )


def loopback_site(site: Site, first_port: int) -> Site:
    """A copy of `site` with every TCP device on 127.0.0.1, on consecutive ports from `first_port`.

    Devices that shared a (host, port) in the site file, as units behind one gateway, share the new
    port too; ports go in the order the devices appear. RTU devices are left as they are.
    """
    new_port: dict[tuple[str, int], int] = {}
    devices = []
    for device in site.devices:
        transport = device.transport
        if isinstance(transport, TcpTransport):
            endpoint = (transport.host, transport.port)
            port = new_port.setdefault(endpoint, first_port + len(new_port))
            if port > 65535:
                raise ValueError(f"{site.id}: port {port} for device {device.id} is above 65535")
            device = device.model_copy(update={"transport": TcpTransport(host=LOOPBACK_HOST, port=port)})
        devices.append(device)
    return site.model_copy(update={"devices": devices})


def loopback_sites(sites: Sequence[Site], first_port: int) -> list[Site]:
    """`loopback_site` for several schools, each taking the ports after the previous one's."""
    moved = []
    port = first_port
    for site in sites:
        moved.append(loopback_site(site, port))
        port += tcp_endpoint_count(site)
    return moved
