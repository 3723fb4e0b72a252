"""`lokalnie demo` runs the whole system on one machine and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lokalnie.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text`` (the demo's own run directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


def what_the_demo_said(demo: subprocess.Popen[bytes], work_dir: Path) -> str:
    """The demo's own error output and the end of each of its processes' logs, for a failure's message."""
    if demo.poll() is None:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(30)
    said = demo.stderr.read().decode(errors="replace")[-2000:] if demo.stderr else ""
    for log in sorted(work_dir.glob("*/logs/*.log")):
        if log.stem in ("api", "ingest", "mosquitto", "sim", "edge-sp5"):
            said += f"\n--- {log.stem}\n" + log.read_text(errors="replace")[-1500:]
    return said


def live_views(api: httpx.Client) -> dict[str, dict[str, object]]:
    schools = api.get("/api/v1/schools").json()
    return {school["id"]: api.get(f"/api/v1/schools/{school['id']}/live").json() for school in schools}


def test_demo_shows_sixteen_sunny_schools_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lokalnie",
            "demo",
            "--speed",
            "120",
            "--start",
            "2026-06-15T10:00:00",
            "--port",
            str(port),
            "--work-dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        first: dict[str, dict[str, object]] = {}
        views: dict[str, Any] = {}
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
            while time.monotonic() < deadline:
                time.sleep(1)
                try:
                    views = live_views(api)
                except httpx.HTTPError:
                    continue
                ready = len(views) == 16 and all(
                    view["link"]["state"] == "online" and (view["pv_power_w"] or 0) > 0  # type: ignore[index]
                    for view in views.values()
                )
                if ready and not first:
                    first = views
                elif ready and all(
                    views[school]["today_pv_wh"] > first[school]["today_pv_wh"]  # type: ignore[operator]
                    for school in views
                ):
                    break
            else:
                pytest.fail(
                    "the demo never showed 16 sunny, online schools with rising energy: "
                    f"{views}\n{what_the_demo_said(demo, tmp_path)}"
                )
        assert processes_mentioning(str(tmp_path)), "the demo's processes run from its work directory"
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(30) == 0, demo.stderr.read() if demo.stderr else ""
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    time.sleep(0.5)
    assert processes_mentioning(str(tmp_path)) == [], "no process of the demo is left behind"
