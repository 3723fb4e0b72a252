"""Modbus requests per poll for the shipped profiles: ours, one request per field, Telegraf's "aggressive".

Each profile's fields are planned three ways and, to see which plans a device accepts, sent to the simulated
device over Modbus TCP on loopback:

* **ours** (`edge.modbus.plan.plan_reads`): merged within the profile's limit per request, gaps bridged up to
  the profile's size, never across registers the profile marks unreadable;
* **one per field**: what a naive reader does;
* **aggressive**: Telegraf's Modbus input with ``optimization = "aggressive"``: fields sorted by address and
  merged regardless of the gaps, up to the protocol's 125 registers a request, whatever the device allows.

SunSpec profiles are planned on the map discovered from the simulated SunSpec inverter (models 1 and 103) or,
for the meter, on a SunSpec meter laid out as the specification says (models 1 and 203). Identity reads
(serial numbers, once an hour) are not part of a poll and are not counted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bench.report import report
from common.clock import ManualClock, parse_iso_ms
from common.sites import Device, TcpTransport, load_site
from edge.modbus import sunspec
from edge.modbus.link import DeviceLink, DeviceRefusal, LinkSettings
from edge.modbus.plan import ReadBlock
from edge.modbus.profiles import MAX_REGISTERS_PER_REQUEST, Function, Profile, RegisterField, load_profiles
from edge.poller import DevicePoller, RegisterMap
from lokalnie.ports import free_port
from simulators.server import DEVICE_BY_PROFILE, SiteSimulator
from tests.conftest import PROFILES_DIR, SITES_DIR

NOON_MS = parse_iso_ms("2026-06-15T12:00:00+02:00")


def per_field(fields: list[RegisterField]) -> list[ReadBlock]:
    return [ReadBlock(f.function, f.address, f.registers, (f,)) for f in fields]


def aggressive(fields: list[RegisterField]) -> list[ReadBlock]:
    """Telegraf's "aggressive" merge: holes filled whatever their size, up to 125 registers a request."""
    blocks: list[ReadBlock] = []
    for function in Function:
        chosen = sorted((f for f in fields if f.function == function), key=lambda f: (f.address, f.end))
        current: list[RegisterField] = []
        for field in chosen:
            if (
                current
                and max(field.end, max(f.end for f in current)) - current[0].address
                <= MAX_REGISTERS_PER_REQUEST
            ):
                current.append(field)
                continue
            if current:
                blocks.append(_block(function, current))
            current = [field]
        if current:
            blocks.append(_block(function, current))
    return blocks


def _block(function: Function, fields: list[RegisterField]) -> ReadBlock:
    start = fields[0].address
    return ReadBlock(function, start, max(f.end for f in fields) - start, tuple(fields))


@dataclass
class Counted:
    requests: int
    registers: int
    refused: int


async def send(link: DeviceLink, unit: int, plan: list[ReadBlock]) -> Counted:
    refused = 0
    async with link.session():
        for block in plan:
            answer = await link.read(block.function, block.address, block.count, unit)
            refused += isinstance(answer, DeviceRefusal)
    return Counted(len(plan), sum(b.count for b in plan), refused)


async def measure(profile: Profile) -> dict[str, object]:
    """Plan one profile three ways and send each plan to its simulated device."""
    device = Device(
        id="device",
        kind=profile.kind,
        profile=profile.name,
        transport=TcpTransport(host="127.0.0.1", port=free_port()),
    )
    site = load_site(SITES_DIR / "sp5.yaml").model_copy(update={"devices": [device]})
    async with SiteSimulator(site, ManualClock(NOON_MS)) as simulator:
        link = DeviceLink(device.transport, LinkSettings(timeout_s=2.0))
        poller = DevicePoller(device, profile, link)
        await poller.poll()  # discovers a SunSpec map
        assert poller.register_map is not None
        plans = _plans(poller.register_map)
        counted = {name: await send(link, device.unit, plan) for name, plan in plans.items()}
        await link.aclose()
    return _figures(type(simulator.devices["device"]).__name__, plans, counted)


def _plans(register_map: RegisterMap) -> dict[str, list[ReadBlock]]:
    fields = [f for f in register_map.fields if not f.identity]
    return {
        "ours": list(register_map.plan),
        "one_per_field": per_field(fields),
        "telegraf_aggressive": aggressive(fields),
    }


def _figures(
    device: str, plans: dict[str, list[ReadBlock]], counted: dict[str, Counted] | None
) -> dict[str, object]:
    figures: dict[str, object] = {"device": device, "fields": len(plans["one_per_field"])}
    for name, plan in plans.items():
        figures[f"{name}_requests"] = len(plan)
        figures[f"{name}_registers"] = sum(block.count for block in plan)
        figures[f"{name}_refused"] = counted[name].refused if counted else None
    return figures


def _plan_in_memory(profile: Profile) -> dict[str, object]:
    """A SunSpec meter has no simulator: plan on models 1 and 203 laid out as the specification says."""
    common, meter = sunspec.model_definition(1), sunspec.model_definition(203)
    assert common is not None and meter is not None and profile.sunspec is not None
    words = [
        *sunspec.SUNS_MARKER,
        *sunspec.encode_model(common, {}, 66),
        *sunspec.encode_model(meter, {}, 105),
    ]
    image = {40000 + index: word for index, word in enumerate([*words, 0xFFFF, 0])}

    async def read(address: int, count: int) -> list[int] | None:
        return [image[address + i] for i in range(count)] if address + count - 1 in image else None

    found = asyncio.run(sunspec.discover(read))
    assert found is not None
    register_map = RegisterMap.build(profile, sunspec.poll_fields(found, profile.sunspec))
    return _figures("SunSpec models 1 and 203 (in memory)", _plans(register_map), None)


def main() -> None:
    profiles = load_profiles(PROFILES_DIR)
    figures = {
        profile.name: _plan_in_memory(profile)
        if profile.name not in DEVICE_BY_PROFILE
        else asyncio.run(measure(profile))
        for profile in profiles
    }
    ours = sum(int(f["ours_requests"]) for f in figures.values())  # type: ignore[call-overload]
    naive = sum(int(f["one_per_field_requests"]) for f in figures.values())  # type: ignore[call-overload]
    telegraf = sum(int(f["telegraf_aggressive_requests"]) for f in figures.values())  # type: ignore[call-overload]
    for name, figure in figures.items():
        print(
            f"  {name:18s} ours {figure['ours_requests']} ({figure['ours_registers']} registers, "
            f"{figure['ours_refused']} refused); one per field {figure['one_per_field_requests']}; "
            f"aggressive {figure['telegraf_aggressive_requests']} ({figure['telegraf_aggressive_registers']} "
            f"registers, {figure['telegraf_aggressive_refused']} refused)"
        )
    report(
        "edge_requests",
        "Modbus requests per poll, all shipped profiles together",
        ours,
        "requests",
        naive,
        baseline_name="one request per field",
        details={
            "telegraf_aggressive_requests": telegraf,
            "profiles": figures,
            "script": Path(__file__).name,
        },
    )


if __name__ == "__main__":
    main()
