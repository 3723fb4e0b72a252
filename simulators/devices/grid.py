"""Conditions of the low-voltage grid at a school: phase voltages and frequency.

Both devices of a school see the same grid, so both take their voltages and frequency from here.
"""

from __future__ import annotations

import numpy as np

from simulators.weather import value_noise

NOMINAL_PHASE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0
# Voltage rise at the connection point per watt exported (a 30 kW export lifts it by 1.5 V).
VOLTAGE_RISE_V_PER_W = 5e-5
_STREAM_VOLTAGE = 21
_STREAM_FREQUENCY = 24


def phase_voltages_v(ts_ms: int, grid_power_w: float, *, seed: int) -> tuple[float, float, float]:
    """Voltages of L1, L2, L3 against neutral [V].

    Notes
    -----
    :math:`V = 230 + 4 (n_{10min} - 0.5) - 5\\cdot10^{-5} P_{grid}`: a slow wander of a few volts per
    phase and a rise while the school exports.
    """
    rise_v = -VOLTAGE_RISE_V_PER_W * grid_power_w
    streams = np.arange(_STREAM_VOLTAGE, _STREAM_VOLTAGE + 3)
    wander = 4.0 * (value_noise(ts_ms / 1000.0, 600.0, seed=seed, stream=streams) - 0.5)
    level_a, level_b, level_c = (float(volts) for volts in NOMINAL_PHASE_V + wander + rise_v)
    return level_a, level_b, level_c


def frequency_hz(ts_ms: int, *, seed: int) -> float:
    """Grid frequency [Hz]: 50 Hz with the wander of a few tens of millihertz of the European grid."""
    noise = float(value_noise(ts_ms / 1000.0, 60.0, seed=seed, stream=_STREAM_FREQUENCY))
    return NOMINAL_FREQUENCY_HZ + 0.04 * (noise - 0.5)


def line_voltage_v(phase_a_v: float, phase_b_v: float) -> float:
    """Voltage between two phases 120° apart [V]."""
    return float(np.sqrt(phase_a_v**2 + phase_b_v**2 + phase_a_v * phase_b_v))
