"""The backend's views over a year of events: 10 million event rows, 100,000 sessions.

Installs ows_iot into a throwaway database, makes ``--devices`` devices with one real
session each (through the engine and ``ows.iot.event.ingest_events``), then copies
them by SQL into ``--sessions`` sessions of ``--events-per-session`` events each, spread
over a year. It then times, as the web client asks for them (``web_search_read``,
``web_read`` and ``read_group`` with the fields of the addon's own views, as a manager
with record rules applied):

- the session list, the session pivot, a session's form and its events;
- the device kanban, a device's form and its events (the form's smart button);
- the event list, and one batch of the nightly retention cron;

first with the indexes of the addon's earlier versions (``session_id`` indexed
alone), then with ``EVENT_INDEXES`` of ``models/ows_iot_event.py``, and prints the
median of ``--repeat`` calls of each and the ratio.

    python bench/event_log.py [--sessions 100000] [--events-per-session 100]

Needs Odoo 18 (importable) and PostgreSQL (OWS_IOT_DB_HOST/PORT/USER/PASSWORD); the
default size needs about 6 GB of disk and 10 to 20 minutes.
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
    drop_database,
    install_template,
    odoo_command,
    odoo_missing,
    pg_available,
    unique_name,
)

SCRIPT = r"""
import json, statistics, sys, time
from lxml import etree
from odoo.addons.ows_iot.models.ows_iot_event import EVENT_INDEXES, PURGE_BATCH, PURGE_SQL
from odoo.addons.ows_iot.services.ingestor import Ingestor

DEVICES, SESSIONS, PER_SESSION, REPEAT = {devices}, {sessions}, {per_session}, {repeat}
cr = env.cr
root = env(context=dict(env.context, tracking_disable=True, mail_create_nolog=True))


def say(text):
    print(text, file=sys.stderr, flush=True)


def columns(table, skip=("id",)):
    cr.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = %s ORDER BY ordinal_position", (table,))
    return [name for (name,) in cr.fetchall() if name not in skip]


# -- one real session per device: the rows every copy is made of -------------------
started = time.perf_counter()
devices = root["mqtt.device"].create([
    {{"name": f"Machine {{i:03d}}", "device_id": f"bench-{{i:03d}}",
      "mqtt_topic": f"bench/{{i:03d}}"}}
    for i in range(DEVICES)
])
t0 = time.time() - 365 * 86400
events = []
for device in devices:
    ingestor = Ingestor([device._ows_engine_config()])
    for offset, watts in ((0, 0.0), (10, 800.0), (1800, 60.0), (2400, 800.0), (3600, 0.0)):
        frame = json.dumps({{"src": device.device_id, "method": "NotifyStatus",
                            "params": {{"ts": t0 + offset, "pm1:0": {{"id": 0, "apower": watts}}}}}})
        events += [e.to_dict() for e in ingestor.process(
            f"{{device.mqtt_topic}}/events/rpc", frame.encode(), t0 + offset)]
    events += [e.to_dict() for e in ingestor.advance(t0 + 4000)]
root["ows.iot.event"].ingest_events(events)
root.flush_all()

# -- copies by SQL ------------------------------------------------------------------
cr.execute("SELECT count(*), array_agg(DISTINCT status) FROM mqtt_session")
templates, statuses = cr.fetchone()
copies = max(SESSIONS // templates, 1)
say(f"{{templates}} real sessions ({{statuses}}); copying them into {{copies * templates}} "
    f"sessions of {{PER_SESSION}} events ...")
step = int(365 * 86400 / copies)
replaced = {{
    "session_id": "md5(t.session_id || '-' || k)",
    "name": "'S' || lpad((t.id * 100000 + k)::text, 10, '0')",
    "start_time": f"t.start_time + k * interval '{{step}} seconds'",
    "end_time": f"t.end_time + k * interval '{{step}} seconds'",
    "last_heartbeat": f"t.end_time + k * interval '{{step}} seconds'",
}}
session_cols = columns("mqtt_session")
cr.execute(
    f"INSERT INTO mqtt_session ({{', '.join(session_cols)}}) "
    f"SELECT {{', '.join(replaced.get(c, 't.' + c) for c in session_cols)}} "
    "FROM mqtt_session t CROSS JOIN generate_series(1, %s) k",
    (copies - 1,),
)
cr.execute("CREATE TEMP TABLE template_event AS SELECT * FROM ows_iot_event "
           "WHERE event_type = 'session_heartbeat' LIMIT 1")
cr.execute("DELETE FROM ows_iot_event")
# A bulk load is faster without the indexes: dropped here, rebuilt below.
cr.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'ows_iot_event'::regclass "
           "AND contype = 'u'")
unique = [name for (name,) in cr.fetchall()]
cr.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ows_iot_event' "
           "AND indexname != 'ows_iot_event_pkey' AND indexname != ALL(%s)", (unique,))
indexes = cr.fetchall()
for name in unique:
    cr.execute(f'ALTER TABLE ows_iot_event DROP CONSTRAINT "{{name}}"')
for name, _definition in indexes:
    cr.execute(f'DROP INDEX "{{name}}"')
n = PER_SESSION
replaced = {{
    "event_uid": "s.session_id || '-' || k",
    "event_type": f"CASE WHEN k = 1 THEN 'session_started' WHEN k = {{n}} THEN 'session_stopped' "
                  "WHEN mod(k, 10) = 0 THEN 'state_changed' ELSE 'session_heartbeat' END",
    "timestamp": f"s.start_time + (s.end_time - s.start_time) * k / {{n}}",
    "timestamp_epoch": f"extract(epoch FROM s.start_time + (s.end_time - s.start_time) * k / {{n}})",
    "device_id": "s.device_id",
    "company_id": "s.company_id",
    "session_uid": "s.session_id",
    "session_id": "s.id",
    "seq": "k",
}}
event_cols = columns("ows_iot_event")
cr.execute(
    f"INSERT INTO ows_iot_event ({{', '.join(event_cols)}}) "
    f"SELECT {{', '.join(replaced.get(c, 'e.' + c) for c in event_cols)}} "
    "FROM mqtt_session s CROSS JOIN generate_series(1, %s) k CROSS JOIN template_event e",
    (n,),
)
say(f"{{cr.rowcount}} events written; rebuilding the indexes ...")
for name in unique:
    cr.execute(f'ALTER TABLE ows_iot_event ADD CONSTRAINT "{{name}}" UNIQUE (event_uid)')
for _name, definition in indexes:
    cr.execute(definition)
cr.execute("ANALYZE ows_iot_event")
cr.execute("ANALYZE mqtt_session")
cr.commit()
cr.execute("SELECT count(*) FROM ows_iot_event")
event_count = cr.fetchone()[0]
cr.execute("SELECT count(*) FROM mqtt_session")
session_count = cr.fetchone()[0]
setup_s = time.perf_counter() - started


# -- what the web client asks for ---------------------------------------------------
manager = root(user=root.ref("base.user_admin").id)


def specification(model, view_type):
    arch = etree.fromstring(manager[model].get_views([(False, view_type)])["views"][view_type]["arch"])
    fields = manager[model]._fields
    spec = {{}}
    for node in arch.iter("field"):
        if any(parent.tag in ("list", "form", "kanban") for parent in node.iterancestors()
               if parent is not arch):
            continue  # a subview's field
        field = fields.get(node.get("name"))
        if field is None:
            continue
        if field.type == "many2one":
            spec[field.name] = {{"fields": {{"display_name": {{}}}}}}
        elif field.type in ("one2many", "many2many"):
            spec[field.name] = {{"fields": {{"display_name": {{}}}}, "limit": 40}}
        else:
            spec[field.name] = {{}}
    return spec


session_list = specification("mqtt.session", "list")
session_form = specification("mqtt.session", "form")
device_kanban = specification("mqtt.device", "kanban")
device_form = specification("mqtt.device", "form")
event_list = specification("ows.iot.event", "list")
session = manager["mqtt.session"].search([("end_time", "!=", False)], limit=1, order="id desc")
assert session, "no finished session to open"
device = session.device_id
pivot = manager["mqtt.session"]

calls = {{
    "session list": lambda: manager["mqtt.session"].web_search_read(
        [], session_list, limit=80, count_limit=10001),
    "session pivot (device x month)": lambda: pivot.read_group(
        [], ["total_duration_h:sum", "energy_wh:sum", "amount:sum"],
        ["device_id", "start_time:month"], lazy=False),
    "session form": lambda: manager["mqtt.session"].browse(session.id).web_read(session_form),
    "a session's events": lambda: manager["ows.iot.event"].web_search_read(
        [("session_id", "=", session.id)], event_list, limit=80, count_limit=10001),
    "device kanban": lambda: manager["mqtt.device"].web_search_read(
        [], device_kanban, limit=40, count_limit=10001),
    "device form": lambda: manager["mqtt.device"].browse(device.id).web_read(device_form),
    "a device's events": lambda: manager["ows.iot.event"].web_search_read(
        [("device_id", "=", device.id)], event_list, limit=80, count_limit=10001),
    "event list": lambda: manager["ows.iot.event"].web_search_read(
        [], event_list, limit=80, count_limit=10001),
}}


def measure():
    times = {{}}
    for name, call in calls.items():
        runs = []
        for _ in range(REPEAT):
            root.invalidate_all()
            t = time.perf_counter()
            call()
            runs.append(time.perf_counter() - t)
        times[name] = statistics.median(runs)
    # One batch, rolled back: the same rows each round.
    runs = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        cr.execute("SAVEPOINT purge")
        cr.execute(PURGE_PROBE, (PURGE_BATCH,))
        cr.execute("ROLLBACK TO SAVEPOINT purge")
        runs.append(time.perf_counter() - t)
    times[f"retention batch ({{PURGE_BATCH}} rows)"] = statistics.median(runs)
    return times


PURGE_PROBE = PURGE_SQL.replace("%(cutoff)s", "(now() - interval '90 days')").replace(
    "%(types)s", "('session_heartbeat', 'state_changed')").replace("%(limit)s", "%s")
# Before: session_id had an index of its own.
for name, _columns, _where in EVENT_INDEXES:
    cr.execute(f'DROP INDEX IF EXISTS "{{name}}"')
cr.execute("CREATE INDEX ows_iot_event__session_id_index ON ows_iot_event (session_id)")
cr.execute("ANALYZE ows_iot_event")
cr.commit()
say("timing with the indexes of before ...")
before = measure()
say("creating the new indexes ...")
t = time.perf_counter()
root["ows.iot.event"]._ows_create_indexes()
cr.execute("ANALYZE ows_iot_event")
cr.commit()
index_s = time.perf_counter() - t
say("timing with the new indexes ...")
after = measure()
print("OWS_BENCH " + json.dumps({{
    "events": event_count, "sessions": session_count, "setup_s": setup_s, "index_s": index_s,
    "before": before, "after": after,
}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--events-per-session", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    reason = odoo_missing() or pg_available()
    if reason:
        print(f"event_log: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ows-bench-events-"))
    dbname = unique_name("ows_bench_events")
    try:
        print("installing ows_iot into a fresh database ...", file=sys.stderr)
        install_template(dbname, work / "data", work / "install.log")
        command = odoo_command(dbname, work / "data", "--no-http", "--log-level=warn")
        command.insert(3, "shell")
        script = SCRIPT.format(
            devices=args.devices,
            sessions=args.sessions,
            per_session=args.events_per_session,
            repeat=args.repeat,
        )
        result = subprocess.run(command, input=script, stdout=subprocess.PIPE, text=True, cwd=REPO)
        lines = [line for line in result.stdout.splitlines() if line.startswith("OWS_BENCH ")]
        if result.returncode != 0 or not lines:
            print(f"event_log: the Odoo shell failed:\n{result.stdout[-3000:]}", file=sys.stderr)
            return 1
        figures = json.loads(lines[-1].split(" ", 1)[1])
    finally:
        drop_database(dbname)
    print(
        f"{figures['events']:,} events, {figures['sessions']:,} sessions "
        f"(made in {figures['setup_s']:.0f} s; new indexes built in {figures['index_s']:.0f} s)"
    )
    print(f"{'view':<34} {'before (ms)':>12} {'after (ms)':>11} {'after/before':>13}")
    for name, before in figures["before"].items():
        after = figures["after"][name]
        print(f"{name:<34} {before * 1000:>12.1f} {after * 1000:>11.1f} {after / before:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
