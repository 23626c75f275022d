"""A live Odoo server for the REST API tests: fresh database, devices, users and API keys.

The installed template of conftest.py (``odoo_template``) is copied once per run and
given the API's devices, users and keys; every test module gets its own copy of that
and its own server process on a free port.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import (
    REPO_ROOT,
    OdooServer,
    copy_database,
    drop_database,
    odoo_command,
    unique_name,
)

# The devices of the document's examples exist, so that its examples are accepted.
DEVICE_A = "shellypmminig3-48f6eeb73a1c"
DEVICE_A2 = "shellyplug-s-7c87ceb4a1b2"
DEVICE_B = "shellyplus1pm-b0b0b0b0b0b0"

# Run inside ``odoo shell``: the keys come from the ORM, as a user creates them.
SETUP_SCRIPT = f"""
import json
from odoo import Command
env = env(context=dict(env.context, tracking_disable=True, no_reset_password=True))
company_a = env.ref("base.main_company")
company_b = env["res.company"].create({{"name": "Second Workshop"}})
Device = env["mqtt.device"]
for name, device_id, company in (
    ("Shaper Origin", {DEVICE_A!r}, company_a),
    ("Plug printer", {DEVICE_A2!r}, company_a),
    ("Laser B", {DEVICE_B!r}, company_b),
):
    Device.create({{"name": name, "device_id": device_id, "mqtt_topic": device_id,
                   "company_id": company.id}})
def user(login, group, company):
    return env["res.users"].create({{
        "name": login, "login": login, "company_id": company.id,
        "company_ids": [Command.set(company.ids)],
        "groups_id": [Command.set([env.ref("base.group_user").id, env.ref(group).id])],
    }})
def key(user):
    return env["res.users.apikeys"].with_user(user).sudo()._generate("ows_iot", "e2e", None)
keys = {{
    "manager": key(user("e2e_manager", "ows_iot.group_ows_iot_manager", company_a)),
    "manager_b": key(user("e2e_manager_b", "ows_iot.group_ows_iot_manager", company_b)),
    "iot_user": key(user("e2e_iot_user", "ows_iot.group_ows_iot_user", company_a)),
}}
env.cr.commit()
print("OWS_IOT_KEYS " + json.dumps(keys))
"""


@dataclass
class LiveApi:
    server: OdooServer
    keys: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def dbname(self) -> str:
        return self.server.dbname


_template: dict = {}


def _copy_when_free(template: str, name: str, attempts: int = 30) -> None:
    """Copy ``template``; PostgreSQL refuses while another run is copying it too."""
    import psycopg2  # only needed once PostgreSQL is known to answer

    for _attempt in range(attempts - 1):
        try:
            return copy_database(template, name)
        except psycopg2.errors.ObjectInUse:
            time.sleep(2)
    return copy_database(template, name)


def api_template(request: pytest.FixtureRequest, odoo_template: str, data_dir: Path) -> dict:
    """The API's template (database name and keys), built once per run."""
    if _template:
        return _template
    dbname = unique_name("ows_api_template")
    _copy_when_free(odoo_template, dbname)
    request.config.add_cleanup(lambda: drop_database(dbname))
    command = odoo_command(dbname, data_dir, "--no-http", "--log-level=warn")
    command.insert(3, "shell")
    result = subprocess.run(
        command, input=SETUP_SCRIPT, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("OWS_IOT_KEYS ")]
    if result.returncode != 0 or not lines:
        pytest.fail(f"setting up the API users failed:\n{result.stderr[-4000:]}", pytrace=False)
    _template.update(dbname=dbname, keys=json.loads(lines[-1].split(" ", 1)[1]))
    return _template


def live_api(request: pytest.FixtureRequest, tmp_path_factory, odoo_template: str, name: str):
    """Generator for a module fixture: a running server on a copy of the API's template."""
    root = tmp_path_factory.getbasetemp() / "ows_api"
    root.mkdir(exist_ok=True)
    template = api_template(request, odoo_template, root / "data")
    dbname = unique_name(f"ows_api_{name}")
    copy_database(template["dbname"], dbname)
    server = OdooServer(dbname, root / name, name=name)
    try:
        server.start()
        yield LiveApi(server, template["keys"])
    finally:
        server.stop()
        drop_database(dbname)
