"""The time-series schema as InfluxDB line protocol: what the energy officer's dashboards read.

Three measurements, timestamps in milliseconds (write precision ``ms``); every field is a float except
``complete``; tags are ids from the register and the wire contract's closed vocabularies, so their values
are bounded (no pupil data, no free text):

``readings``
    One point per sample: tags ``school``, ``device``, ``kind`` (``pv_inverter``, ``grid_meter``); one field
    per reading the sample holds (``power_w``, ``energy_wh``, ``voltage_l1_v``, ...); null readings are
    left out. Time: when the device was read.
``energy_15min``
    One point per school and complete 15-minute interval: tag ``school``; fields ``pv_wh``, ``import_wh``,
    ``export_wh``, ``consumption_wh``, ``complete``. Time: the interval's start. Written when the interval
    becomes complete and again whenever late readings change it (the newer point replaces the older).
``counter_corrections``
    One point per corrected counter step: tags ``school``, ``device``, ``kind``, ``quantity`` (the
    counter), ``correction`` (``reset``, ``rollover``, ``jump``); fields ``previous_wh``, ``value_wh``,
    ``step_wh`` (as measured) and ``counted_wh`` (as counted). Time: the reading that ends the step.

docs/timeseries.md says the same for people, with the dashboards' queries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

READINGS = "readings"
ENERGY_15MIN = "energy_15min"
COUNTER_CORRECTIONS = "counter_corrections"

# Tag values and field keys come from patterns without spaces, commas, equals signs or quotes, so no
# escaping is needed; anything else is refused rather than escaped.
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class LineError(ValueError):
    """A name that the line protocol would need escaped: not one of the schema's."""


def _safe(text: str) -> str:
    if not _SAFE.match(text):
        raise LineError(f"{text!r} is not a plain name")
    return text


def _tags(tags: Mapping[str, str]) -> str:
    return "".join(f",{_safe(key)}={_safe(value)}" for key, value in tags.items())


def _float(value: float) -> str:
    return repr(float(value))


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | bool], ts_ms: int) -> str:
    """One point; floats are written as floats (``31250.0``), never as integers."""
    if not fields:
        raise LineError("a point needs at least one field")
    rendered = ",".join(
        f"{_safe(key)}={('true' if value else 'false') if isinstance(value, bool) else _float(value)}"
        for key, value in fields.items()
    )
    return f"{_safe(measurement)}{_tags(tags)} {rendered} {int(ts_ms)}"


def reading_line(
    school: str, device: str, kind: str, ts_ms: int, values: Mapping[str, float | None]
) -> str | None:
    """A sample as a ``readings`` point; None if it holds no reading."""
    fields = {quantity: value for quantity, value in values.items() if value is not None}
    if not fields:
        return None
    return line(READINGS, {"school": school, "device": device, "kind": kind}, fields, ts_ms)


def interval_line(school: str, start_ms: int, energies: Mapping[str, float | int | bool]) -> str:
    """A 15-minute interval as an ``energy_15min`` point."""
    fields: dict[str, float | bool] = {
        name: float(energies[name]) for name in ("pv_wh", "import_wh", "export_wh", "consumption_wh")
    }
    fields["complete"] = bool(energies["complete"])
    return line(ENERGY_15MIN, {"school": school}, fields, start_ms)


def correction_line(
    school: str,
    device: str,
    kind: str,
    quantity: str,
    correction: str,
    ts_ms: int,
    previous_wh: float,
    value_wh: float,
    counted_wh: float,
) -> str:
    """A corrected counter step as a ``counter_corrections`` point."""
    return line(
        COUNTER_CORRECTIONS,
        {"school": school, "device": device, "kind": kind, "quantity": quantity, "correction": correction},
        {
            "previous_wh": previous_wh,
            "value_wh": value_wh,
            "step_wh": value_wh - previous_wh,
            "counted_wh": counted_wh,
        },
        ts_ms,
    )


def body(lines: Iterable[str]) -> bytes:
    """Lines joined into a write request's body."""
    return ("\n".join(lines) + "\n").encode()
