"""One school's PV production, load and grid exchange over time, with counters that add up exactly.

Time is cut into 1-second steps from the model's start; within a step every power is constant. The
counters are the exact sums of those powers, kept as integers in watt-milliseconds, so that a counter
read at any moment, in any order and any number of times, is the integral of the power the devices
show: import minus export over any span equals the integral of the grid power. Steps are computed an
hour at a time with NumPy, always over the same hour boundaries, so that the result does not depend on
when the model is asked.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.sites import Site
from simulators.load import SchoolLoad, site_seed
from simulators.solar import PvSystem, pv_ac_power_w
from simulators.weather import clearness_factor, hash_uniform, temp_air_c

STEP_MS = 1000
CHUNK_STEPS = 3600
DEFAULT_HISTORY_HOURS = 48
WMS_PER_WH = 3_600_000
# The inverter sizes a Polish installer would pick from, and the DC/AC ratio they would accept.
INVERTER_SIZES_W = (3000, 4000, 5000, 6000, 8000, 10_000, 12_000, 15_000, 17_000, 20_000, 25_000, 30_000,
                    33_000, 36_000, 40_000, 50_000)  # fmt: skip
MAX_DC_AC_RATIO = 1.25
# The roofs are taken to have been producing since mid-2021, when the pilot on SP5 began.
PV_COMMISSIONED = dt.datetime(2021, 7, 1, tzinfo=dt.UTC)
# Default grid meter readings at the start [kWh]: a meter replaced recently (see docs/simulators.md).
DEFAULT_IMPORT_KWH_RANGE = (300.0, 3000.0)
DEFAULT_EXPORT_KWH_RANGE = (50.0, 800.0)
_STREAM_COUNTERS = 11

IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Counters:
    """Cumulative energies: what the inverter and the grid meter have counted [Wh]."""

    pv_energy_wh: float
    import_wh: float
    export_wh: float


@dataclass(frozen=True)
class SchoolState:
    """Everything the devices of a school show at one moment.

    Powers are in W, energies in Wh since the device was installed; the grid power is positive when
    the school imports (wire convention).
    """

    ts_ms: int
    pv_power_w: float
    pv_energy_wh: float
    load_w: float
    grid_power_w: float
    import_wh: float
    export_wh: float


@dataclass(frozen=True)
class _Chunk:
    """An hour of steps: powers per step [W] and the counters at its start [W·ms]."""

    pv_w: IntArray
    load_w: IntArray
    start_pv_wms: int
    start_import_wms: int
    start_export_wms: int

    def counters_after(self, steps: int) -> tuple[int, int, int]:
        """The counters after the first `steps` steps [W·ms]."""
        pv = self.pv_w[:steps].astype(np.int64)
        grid = self.load_w[:steps].astype(np.int64) - pv
        return (
            self.start_pv_wms + STEP_MS * int(pv.sum()),
            self.start_import_wms + STEP_MS * int(np.maximum(grid, 0).sum()),
            self.start_export_wms + STEP_MS * int(np.maximum(-grid, 0).sum()),
        )


def inverter_rating_w(kwp: float) -> int:
    """The smallest catalogue inverter for a roof of `kwp` within a DC/AC ratio of 1.25 [W]."""
    for size_w in INVERTER_SIZES_W:
        if kwp * 1000.0 / size_w <= MAX_DC_AC_RATIO:
            return size_w
    return int(np.ceil(kwp * 1000.0 / MAX_DC_AC_RATIO / 1000.0) * 1000)


def pv_system_of(site: Site, *, tilt_deg: float = 30.0, surface_azimuth_deg: float = 180.0) -> PvSystem:
    """The PV system of a site: its kWp and location, a catalogue inverter, a south roof at 30°.

    Site files do not describe the roof; pass `tilt_deg` (10-15 for a flat roof) and
    `surface_azimuth_deg` for one that differs.
    """
    return PvSystem(
        kwp=site.pv_kwp,
        ac_rating_w=float(inverter_rating_w(site.pv_kwp)),
        latitude_deg=site.location.lat,
        longitude_deg=site.location.lon,
        tilt_deg=tilt_deg,
        surface_azimuth_deg=surface_azimuth_deg,
    )


def default_counters(site: Site, *, start_ms: int, seed: int) -> Counters:
    """Plausible counters at `start_ms`: a PV roof producing since 2021, a recently replaced meter.

    The PV counter is about 1,000 kWh per kWp for each year since mid-2021 (±5 % by seed). The meter
    counters stay below 4,000 kWh: the SDM630 keeps kWh as float32, whose spacing is at most 0.24 Wh
    there and grows with the reading (7.8 Wh at 100 MWh); a test can then check readings to 1 Wh
    (docs/simulators.md).
    """
    draws = hash_uniform(site_seed(site.id, seed), _STREAM_COUNTERS, np.arange(3))
    years = max(0.0, (start_ms / 1000 - PV_COMMISSIONED.timestamp()) / (365.25 * 86_400))
    pv_kwh = site.pv_kwp * 1000.0 * years * (0.95 + 0.10 * float(draws[0]))
    import_low, import_high = DEFAULT_IMPORT_KWH_RANGE
    export_low, export_high = DEFAULT_EXPORT_KWH_RANGE
    return Counters(
        pv_energy_wh=round(pv_kwh * 1000.0),
        import_wh=round((import_low + (import_high - import_low) * float(draws[1])) * 1000.0),
        export_wh=round((export_low + (export_high - export_low) * float(draws[2])) * 1000.0),
    )


class SchoolModel:
    """A school's PV, load and grid meter, integrated in 1-second steps from `start_ms`.

    Parameters
    ----------
    site : Site
        The school.
    start_ms : int
        The first moment of the model [epoch ms]; steps are counted from here.
    seed : int
        Selects the weather (shared by all schools with the same seed) and the load's fluctuation.
    initial : Counters, optional
        The counters at `start_ms`; `default_counters` when omitted.
    pv_system : PvSystem, optional
        The roof and inverter; `pv_system_of(site)` when omitted.
    history_hours : int
        How many simulated hours before the latest computed one stay available to `state_at`.
    """

    def __init__(
        self,
        site: Site,
        *,
        start_ms: int,
        seed: int = 0,
        initial: Counters | None = None,
        pv_system: PvSystem | None = None,
        history_hours: int = DEFAULT_HISTORY_HOURS,
    ) -> None:
        self.site = site
        self.start_ms = start_ms
        self.seed = seed
        self.pv_system = pv_system or pv_system_of(site)
        self.load = SchoolLoad(site, seed=seed)
        self.initial = initial or default_counters(site, start_ms=start_ms, seed=seed)
        self._history_chunks = max(1, history_hours * 3600 // CHUNK_STEPS) + 1
        self._chunks: OrderedDict[int, _Chunk] = OrderedDict()
        self._next_chunk = 0
        self._next_start = (
            round(self.initial.pv_energy_wh * WMS_PER_WH),
            round(self.initial.import_wh * WMS_PER_WH),
            round(self.initial.export_wh * WMS_PER_WH),
        )

    def state_at(self, ts_ms: int) -> SchoolState:
        """The powers and counters at `ts_ms`.

        Parameters
        ----------
        ts_ms : int
            A moment at or after `start_ms` [epoch ms], and no older than the kept history.

        Returns
        -------
        SchoolState
            Powers of the step containing `ts_ms`; counters interpolated linearly within the step.

        Raises
        ------
        ValueError
            If `ts_ms` is before the start or older than the kept history.
        """
        if ts_ms < self.start_ms:
            raise ValueError(f"{ts_ms} is before the model's start {self.start_ms}")
        step, into_step_ms = divmod(ts_ms - self.start_ms, STEP_MS)
        chunk_index, step_in_chunk = divmod(step, CHUNK_STEPS)
        chunk = self._chunk(chunk_index)
        pv_wms, import_wms, export_wms = chunk.counters_after(step_in_chunk)
        pv_w = int(chunk.pv_w[step_in_chunk])
        load_w = int(chunk.load_w[step_in_chunk])
        grid_w = load_w - pv_w
        return SchoolState(
            ts_ms=ts_ms,
            pv_power_w=float(pv_w),
            pv_energy_wh=(pv_wms + pv_w * into_step_ms) / WMS_PER_WH,
            load_w=float(load_w),
            grid_power_w=float(grid_w),
            import_wh=(import_wms + max(grid_w, 0) * into_step_ms) / WMS_PER_WH,
            export_wh=(export_wms + max(-grid_w, 0) * into_step_ms) / WMS_PER_WH,
        )

    def temp_air_c(self, ts_ms: int) -> float:
        """Air temperature at the school [°C] (for the inverter's temperature readings)."""
        return float(temp_air_c(ts_ms / 1000.0, seed=self.seed, longitude_deg=self.site.location.lon))

    @property
    def history_start_ms(self) -> int:
        """The oldest moment `state_at` can still answer for."""
        oldest = next(iter(self._chunks), self._next_chunk)
        return self.start_ms + oldest * CHUNK_STEPS * STEP_MS

    def _chunk(self, index: int) -> _Chunk:
        while self._next_chunk <= index:
            self._append_next_chunk()
        chunk = self._chunks.get(index)
        if chunk is None:
            raise ValueError(
                f"{self.start_ms + index * CHUNK_STEPS * STEP_MS} is older than the kept history, "
                f"which starts at {self.history_start_ms}"
            )
        return chunk

    def _append_next_chunk(self) -> None:
        step_starts_ms = self.start_ms + (self._next_chunk * CHUNK_STEPS + np.arange(CHUNK_STEPS)) * STEP_MS
        epoch_s = step_starts_ms / 1000.0
        clearness = clearness_factor(epoch_s, seed=self.seed)
        temperature = temp_air_c(epoch_s, seed=self.seed, longitude_deg=self.site.location.lon)
        pv_w = np.rint(pv_ac_power_w(self.pv_system, epoch_s, clearness=clearness, temp_air_c=temperature))
        load_w = np.rint(self.load.load_w(epoch_s))
        chunk = _Chunk(pv_w.astype(np.int32), load_w.astype(np.int32), *self._next_start)
        self._chunks[self._next_chunk] = chunk
        self._next_start = chunk.counters_after(CHUNK_STEPS)
        self._next_chunk += 1
        while len(self._chunks) > self._history_chunks:
            self._chunks.popitem(last=False)
