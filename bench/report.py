"""How every benchmark reports: print the figures and write them to ``bench/results/<name>.json``.

Each result compares the measured value with a baseline measured in the same run on the same machine
(ratios are stable on a noisy machine, absolute times are not).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def report(
    name: str,
    metric: str,
    value: float,
    unit: str,
    baseline: float,
    *,
    baseline_name: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print one result and write it to ``bench/results/<name>.json``; the ratio is value / baseline."""
    result = {
        "metric": metric,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": value / baseline if baseline else None,
        "machine": machine(),
        **({"details": details} if details else {}),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    ratio = f"{result['ratio']:.3f}" if result["ratio"] is not None else "n/a"
    print(
        f"{name}: {metric} = {value:.4g} {unit}; "
        f"baseline ({baseline_name}) = {baseline:.4g} {unit}; ratio {ratio}"
    )
    return result
