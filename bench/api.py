"""Events per second committed through the REST API against the in-process ingestion.

Installs ows_iot into a fresh database, starts a real Odoo server (threaded) on a free
port and, in the same run, commits the same kind of events four ways:

- ``POST /ows/iot/event`` one event per request (one client, sequential);
- ``POST /ows/iot/event`` batches of ``--batch`` events;
- ``ows.iot.event.ingest_events`` in an Odoo process, one event per call and commit;
- ``ows.iot.event.ingest_events`` in an Odoo process, ``--batch`` events per call.

Each way gets its own sessions (the same shape, new uids), so nothing is a duplicate.
Prints events/s and the ratio of each API mode to the in-process method at the same
granularity (the cost of HTTP, authentication and validation).

    python bench/api.py [--events 1000] [--batch 100]

Needs Odoo 18 (importable) and PostgreSQL (OWS_IOT_DB_HOST/PORT/USER/PASSWORD).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from ows_iot.tests.e2e.api_live import DEVICE_A, DEVICE_A2, SETUP_SCRIPT  # noqa: E402
from ows_iot.tests.e2e.harness import (  # noqa: E402
    OdooServer,
    drop_database,
    install_template,
    odoo_command,
    odoo_missing,
    pg_available,
    query,
    unique_name,
)

T0 = 1_767_250_800.0  # 2026-01-01 07:00 UTC
# Per session: start, four heartbeats, two state changes, stop (as the engine writes).
SESSION_SHAPE = [
    ("session_started", 3, None),
    ("state_changed", 60, None),
    ("session_heartbeat", 300, None),
    ("state_changed", 420, None),
    ("session_heartbeat", 600, None),
    ("session_heartbeat", 900, None),
    ("session_heartbeat", 1200, None),
    ("session_stopped", 1515, 1500),
]

# Run inside ``odoo shell``: times ingest_events as the API's user, one commit per call.
IN_PROCESS_SCRIPT = """
import json, time
events = json.load(open({path!r}))
batch = {batch}
manager = env["res.users"].search([("login", "=", "e2e_manager")])
Event = env["ows.iot.event"].with_user(manager).with_context(
    allowed_company_ids=manager.company_ids.ids)
created = 0
start = time.perf_counter()
for index in range(0, len(events), batch):
    results = Event.ingest_events(events[index:index + batch])
    env.cr.commit()
    created += sum(1 for r in results if r["status"] == "created")
elapsed = time.perf_counter() - start
print("OWS_IOT_BENCH " + json.dumps({{"created": created, "seconds": elapsed}}))
"""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def make_events(count: int, label: str) -> list[dict]:
    """``count`` session events of realistic shape, unique to ``label``."""
    events: list[dict] = []
    session = 0
    while len(events) < count:
        device = (DEVICE_A, DEVICE_A2)[session % 2]
        start = T0 + session * 2000
        session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{label}/{session}"))
        working = 0.0
        for seq, (event_type, offset, end) in enumerate(SESSION_SHAPE, start=1):
            working = min(offset, 1500) * 0.8
            payload = {
                "start": start,
                "end": None if end is None else start + end,
                "status": "completed" if end is not None else "running",
                "state": "idle" if end is not None else "working",
                "power_w": 0.0 if end is not None else 450.0,
                "working_s": working,
                "standby_s": min(offset, 1500) - working,
                "energy_wh": working * 450 / 3600,
                "start_power_w": 450.0,
                "end_power_w": 0.0 if end is not None else None,
                "avg_power_w": 400.0,
                "peak_power_w": 900.0,
                "seq": seq,
            }
            events.append(
                {
                    "event_uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{session_id}/{seq}")),
                    "event_type": event_type,
                    "device_id": device,
                    "session_id": session_id,
                    "timestamp": iso(start + offset),
                    "payload": payload,
                }
            )
        session += 1
    return events[:count]


def post_all(base_url: str, key: str, events: list[dict], batch: int | None) -> tuple[int, float]:
    """(created, seconds) posting one event per request, or lists of ``batch``."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{base_url}/ows/iot/event"
    created = 0
    start = time.perf_counter()
    if batch is None:
        for event in events:
            response = session.post(url, json=event, headers=headers, timeout=120)
            if response.status_code != 201:
                sys.exit(f"unexpected answer {response.status_code}: {response.text[:300]}")
            created += 1
    else:
        for index in range(0, len(events), batch):
            response = session.post(url, json=events[index : index + batch], headers=headers,
                                    timeout=300)  # fmt: skip
            if response.status_code != 200:
                sys.exit(f"unexpected answer {response.status_code}: {response.text[:300]}")
            created += response.json()["created"]
    return created, time.perf_counter() - start


def odoo_shell(dbname: str, data_dir: Path, script: str) -> str:
    command = odoo_command(dbname, data_dir, "--no-http", "--log-level=warn")
    command.insert(3, "shell")
    result = subprocess.run(
        command, input=script, cwd=REPO, capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        sys.exit(f"odoo shell failed:\n{result.stderr[-3000:]}")
    return result.stdout


def in_process(dbname: str, data_dir: Path, events: list[dict], batch: int) -> tuple[int, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(events, handle)
    out = odoo_shell(dbname, data_dir, IN_PROCESS_SCRIPT.format(path=handle.name, batch=batch))
    Path(handle.name).unlink()
    line = next(line for line in out.splitlines() if line.startswith("OWS_IOT_BENCH "))
    result = json.loads(line.split(" ", 1)[1])
    return result["created"], result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events per mode")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    args = parser.parse_args()
    reason = odoo_missing() or pg_available()
    if reason:
        sys.exit(f"bench/api.py needs Odoo 18 and PostgreSQL: {reason}")

    work = Path(tempfile.mkdtemp(prefix="ows_bench_api_"))
    dbname = unique_name("ows_bench_api")
    data_dir = work / "data"
    print(f"installing ows_iot into {dbname} ...", flush=True)
    server = None
    try:
        install_template(dbname, data_dir, work / "install.log")
        out = odoo_shell(dbname, data_dir, SETUP_SCRIPT)
        keys = json.loads(next(line for line in out.splitlines()
                               if line.startswith("OWS_IOT_KEYS ")).split(" ", 1)[1])  # fmt: skip
        server = OdooServer(dbname, work / "server", name="bench").start()
        base_url = f"http://127.0.0.1:{server.port}"
        # Warm up: registry, routing map, first connections.
        requests.get(f"{base_url}/ows/iot/config", timeout=300,
                     headers={"Authorization": f"Bearer {keys['manager']}"})  # fmt: skip
        warm = make_events(2 * args.batch, "warm-up")
        post_all(base_url, keys["manager"], warm[: args.batch], None)
        post_all(base_url, keys["manager"], warm[args.batch :], args.batch)

        results = {}
        print(f"POST one at a time: {args.events} events ...", flush=True)
        results["api_single"] = post_all(
            base_url, keys["manager"], make_events(args.events, "api-single"), None
        )
        print(f"POST batches of {args.batch}: {args.events} events ...", flush=True)
        results["api_batch"] = post_all(
            base_url, keys["manager"], make_events(args.events, "api-batch"), args.batch
        )
        server.stop()
        server = None
        print("in process, one event per call ...", flush=True)
        results["ingest_single"] = in_process(
            dbname, data_dir, make_events(args.events, "ingest-single"), 1
        )
        print(f"in process, {args.batch} events per call ...", flush=True)
        results["ingest_batch"] = in_process(
            dbname, data_dir, make_events(args.events, "ingest-batch"), args.batch
        )
        stored = query(dbname, "SELECT count(*) FROM ows_iot_event")[0][0]
        expected = len(warm) + 4 * args.events
        for name, (created, _seconds) in results.items():
            if created != args.events:
                sys.exit(f"{name}: {created} of {args.events} events created")
        if stored != expected:
            sys.exit(f"{stored} event rows stored, {expected} expected")

        rate = {name: created / seconds for name, (created, seconds) in results.items()}
        print()
        print(f"{'mode':<34}{'events':>8}{'seconds':>10}{'events/s':>11}")
        labels = {
            "api_single": "POST /ows/iot/event, 1 per request",
            "api_batch": f"POST /ows/iot/event, {args.batch} per req.",
            "ingest_single": "ingest_events, 1 per call+commit",
            "ingest_batch": f"ingest_events, {args.batch} per call+commit",
        }
        for name, (created, seconds) in results.items():
            print(f"{labels[name]:<34}{created:>8}{seconds:>10.2f}{rate[name]:>11.1f}")
        print()
        print(
            f"ratio API / in-process, one at a time:   {rate['api_single'] / rate['ingest_single']:.2f}"
        )
        print(
            f"ratio API / in-process, batches of {args.batch}: {rate['api_batch'] / rate['ingest_batch']:.2f}"
        )
        print(
            f"batching gain through the API:           {rate['api_batch'] / rate['api_single']:.1f}x"
        )
    finally:
        if server is not None:
            server.stop()
        drop_database(dbname)


if __name__ == "__main__":
    main()
