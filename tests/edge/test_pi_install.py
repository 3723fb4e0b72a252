"""The Raspberry Pi's install files: the unit restarts the agent as an unprivileged user, every setting of the
agent's environment file is one the agent reads, the journal is bounded, and the install script parses."""

from __future__ import annotations

import configparser
import subprocess

import typer

from edge.cli import app
from tests.conftest import REPO

PI = REPO / "firmware-config" / "pi"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((PI / "lokalnie-edge.service").read_text())
    return parser


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
