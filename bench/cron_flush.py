"""Cost of the minute cron's flush of running sessions, against plain SQL.

Creates ``--sessions`` devices, each with a running session and its engine
snapshot (through the real engine and ``ows.iot.event.ingest_events``), then, in
the same run, times

- the cron's flush (``ows.iot.runtime._ows_flush_running``): totals held to now from
  every snapshot, one bulk UPDATE, hours and billing recomputed by the ORM;
- a plain ``UPDATE mqtt_session ... WHERE id = %s`` per session setting the same
  columns (what a hand-written loop would do).

Prints the time per session of each and their ratio; the goal is <= 3.

    python bench/cron_flush.py [--sessions 10000] [--repeat 3]

Needs Odoo 18 (importable) and PostgreSQL (OWS_IOT_DB_HOST/PORT/USER/PASSWORD).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ows_iot.tests.e2e.harness import (  # noqa: E402
    copy_database,
    drop_database,
    install_template,
    odoo_command,
    odoo_missing,
    pg_available,
    unique_name,
)

SCRIPT = """
import json, time
from odoo.addons.ows_iot.services.ingestor import Ingestor

N, REPEAT = {sessions}, {repeat}
env = env(context=dict(env.context, tracking_disable=True, mail_create_nolog=True))
t0 = time.time() - 3600
started = time.perf_counter()
devices = env["mqtt.device"].create([
    {{"name": f"bench {{i}}", "device_id": f"bench-{{i:05d}}", "mqtt_topic": f"bench/{{i:05d}}",
      "message_timeout_s": 1_000_000, "heartbeat_interval_s": 1_000_000}}
    for i in range(N)
])
events, states = [], []
for device in devices:
    ingestor = Ingestor([device._ows_engine_config()])
    for offset, watts in ((0, 300.0), (4, 300.0), (9, 45.0)):
        frame = json.dumps({{
            "src": device.device_id, "method": "NotifyStatus",
            "params": {{"ts": t0 + offset, "pm1:0": {{"id": 0, "apower": watts}}}},
        }}).encode()
        events += [e.to_dict() for e in ingestor.process(
            f"{{device.mqtt_topic}}/events/rpc", frame, t0 + offset)]
    states.append((device.id, json.dumps(ingestor.snapshot_device(device.device_id))))
Event = env["ows.iot.event"]
for start in range(0, len(events), 2000):
    Event.ingest_events(events[start:start + 2000])
env.flush_all()
for start in range(0, len(states), 1000):
    chunk = states[start:start + 1000]
    env.cr.execute(
        "UPDATE mqtt_device d SET engine_state = v.s::jsonb FROM (VALUES "
        + ", ".join(["(%s, %s)"] * len(chunk)) + ") AS v(id, s) WHERE d.id = v.id",
        [x for row in chunk for x in row],
    )
env.cr.execute("UPDATE mqtt_session SET write_date = write_date - interval '1 hour'")
env.cr.commit()
setup_s = time.perf_counter() - started
env.cr.execute("SELECT count(*) FROM mqtt_session WHERE status = 'running'")
running = env.cr.fetchone()[0]

Runtime = env["ows.iot.runtime"]
flush, plain = [], []
for round_ in range(REPEAT):
    env.invalidate_all()
    started = time.perf_counter()
    flushed = Runtime._ows_flush_running(time.time(), min_age_s=0)
    env.cr.commit()
    flush.append(time.perf_counter() - started)
    env.cr.execute("SELECT id FROM mqtt_session WHERE status = 'running'")
    ids = [row[0] for row in env.cr.fetchall()]
    started = time.perf_counter()
    for session_id in ids:
        env.cr.execute(
            "UPDATE mqtt_session SET working_duration_s = %s, standby_duration_s = %s, "
            "total_duration_s = %s, energy_wh = %s, avg_power_w = %s, current_power_w = %s, "
            "peak_power_w = %s, current_state = %s, write_date = now() at time zone 'UTC' "
            "WHERE id = %s",
            (9.0, 3600.0 + round_, 3609.0 + round_, 50.0, 50.0, 45.0, 300.0, "standby",
             session_id),
        )
    env.cr.commit()
    plain.append(time.perf_counter() - started)
print("OWS_BENCH " + json.dumps({{
    "sessions": running, "flushed": flushed, "setup_s": setup_s,
    "flush_s": min(flush), "plain_s": min(plain),
}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--template", help="an installed ows_iot database to copy instead of installing one"
    )
    args = parser.parse_args()
    reason = odoo_missing() or pg_available()
    if reason:
        print(f"cron_flush: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ows-bench-flush-"))
    dbname = unique_name("ows_bench_flush")
    try:
        if args.template:
            copy_database(args.template, dbname)
        else:
            print("installing ows_iot into a fresh database ...", file=sys.stderr)
            install_template(dbname, work / "data", work / "install.log")
        print(f"creating {args.sessions} running sessions ...", file=sys.stderr)
        command = odoo_command(dbname, work / "data", "--no-http", "--log-level=warn")
        command.insert(3, "shell")
        result = subprocess.run(
            command,
            input=SCRIPT.format(sessions=args.sessions, repeat=args.repeat),
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("OWS_BENCH ")]
        if result.returncode != 0 or not lines:
            print(f"cron_flush: the Odoo shell failed:\n{result.stderr[-3000:]}", file=sys.stderr)
            return 1
        figures = json.loads(lines[-1].split(" ", 1)[1])
    finally:
        drop_database(dbname)
    count = figures["sessions"]
    flush_ms = figures["flush_s"] / count * 1000
    plain_ms = figures["plain_s"] / count * 1000
    print(f"running sessions:            {count} (set up in {figures['setup_s']:.0f} s)")
    print(f"sessions flushed:            {figures['flushed']}")
    print(f"cron flush:                  {figures['flush_s']:.2f} s  ({flush_ms:.3f} ms/session)")
    print(f"plain UPDATE per row:        {figures['plain_s']:.2f} s  ({plain_ms:.3f} ms/session)")
    print(f"ratio flush / plain (goal <= 3): {flush_ms / plain_ms:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
