"""The Raspberry Pi's install files: the unit restarts the agent as an unprivileged user and waits for the
clock at boot, systemd itself accepts it and rates its exposure OK, every setting of the agent's environment
file is one the agent reads, the journal is bounded, and the install script parses."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import typer

from edge.cli import app
from tests import servers
from tests.conftest import REPO

PI = REPO / "firmware-config" / "pi"


def unit(path: Path = PI / "lokalnie-edge.service") -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_the_agent_waits_for_the_clock_at_boot_but_not_for_ever() -> None:
    """A Pi has no battery clock: the agent starts once the kernel's clock is synchronised (time-sync.target,
    held back by systemd-time-wait-sync, which install.sh enables), or after five minutes without internet."""
    assert "time-sync.target" in unit()["Unit"]["After"].split()
    drop_in = PI / "systemd-time-wait-sync.service.d" / "lokalnie.conf"
    assert unit(drop_in)["Service"]["TimeoutStartSec"] == "300"
    script = (PI / "install.sh").read_text()
    assert "systemctl enable systemd-time-wait-sync.service" in script
    assert "/etc/systemd/system/systemd-time-wait-sync.service.d/lokalnie.conf" in script


def test_the_unit_restarts_an_unprivileged_agent() -> None:
    service = unit()["Service"]
    assert service["User"] == "lokalnie" and service["Group"] == "lokalnie"
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
    assert service["ExecStart"].endswith("/opt/lokalnie/venv/bin/python -m edge run")
    files = [line.split("=", 1)[1] for line in (PI / "lokalnie-edge.service").read_text().splitlines()
             if line.startswith("EnvironmentFile=")]  # fmt: skip
    assert files == ["/etc/lokalnie/agent.env", "/etc/lokalnie/edge.env"], (
        "the agent's settings, the city's secrets"
    )
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert "dialout" in service["SupplementaryGroups"]
    assert unit()["Unit"]["StartLimitIntervalSec"] == "0", "never give up restarting"


def test_every_setting_of_the_environment_files_is_read_by_the_agent() -> None:
    command = typer.main.get_command(app)
    run = command.commands["run"]  # type: ignore[attr-defined]
    accepted = {param.envvar for param in run.params if param.envvar}
    lines = [
        line
        for line in (PI / "agent.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    names = {line.split("=", 1)[0] for line in lines}
    assert names - {"LOKALNIE_LOG_LEVEL"} <= accepted, names - accepted
    assert "LOKALNIE_SITE" in names
    # What the city's edge.env holds (cloud.broker.credentials writes it), and the client certificate's pair.
    assert {"MQTT_URL", "MQTT_CA_FILE", "MQTT_CERT_FILE", "MQTT_KEY_FILE"} <= accepted


def test_the_journal_is_bounded_and_the_script_parses() -> None:
    journal = (PI / "journald.conf.d" / "lokalnie.conf").read_text()
    assert "SystemMaxUse=64M" in journal and "MaxRetentionSec=" in journal
    subprocess.run(["bash", "-n", str(PI / "install.sh")], check=True)


def test_systemd_accepts_the_unit_and_rates_its_exposure_ok(tmp_path: Path) -> None:
    analyze = servers.require("systemd-analyze")
    # The Pi's interpreter, here this one: verify checks that the command exists.
    text = (PI / "lokalnie-edge.service").read_text().replace("/opt/lokalnie/venv/bin/python", sys.executable)
    path = tmp_path / "lokalnie-edge.service"
    path.write_text(text)
    verify = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    # An unknown or misspelt directive is only a warning, naming the unit: any such line fails (lines about
    # the machine, such as a missing /run/systemd in a container, do not).
    about_the_unit = [line for line in verify.stderr.splitlines() if path.name in line]
    assert (verify.returncode, about_the_unit) == (0, []), verify.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(path)], capture_output=True, text=True, timeout=60
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", security.stdout)
    assert found is not None, security.stdout + security.stderr
    assert float(found.group(1)) <= 4.0 and found.group(2) == "OK", security.stdout
