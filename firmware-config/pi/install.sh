#!/usr/bin/env bash
# Install the lokalnie edge agent on a school's Raspberry Pi (Raspberry Pi OS / Debian 12).
# Run from a copy of the lokalnie repository: sudo firmware-config/pi/install.sh
# It creates the unprivileged user `lokalnie`, installs the agent in /opt/lokalnie/venv, the systemd unit and
# the journal limits, and prepares /etc/lokalnie for the site file and the credentials. It does not start the
# agent: first put the site file and the credentials in place and run `check` (see README.md).
set -euo pipefail
[[ $(id -u) -eq 0 ]] || { echo "run me with sudo" >&2; exit 1; }
source_dir=$(cd "$(dirname "$0")/../.." && pwd)

apt-get install -y --no-install-recommends python3 python3-venv >/dev/null
id lokalnie >/dev/null 2>&1 || useradd --system --home-dir /var/lib/lokalnie --shell /usr/sbin/nologin lokalnie
usermod -a -G dialout lokalnie

mkdir -p /opt/lokalnie
cp -a "$source_dir/." /opt/lokalnie/
python3 -m venv /opt/lokalnie/venv
/opt/lokalnie/venv/bin/pip install --quiet --upgrade pip
# Only the agent's extra (the Pi runs neither the cloud nor the simulators), editable: the agent finds the
# device profiles in /opt/lokalnie/firmware-config/profiles beside its code.
/opt/lokalnie/venv/bin/pip install --quiet -c /opt/lokalnie/constraints.txt -e "/opt/lokalnie[edge]"

install -d -m 0755 /etc/lokalnie
[[ -e /etc/lokalnie/agent.env ]] || install -m 0644 /opt/lokalnie/firmware-config/pi/agent.env.example \
  /etc/lokalnie/agent.env
install -d -m 0750 -o lokalnie -g lokalnie /var/lib/lokalnie

install -m 0644 /opt/lokalnie/firmware-config/pi/lokalnie-edge.service /etc/systemd/system/lokalnie-edge.service
# Start the agent only once the clock is synchronised, waiting at most five minutes (see the drop-in).
install -d /etc/systemd/system/systemd-time-wait-sync.service.d
install -m 0644 /opt/lokalnie/firmware-config/pi/systemd-time-wait-sync.service.d/lokalnie.conf \
  /etc/systemd/system/systemd-time-wait-sync.service.d/lokalnie.conf
install -d /etc/systemd/journald.conf.d
install -m 0644 /opt/lokalnie/firmware-config/pi/journald.conf.d/lokalnie.conf /etc/systemd/journald.conf.d/lokalnie.conf
systemctl restart systemd-journald
systemctl daemon-reload
systemctl enable systemd-time-wait-sync.service lokalnie-edge.service >/dev/null

echo "Installed. Next: /etc/lokalnie/<school>.yaml and agent.env; the city's edge.env and ca.crt; then"
echo "  sudo -u lokalnie /opt/lokalnie/venv/bin/python -m edge check --site /etc/lokalnie/<school>.yaml"
echo "  sudo systemctl start lokalnie-edge"
