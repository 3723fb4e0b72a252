"""The installer's tools: find out what answers at an address, and check a site file against its devices.

`probe` looks for a SunSpec map first (the marker at 40000, 0 or 50000) and decodes every point of every model
it finds; then it tries every shipped register profile and ranks them by how well the device answers them (no
refused request, plausible values). `check` validates a site file and polls each of its devices once, the
way the agent will. Both return reports; `edge.cli` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.sites import Device, RtuTransport, Site, TcpTransport
from edge.agent import build_pollers
from edge.modbus import sunspec
from edge.modbus.link import DeviceLink, DeviceRefusal, DeviceUnreachable, LinkSettings, describe
from edge.modbus.profiles import Function, Profile
from edge.poller import DevicePoller, PollResult

Transport = TcpTransport | RtuTransport


@dataclass(frozen=True)
class ModelReport:
    """One SunSpec model found on the device, decoded."""

    model_id: int
    address: int
    length: int
    label: str
    points: list[sunspec.DecodedPoint]


@dataclass(frozen=True)
class ProfileMatch:
    """How a device answered one profile's reads."""

    profile: Profile
    result: PollResult | None
    error: str | None = None

    @property
    def score(self) -> float:
        """1.0 for a device that answers every read of the profile with plausible values; 0 for none."""
        if self.result is None or self.result.values is None:
            return 0.0
        values = self.result.values
        present = sum(value is not None for value in values.values())
        if self.result.refusals or self.result.implausible or not values:
            return 0.5 * present / len(values) if values else 0.0
        return present / len(values)

    @property
    def rank(self) -> tuple[float, float, int]:
        """Best first: the score, then the share of values that are not zero (an SDM120 read as an SDM630
        shows zeros on phases 2 and 3), then how many values the profile reads."""
        values = self.result.values if self.result is not None and self.result.values else {}
        nonzero = sum(bool(value) for value in values.values())
        return (self.score, nonzero / len(values) if values else 0.0, len(values))

    @property
    def fits(self) -> bool:
        return self.score >= 0.5 and not (self.result and (self.result.refusals or self.result.implausible))


@dataclass
class ProbeReport:
    target: str
    unit: int
    sunspec_base: int | None = None
    models: list[ModelReport] = field(default_factory=list)
    matches: list[ProfileMatch] = field(default_factory=list)
    error: str | None = None

    @property
    def best(self) -> ProfileMatch | None:
        fitting = [match for match in self.matches if match.fits]
        return max(fitting, key=lambda match: match.rank) if fitting else None


async def probe(
    transport: Transport, unit: int, profiles: list[Profile], timeout_s: float = 2.0
) -> ProbeReport:
    """What answers at ``transport`` as unit ``unit``: its SunSpec models, and how each profile fits."""
    link = DeviceLink(transport, LinkSettings(timeout_s=timeout_s))
    report = ProbeReport(describe(transport), unit)
    try:
        async with link.session():
            await _sunspec_models(link, unit, report)
    except DeviceUnreachable as error:
        # Some devices do not answer at all for registers they lack: try the register maps all the same.
        report.error = str(error)
    try:
        for profile in profiles:
            report.matches.append(await _try_profile(link, unit, profile, transport))
    finally:
        await link.aclose()
    report.matches.sort(key=lambda match: match.rank, reverse=True)
    return report


async def _sunspec_models(link: DeviceLink, unit: int, report: ProbeReport) -> None:
    async def read(address: int, count: int) -> list[int] | None:
        answer = await link.read(Function.HOLDING, address, count, unit)
        return None if isinstance(answer, DeviceRefusal) else answer

    try:
        found = await sunspec.discover(read)
    except sunspec.SunSpecError as error:
        report.error = f"SunSpec marker found but {error}"
        return
    if found is None:
        return
    report.sunspec_base = found.base
    for instance in found.models:
        definition = sunspec.model_definition(instance.model_id)
        registers = await sunspec.read_model(read, instance)
        if definition is None or registers is None:
            label = "(no SunSpec definition: a vendor model)" if definition is None else "(refused)"
            report.models.append(ModelReport(instance.model_id, instance.address, instance.length, label, []))
            continue
        points = sunspec.decode_model(definition, registers)
        report.models.append(
            ModelReport(instance.model_id, instance.address, instance.length, definition.label, points)
        )


async def _try_profile(link: DeviceLink, unit: int, profile: Profile, transport: Transport) -> ProfileMatch:
    device = Device(id="probe", kind=profile.kind, profile=profile.name, unit=unit, transport=transport)
    poller = DevicePoller(device, profile, link)
    try:
        return ProfileMatch(profile, await poller.poll())
    except DeviceUnreachable as error:
        return ProfileMatch(profile, None, str(error))


@dataclass(frozen=True)
class DeviceCheck:
    device: Device
    profile: Profile
    result: PollResult | None
    error: str | None = None

    @property
    def problems(self) -> list[str]:
        """What is wrong, in the installer's words (empty when the device reads well)."""
        if self.error is not None:
            return [f"no answer: {self.error}"]
        assert self.result is not None
        found = []
        if self.result.mismatch:
            found.append(f"does not match profile {self.profile.name}: {self.result.mismatch}")
        for refusal in self.result.refusals:
            found.append(
                f"refused registers {refusal.address}..{refusal.address + refusal.count - 1} "
                f"(Modbus exception {refusal.exception_code})"
            )
        if self.result.implausible:
            found.append(f"implausible values: {', '.join(self.result.implausible)}")
        values = self.result.values or {}
        if values and all(value is None for value in values.values()):
            found.append("every value is missing")
        return found


async def check_site(site: Site, profiles_dir: Path) -> list[DeviceCheck]:
    """Poll each device of a validated site once, as the agent will; `ConfigError` for a bad site."""
    pollers = build_pollers(site, profiles_dir)
    checks = []
    try:
        for poller in pollers:
            try:
                checks.append(DeviceCheck(poller.device, poller.profile, await poller.poll()))
            except DeviceUnreachable as error:
                checks.append(DeviceCheck(poller.device, poller.profile, None, str(error)))
    finally:
        for link in {id(poller.link): poller.link for poller in pollers}.values():
            await link.aclose()
    return checks
