"""Fixtures of the edge tests: a school whose devices a test chooses, served by the simulators on loopback."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from common.clock import parse_iso_ms
from common.sites import Device, RtuTransport, Site, TcpTransport, load_site
from common.wire import DeviceKind
from lokalnie.ports import free_port
from tests.conftest import SITES_DIR

NOON_MS = parse_iso_ms("2026-06-15T12:00:00+02:00")
NIGHT_MS = parse_iso_ms("2026-06-15T23:30:00+02:00")


def device(
    device_id: str,
    profile: str,
    *,
    port: int | None = None,
    unit: int = 1,
    serial: str | None = None,
    baud: int = 9600,
) -> Device:
    """A device on loopback (a free port unless given) or, with ``serial``, on that serial port."""
    kind = DeviceKind.GRID_METER if "sdm" in profile or "meter" in profile else DeviceKind.PV_INVERTER
    transport: TcpTransport | RtuTransport = (
        RtuTransport(device=serial, baud=baud)
        if serial
        else TcpTransport(host="127.0.0.1", port=port or free_port())
    )
    return Device(id=device_id, kind=kind, profile=profile, unit=unit, transport=transport)


def school(devices: Sequence[Device], *, school_id: str = "sp5", poll_period_s: int = 10) -> Site:
    """sp5 with the given devices instead of its own."""
    site = load_site(SITES_DIR / f"{school_id}.yaml")
    return site.model_copy(update={"devices": list(devices), "poll_period_s": poll_period_s})


def write_site(site: Site, directory: Path) -> Path:
    """Write a site file where `load_site` accepts it (the file name is the school id)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{site.id}.yaml"
    path.write_text(yaml.safe_dump(site.model_dump(mode="json"), allow_unicode=True))
    return path
