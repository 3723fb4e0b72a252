"""The reverse proxy's configuration (deploy/caddy/Caddyfile) run by a real Caddy (Debian's package): what it
writes to its access log keeps a resident's status-link secret out.

Caddy adapts the Caddyfile to its JSON configuration exactly as in the container; only the listeners (a
loopback port over plain HTTP instead of 443 with certificates from Let's Encrypt) and the upstream (a local
server standing for the API container) are replaced.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lokalnie.ports import free_port
from tests import servers
from tests.deploy.test_config import DEPLOY

CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
API_DOMAIN = "api.lokalnie.example.test"
ENVIRONMENT = {
    "LOKALNIE_API_DOMAIN": API_DOMAIN,
    "LOKALNIE_GRAFANA_DOMAIN": "grafana.lokalnie.example.test",
    "LOKALNIE_ACME_EMAIL": "it@example.test",
}
SECRET = "Zq8v3kT1sPHxW0yLrN5cJm"


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"submitted"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads Caddy's log, not this one."""


@pytest.fixture
def api_port() -> Iterator[int]:
    """A local HTTP server standing for the API container."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def replace_upstreams(node: Any, upstream: str) -> None:
    """Point every reverse_proxy at ``upstream`` instead of a container's name."""
    if isinstance(node, dict):
        if "dial" in node and isinstance(node["dial"], str):
            node["dial"] = upstream
        for value in node.values():
            replace_upstreams(value, upstream)
    elif isinstance(node, list):
        for value in node:
            replace_upstreams(value, upstream)


def local_configuration(port: int, upstream: str) -> dict[str, Any]:
    caddy = servers.require("caddy")
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={**ENVIRONMENT, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    configuration: dict[str, Any] = json.loads(adapted.stdout)
    configuration["admin"] = {"disabled": True}
    configuration["apps"].pop("tls", None)
    (server,) = configuration["apps"]["http"]["servers"].values()
    server["listen"] = [f"127.0.0.1:{port}"]
    server["automatic_https"] = {"disable": True}
    replace_upstreams(server["routes"], upstream)
    return configuration


def test_the_access_log_keeps_the_status_link_secret_out(tmp_path: Path, api_port: int) -> None:
    port = free_port()
    config = tmp_path / "caddy.json"
    config.write_text(json.dumps(local_configuration(port, f"127.0.0.1:{api_port}")))
    log = tmp_path / "caddy.log"
    caddy = servers.start([servers.require("caddy"), "run", "--config", str(config)], log)
    try:
        servers.wait_for_port(port, process=caddy)
        path = f"/api/v1/smog/applications/status/{SECRET}"
        for suffix in ("", "/pdf", "?format=json"):
            answer = httpx.get(f"http://127.0.0.1:{port}{path}{suffix}", headers={"Host": API_DOMAIN})
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while log.read_text().count('"uri"') < 3:
            assert time.monotonic() < deadline, f"Caddy logged no requests:\n{log.read_text()}"
            time.sleep(0.1)
    finally:
        servers.stop_process(caddy)
    said = log.read_text()
    assert SECRET not in said
    requests = [json.loads(line)["request"] for line in said.splitlines() if '"uri"' in line]
    assert {request["uri"] for request in requests} == {
        "/api/v1/smog/applications/status/…",
        "/api/v1/smog/applications/status/…/pdf",
        "/api/v1/smog/applications/status/…?format=json",
    }
