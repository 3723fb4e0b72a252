"""The installer's tools on the command line, against simulated devices: ``check`` and ``probe``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from common.clock import ManualClock
from lokalnie.cli import app
from tests.edge.conftest import NOON_MS, device, school, simulator_thread, write_site

pytestmark = pytest.mark.timeout(60)


def test_check_says_which_device_reads_well(tmp_path: Path) -> None:
    site = school([device("inverter", "huawei-sun2000"), device("meter", "eastron-sdm630")])
    site_file = write_site(site, tmp_path / "sites")
    with simulator_thread(site, ManualClock(NOON_MS)) as simulator:
        healthy = CliRunner().invoke(app, ["edge", "check", "--site", str(site_file)])
        simulator.devices["meter"].faults.garbage = True
        garbled = CliRunner().invoke(app, ["edge", "check", "--site", str(site_file)])
    assert healthy.exit_code == 0, healthy.output
    assert "OK inverter (huawei-sun2000, unit 1)" in healthy.output
    assert "identity: SUN2000-40KTL-M1 SIM-sp5-1" in healthy.output
    assert "OK meter (eastron-sdm630, unit 1)" in healthy.output and "import_wh = " in healthy.output
    assert garbled.exit_code == 1
    assert "PROBLEM meter" in garbled.output and "implausible values" in garbled.output


def test_check_refuses_a_site_that_does_not_validate(tmp_path: Path) -> None:
    site_file = write_site(school([device("meter", "no-such-meter")]), tmp_path / "sites")
    result = CliRunner().invoke(app, ["edge", "check", "--site", str(site_file)])
    assert result.exit_code == 2 and "profile 'no-such-meter' does not exist" in result.output


def test_probe_decodes_a_sunspec_inverter_and_a_huawei(tmp_path: Path) -> None:
    site = school([device("inverter", "sunspec-inverter"), device("second", "huawei-sun2000")])
    ports = [d.transport.port for d in site.devices]  # type: ignore[union-attr]
    with simulator_thread(site, ManualClock(NOON_MS)):
        sunspec = CliRunner().invoke(app, ["edge", "probe", f"127.0.0.1:{ports[0]}", "--timeout", "0.5"])
        huawei = CliRunner().invoke(app, ["edge", "probe", f"127.0.0.1:{ports[1]}", "--timeout", "0.5"])
        nobody = CliRunner().invoke(app, ["edge", "probe", "127.0.0.1:1", "--timeout", "0.2"])
    words = " ".join(sunspec.output.split())
    assert sunspec.exit_code == 0, sunspec.output
    assert "SunSpec map at register 40000: 2 models" in words
    assert "model 103 at 40070 (length 50)" in words and "│ St │ 4 │ │ MPPT │" in words
    assert "Values read with profile sunspec-inverter" in words
    huawei_words = " ".join(huawei.output.split())
    assert "No SunSpec marker" in huawei_words and "Values read with profile huawei-sun2000" in huawei_words
    assert nobody.exit_code == 1 and "cannot connect" in nobody.output
