"""The Docker Compose demo is consistent with the repository.

No Docker engine is needed: the compose file's mounts and build contexts must exist,
the simulator must accept its demo profile, the demo machines it plays must be the
ones the Odoo start script creates, the broker must keep messages for the leader,
the ports are published on the loopback only, and the start script says when Odoo
answers (against a stand-in for Odoo). Compose v2 itself validates the file in
scripts/lint (`docker compose config`).
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ows_iot.services.simulator import load_profile

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_bind_mounts_and_build_contexts_exist():
    for name, service in COMPOSE["services"].items():
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source}"


def test_simulator_plays_the_machines_the_start_script_creates():
    profile = load_profile(str(REPO / "docker/simulator/demo.json"))
    played = {device.device_id for device in profile.devices}
    start_script = (REPO / "docker/odoo/start.sh").read_text()
    created = set(re.findall(r'"device_id": "([^"]+)"', start_script))
    assert played == created
    assert subprocess.run(["bash", "-n", str(REPO / "docker/odoo/start.sh")]).returncode == 0


def test_broker_keeps_messages_across_a_failover():
    conf = (REPO / "docker/mosquitto/mosquitto.conf").read_text()
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings["persistence"].strip() == "true"
    assert int(settings["max_queued_messages"]) >= 10_000


def test_odoo_loads_the_addon_server_wide():
    conf = (REPO / "docker/odoo/demo.conf").read_text()
    match = re.search(r"^server_wide_modules\s*=\s*(.+)$", conf, re.MULTILINE)
    assert match and "ows_iot" in [m.strip() for m in match.group(1).split(",")]
    assert json.loads((REPO / "docker/simulator/demo.json").read_text())


def test_ports_are_published_on_the_loopback_only():
    # The demo broker accepts anonymous clients and the demo Odoo has default passwords.
    published = [
        (name, port) for name, service in COMPOSE["services"].items()
        for port in service.get("ports", [])
    ]  # fmt: skip
    assert published
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


FAKE_ODOO = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/web/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "pass"}')
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_start_script_says_when_odoo_is_ready_and_where_to_log_in(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fake = tmp_path / "fake_odoo.py"
    fake.write_text(FAKE_ODOO)
    (tmp_path / ".ows_iot_installed_ows").touch()  # installed: straight to serving
    env = dict(
        os.environ,
        # start.sh adds "-c CONF -d DB" after the binary: the fake takes the port first.
        ODOO_BIN=f"{sys.executable} {fake} {port}",
        OWS_IOT_DATA_DIR=str(tmp_path),
        OWS_IOT_HEALTH_URL=f"http://127.0.0.1:{port}/web/health",
        OWS_IOT_DEMO_URL="http://localhost:18069",
    )
    script = subprocess.Popen(
        ["bash", str(REPO / "docker/odoo/start.sh")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = script.stdout.readline()
            lines.append(line)
            if "Odoo is ready" in line:
                break
        assert "Odoo is ready: open http://localhost:18069 and log in as admin / admin" in "".join(
            lines
        ), lines
    finally:
        os.killpg(script.pid, signal.SIGTERM)
        script.wait(10)
