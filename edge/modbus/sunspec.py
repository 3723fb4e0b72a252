"""SunSpec devices: find the 'SunS' marker, walk the model chain to the end marker, and read any model.

The models are not described here: their points (offsets, types, scale factors, units, enum symbols) come from
the SunSpec Alliance's own model definitions, the JSON files that pysunspec2 ships, and the "not implemented"
value of each point type from pysunspec2's encoding of the specification. The same definitions serve two
uses: the installer's probe decodes every point of every model a device has (`decode_model`), and the agent
turns the few points a profile publishes into ordinary register fields (`poll_fields`), so that SunSpec
devices are planned, read and decoded like every other device.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from edge.modbus.decode import DataType, decode, raw_unsigned, scaled
from edge.modbus.profiles import RegisterField, SunSpecSection

SUNS_MARKER = (0x5375, 0x6E53)  # 'SunS'
END_MODEL_ID = 0xFFFF
COMMON_MODEL_ID = 1
# A chain longer than this is garbage, not a device.
MAX_MODELS = 64

# How each SunSpec point type is stored; the width comes from the definition's "size".
_DATA_TYPES: dict[str, DataType] = {
    "int16": DataType.S16,
    "uint16": DataType.U16,
    "count": DataType.U16,
    "acc16": DataType.U16,
    "enum16": DataType.U16,
    "bitfield16": DataType.U16,
    "pad": DataType.U16,
    "sunssf": DataType.S16,
    "int32": DataType.S32,
    "uint32": DataType.U32,
    "acc32": DataType.U32,
    "enum32": DataType.U32,
    "bitfield32": DataType.U32,
    "ipaddr": DataType.U32,
    "int64": DataType.S64,
    "uint64": DataType.U64,
    "acc64": DataType.U64,
    "float32": DataType.F32,
    "float64": DataType.F64,
    "string": DataType.STRING,
}
# Types shown as raw hex: addresses, not quantities.
_HEX_TYPES = frozenset({"ipaddr", "ipv6addr", "eui48"})

Reader = Callable[[int, int], Awaitable[list[int] | None]]
"""Reads ``count`` holding registers at an address; None when the device refuses (a Modbus exception)."""


class SunSpecError(Exception):
    """The device's SunSpec map is not what the specification allows (a broken chain, garbage)."""


@dataclass(frozen=True)
class PointDef:
    """One point of a model definition."""

    name: str
    type: str
    size: int
    offset: int  # registers from the start of its group instance
    sf: str | int | None
    units: str | None
    label: str
    symbols: Mapping[int, str] = field(default_factory=dict)

    @property
    def data_type(self) -> DataType | None:
        return _DATA_TYPES.get(self.type)

    @property
    def not_implemented(self) -> int | None:
        """The raw value that means "not implemented" for this point's type, as one unsigned integer."""
        return not_implemented_value(self.type, self.size)


@dataclass(frozen=True)
class GroupDef:
    """A group of points; the model itself is the top group, repeating groups hang below it."""

    name: str
    points: tuple[PointDef, ...]
    groups: tuple[GroupDef, ...]
    # How many instances: a number, 0 for "as many as the model length allows", or the name of a count point.
    count: int | str

    @property
    def points_size(self) -> int:
        return sum(point.size for point in self.points)

    def point(self, name: str) -> PointDef | None:
        return next((point for point in self.points if point.name == name), None)


@dataclass(frozen=True)
class ModelDef:
    id: int
    label: str
    group: GroupDef


@dataclass(frozen=True)
class ModelInstance:
    """A model found on a device: its id, the address of its id register, and its length L."""

    model_id: int
    address: int
    length: int

    @property
    def end(self) -> int:
        """One past the model's last register."""
        return self.address + 2 + self.length


@dataclass(frozen=True)
class SunSpecMap:
    """The models of one device, in chain order."""

    base: int
    models: tuple[ModelInstance, ...]

    def first(self, model_ids: Sequence[int]) -> ModelInstance | None:
        """The first of ``model_ids`` (in that order of preference) that the device has."""
        for model_id in model_ids:
            for instance in self.models:
                if instance.model_id == model_id:
                    return instance
        return None


@dataclass(frozen=True)
class DecodedPoint:
    """A point's engineering value, for people (the installer's probe)."""

    path: str
    label: str
    value: float | int | str | None
    units: str | None
    meaning: str | None = None  # an enum's symbol, or the names of the bits set in a bitfield


def not_implemented_value(point_type: str, size: int) -> int | None:
    """The sentinel of a SunSpec type as one unsigned integer, from pysunspec2's encoding of the standard."""
    from sunspec2 import mb

    if point_type in ("pad", "string"):
        return None  # pad is always "implemented"; a string is unimplemented when it starts with NUL
    raw: bytes = mb.create_unimpl_value(point_type, len=size * 2)
    return int.from_bytes(raw[: size * 2].rjust(size * 2, b"\0"), "big")


def _definitions_dir() -> Path:
    import sunspec2

    return Path(sunspec2.__file__).parent / "models" / "json"


@cache
def model_definition(model_id: int) -> ModelDef | None:
    """The SunSpec Alliance's definition of a model, or None for a model pysunspec2 does not ship."""
    path = _definitions_dir() / f"model_{model_id}.json"
    if not path.exists():
        return None
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    top = document["group"]
    return ModelDef(model_id, str(top.get("label", top["name"])), _group(top, count=1))


def known_model_ids() -> list[int]:
    """Every model id pysunspec2 has a definition of."""
    return sorted(int(path.stem.split("_")[1]) for path in _definitions_dir().glob("model_*.json"))


def _group(data: Mapping[str, Any], count: int | str) -> GroupDef:
    points = []
    offset = 0
    for item in data.get("points", []):
        symbols = {int(symbol["value"]): str(symbol["name"]) for symbol in item.get("symbols", [])}
        points.append(
            PointDef(
                name=str(item["name"]),
                type=str(item["type"]),
                size=int(item["size"]),
                offset=offset,
                sf=item.get("sf"),
                units=item.get("units"),
                label=str(item.get("label", item["name"])),
                symbols=symbols,
            )
        )
        offset += int(item["size"])
    groups = tuple(_group(sub, count=sub.get("count", 1)) for sub in data.get("groups", []))
    return GroupDef(str(data["name"]), tuple(points), groups, count)


async def find_base(read: Reader, base_addresses: Sequence[int]) -> int | None:
    """The first address of ``base_addresses`` that holds the 'SunS' marker, or None."""
    for base in base_addresses:
        if await read(base, 2) == list(SUNS_MARKER):
            return base
    return None


async def discover(read: Reader, base_addresses: Sequence[int] = (40000, 0, 50000)) -> SunSpecMap | None:
    """Find the marker and walk the chain of models to the end marker; None when there is no marker.

    `SunSpecError` when the chain is broken (no end marker, a model running past the last register);
    transport errors of ``read`` propagate.
    """
    base = await find_base(read, base_addresses)
    if base is None:
        return None
    address = base + 2
    models: list[ModelInstance] = []
    while len(models) <= MAX_MODELS:
        header = await read(address, 2)
        if header is None:
            # Some devices refuse a read that runs past the end marker: its length register is missing.
            header = await read(address, 1)
            if header is None or header[0] != END_MODEL_ID:
                raise SunSpecError(f"the model chain breaks at register {address}")
        if header[0] == END_MODEL_ID:
            return SunSpecMap(base, tuple(models))
        if len(header) < 2:
            raise SunSpecError(f"the model at register {address} has no length")
        instance = ModelInstance(header[0], address, header[1])
        if instance.end > 65536:
            raise SunSpecError(f"model {instance.model_id} at {address} runs past register 65535")
        models.append(instance)
        address = instance.end
    raise SunSpecError(f"no end marker after {MAX_MODELS} models")


async def read_model(read: Reader, instance: ModelInstance, max_registers: int = 125) -> list[int] | None:
    """All registers of a model (its id and length included), in requests of at most ``max_registers``."""
    registers: list[int] = []
    address = instance.address
    while address < instance.end:
        count = min(max_registers, instance.end - address)
        chunk = await read(address, count)
        if chunk is None:
            return None
        registers += chunk
        address += count
    return registers


def poll_fields(smap: SunSpecMap, section: SunSpecSection) -> list[RegisterField]:
    """The register fields one poll reads: the published points of the first model of the profile's list
    that the device has, their scale factors, the model's id and length (checked on every poll, so that a
    moved map is noticed) and the identity points of the common model.

    `SunSpecError` when the device has none of the profile's models.
    """
    instance = smap.first(section.models)
    if instance is None:
        found = ", ".join(str(model.model_id) for model in smap.models) or "none"
        listed = ", ".join(str(model_id) for model_id in section.models)
        raise SunSpecError(f"the device has models {found}, none of those the profile reads ({listed})")
    definition = model_definition(instance.model_id)
    if definition is None:
        raise SunSpecError(f"model {instance.model_id} has no SunSpec definition")
    prefix = f"m{instance.model_id}_"
    fields = [
        RegisterField(name=f"{prefix}id", address=instance.address, type=DataType.U16, publish=False,
                      expect=instance.model_id),
        RegisterField(name=f"{prefix}l", address=instance.address + 1, type=DataType.U16, publish=False,
                      expect=instance.length),
    ]  # fmt: skip
    factors: dict[str, RegisterField] = {}
    for quantity, wanted in section.points.items():
        point = definition.group.point(wanted.point)
        if point is None or point.data_type is None or point.type == "string":
            continue  # the model lacks the point (a single-phase model has no phase B): published as null
        factor_name = None
        scale = 1.0
        if isinstance(point.sf, str) and (factor := definition.group.point(point.sf)) is not None:
            factor_name = f"{prefix}{factor.name.lower()}"
            factors[factor_name] = _field(factor_name, instance, factor, publish=False)
        elif isinstance(point.sf, int):
            scale = 10.0**point.sf
        fields.append(
            _field(quantity, instance, point, publish=True).model_copy(
                update={
                    "scale_factor": factor_name,
                    "scale": scale,
                    "valid_min": wanted.valid_min,
                    "valid_max": wanted.valid_max,
                }
            )
        )
    return fields + list(factors.values()) + identity_fields(smap, section)


def identity_fields(smap: SunSpecMap, section: SunSpecSection) -> list[RegisterField]:
    """The common model's points that identify the device (manufacturer, model, serial number)."""
    common = smap.first([COMMON_MODEL_ID])
    definition = model_definition(COMMON_MODEL_ID)
    if common is None or definition is None:
        return []
    fields = []
    for name in section.identity:
        point = definition.group.point(name)
        if (
            point is not None
            and point.data_type is not None
            and point.offset + point.size <= common.length + 2
        ):
            fields.append(_field(f"id_{name.lower()}", common, point, publish=False).model_copy(
                update={"identity": True}
            ))  # fmt: skip
    return fields


def _field(name: str, instance: ModelInstance, point: PointDef, *, publish: bool) -> RegisterField:
    data_type = point.data_type
    assert data_type is not None
    return RegisterField(
        name=name,
        address=instance.address + point.offset,
        type=data_type,
        length=point.size if data_type is DataType.STRING else None,
        unit=point.units,
        not_implemented=point.not_implemented,
        publish=publish,
    )


def decode_model(definition: ModelDef, registers: Sequence[int]) -> list[DecodedPoint]:
    """Every point of a model from all its registers (id and length first), scale factors applied.

    Repeating groups are expanded: a fixed count, a count given by a point, or (count 0) as many as fit in
    the model's length. Never raises for register contents: what cannot be decoded is None.
    """
    decoded: list[DecodedPoint] = []
    _decode_group(definition.group, registers, 0, len(registers), "", [], decoded)
    return decoded


def _decode_group(
    group: GroupDef,
    registers: Sequence[int],
    start: int,
    end: int,
    path: str,
    scopes: list[dict[str, int | float | str | None]],
    out: list[DecodedPoint],
) -> int:
    """Decode one instance of ``group`` at ``start``; return the offset after it."""
    raw: dict[str, int | float | str | None] = {}
    scope = [*scopes, raw]
    offset = start
    for point in group.points:
        raw[point.name] = _raw_value(point, registers[offset : offset + point.size])
        offset += point.size
    for point in group.points:
        if point.type not in ("pad",):
            out.append(_engineering(point, raw[point.name], scope, path))
    for sub in group.groups:
        count = _instances(sub, raw, end - offset)
        for index in range(count):
            if offset >= end:
                break
            offset = _decode_group(sub, registers, offset, end, f"{path}{sub.name}[{index + 1}].", scope, out)
    return offset


def _instances(group: GroupDef, parent: Mapping[str, int | float | str | None], room: int) -> int:
    size = _group_size(group)
    if isinstance(group.count, str):
        value = parent.get(group.count)
        return int(value) if isinstance(value, int | float) and value >= 0 else 0
    if group.count == 0:
        return room // size if size else 0
    return int(group.count)


def _group_size(group: GroupDef) -> int:
    """Registers of one instance, counting nested groups of fixed count only."""
    nested = sum(_group_size(sub) * sub.count for sub in group.groups if isinstance(sub.count, int))
    return group.points_size + nested


def _raw_value(point: PointDef, registers: Sequence[int]) -> int | float | str | None:
    if len(registers) < point.size:
        return None
    if point.type in _HEX_TYPES:
        return "".join(f"{word:04x}" for word in registers)
    data_type = point.data_type
    if data_type is None:
        return None
    if point.not_implemented is not None and raw_unsigned(registers) == point.not_implemented:
        return None
    value = decode(registers, data_type)
    if isinstance(value, str):
        return value or None
    return value


def _engineering(
    point: PointDef,
    raw: int | float | str | None,
    scopes: Sequence[Mapping[str, int | float | str | None]],
    path: str,
) -> DecodedPoint:
    value: float | int | str | None = raw
    meaning = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if isinstance(point.sf, str):
            factor = next((scope[point.sf] for scope in reversed(scopes) if point.sf in scope), None)
            value = scaled(raw, 1.0, int(factor)) if isinstance(factor, int) else None
        elif isinstance(point.sf, int):
            value = scaled(raw, 1.0, point.sf)
        elif isinstance(raw, float):
            value = scaled(raw)
        meaning = _meaning(point, int(raw)) if isinstance(raw, int) else None
    return DecodedPoint(f"{path}{point.name}", point.label, value, point.units, meaning)


def _meaning(point: PointDef, raw: int) -> str | None:
    if not point.symbols:
        return None
    if point.type.startswith("bitfield"):
        names = [name for bit, name in sorted(point.symbols.items()) if raw >> bit & 1]
        return ", ".join(names) or "-"
    return point.symbols.get(raw)


def encode_model(definition: ModelDef, values: Mapping[str, int | float | str], length: int) -> list[int]:
    """The registers of one model instance holding raw ``values`` by point name, other points "not
    implemented": the inverse of `decode_model` for the top group, used by tests and simulators."""
    registers: list[int] = []
    for point in definition.group.points:
        if point.name == "ID":
            words = [definition.id]
        elif point.name == "L":
            words = [length]
        else:
            words = _encode_point(point, values.get(point.name))
        registers += words
    return (registers + [0] * (length + 2))[: length + 2]


def _encode_point(point: PointDef, value: int | float | str | None) -> list[int]:
    from edge.modbus.decode import encode

    data_type = point.data_type
    if data_type is None or value is None:
        sentinel = point.not_implemented or 0
        return list(struct.unpack(f">{point.size}H", sentinel.to_bytes(point.size * 2, "big")))
    if data_type is DataType.STRING:
        return encode(str(value), data_type, string_registers=point.size)
    return encode(value, data_type)
