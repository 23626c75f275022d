"""The Docker Compose demo is consistent with the repository.

No Docker engine is needed: the compose file's mounts and build contexts must exist,
the simulator must accept its demo profile, the demo machines it plays must be the
ones the Odoo start script creates, and the broker must keep messages for the leader.
"""

import json
import re
import subprocess
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


def _demo_conf():
    conf = (REPO / "docker/odoo/demo.conf").read_text()
    return {
        key.strip(): value.strip()
        for key, value in re.findall(r"^(\w+)\s*=\s*(.*)$", conf, re.MULTILINE)
    }


def _proxy_locations():
    """location path -> the upstream's ``host:port`` it passes to."""
    conf = (REPO / "docker/nginx/odoo.conf").read_text()
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*{\s*server\s+([\w.:-]+);", conf))
    return {
        path: upstreams[name]
        for path, name in re.findall(r"location\s+(\S+)\s*{[^}]*?proxy_pass\s+http://(\w+);", conf)
    }


def test_the_proxy_routes_the_websocket_to_the_gevent_port():
    """With HTTP workers, only the gevent process answers /websocket: the live views
    need the proxy to send it there, and the rest to the workers."""
    conf = _demo_conf()
    assert int(conf["workers"]) >= 1
    gevent_port = conf.get("gevent_port", "8072")
    http_port = conf.get("http_port", "8069")
    assert _proxy_locations() == {
        "/websocket": f"odoo:{gevent_port}",
        "/": f"odoo:{http_port}",
    }
    assert conf["proxy_mode"] == "True"
    text = (REPO / "docker/nginx/odoo.conf").read_text()
    websocket = text[text.index("location /websocket") :]
    websocket = websocket[: websocket.index("}")]
    assert "proxy_http_version 1.1;" in websocket
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket
    assert "proxy_set_header Connection $connection_upgrade;" in websocket


def test_users_reach_odoo_only_through_the_proxy():
    services = COMPOSE["services"]
    proxy = services["proxy"]
    assert "8069:80" in proxy["ports"]
    assert "odoo" in proxy["depends_on"]
    mounted = {volume.split(":")[1] for volume in proxy["volumes"]}
    assert "/etc/nginx/conf.d/default.conf" in mounted
    # Odoo's own port published too would bypass the proxy and its websocket route.
    assert not services["odoo"].get("ports")
