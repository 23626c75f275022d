# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The ingestion runtime's status panel and its minute cron.

The leader reports its state here every few seconds (one record per database).
Whether a leader is alive right now comes from PostgreSQL itself: the holder of
the database's advisory lock, as seen in ``pg_locks``.

The cron (every minute) flushes the running sessions' totals from the engine
snapshots, the current level held to now, and times out the sessions of silent
devices when no leader runs (or when their device was archived).
"""

import logging
import time
from contextlib import closing
from datetime import UTC, datetime

from psycopg2 import errors as pg_errors
from psycopg2.extras import Json

from odoo import _, api, fields, models
from odoo.sql_db import db_connect

from ..services.config import ConfigError
from ..services.flush import running_totals, silent_for
from ..services.ingestor import Ingestor
from ..services.leader import NEW_TERM_SQL, TERM_TABLE_SQL, holder_sql, lock_key
from ..services.mqtt_client import PAHO_REQUIREMENT, paho_missing

_logger = logging.getLogger(__name__)

# A report older than this means the leader hangs or just died.
STALE_REPORT_S = 30
# Sessions the leader wrote more recently are fresh enough; leaving them alone
# avoids write conflicts with its commits.
FLUSH_MIN_AGE_S = 30
FLUSH_BATCH = 1000
# Devices but no leader report for this long: the runtime is probably not loaded.
LEADERLESS_WARN_S = 300
FLUSH_FIELDS = (
    "working_duration_s",
    "standby_duration_s",
    "total_duration_s",
    "energy_wh",
    "avg_power_w",
    "current_power_w",
    "peak_power_w",
    "current_state",
)
# Report keys copied as they are.
REPORT_FIELDS = {
    "host": "leader_host",
    "pid": "leader_pid",
    "lock_backend_pid": "lock_backend_pid",
    "broker": "broker_address",
    "client_id": "client_id",
    "connected": "broker_connected",
    "reconnects": "reconnects",
    "session_present": "session_present",
    "messages": "messages",
    "redelivered": "redelivered",
    "qos0_messages": "qos0_messages",
    "messages_per_s": "messages_per_s",
    "events": "events",
    "commits": "commits",
    "commit_failures": "commit_failures",
    "buffered_events": "buffered_events",
    "pending_acks": "pending_acks",
    "overflows": "overflows",
    "overflow_messages": "overflow_messages",
    "catching_up": "catching_up",
    "devices": "devices",
    "running_sessions": "running_sessions",
    "last_error": "last_error",
    "state": "report_state",
}
REPORT_TIMES = {
    "since": "leader_since",
    "connected_since": "connected_since",
    "last_message_at": "last_message_at",
    "last_commit_at": "last_commit_at",
}


def _datetime(epoch):
    if not epoch:
        return False
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


class OwsIotRuntime(models.Model):
    _name = "ows.iot.runtime"
    _description = "IoT Ingestion Status"
    _rec_name = "display_state"

    state = fields.Selection(
        [
            ("leading", "Running"),
            ("stale", "Not responding"),
            ("none", "No leader"),
        ],
        compute="_compute_live",
        help="Running: a leader holds the database's lock and reported recently. "
        "Not responding: the lock is held but the last report is old. "
        "No leader: no Odoo process consumes MQTT for this database right now.",
    )
    display_state = fields.Char(compute="_compute_live")
    lock_holder = fields.Char(
        compute="_compute_live", help="The database session holding the leader lock."
    )
    report_age_s = fields.Integer(string="Report Age (s)", compute="_compute_live")
    last_message_age_s = fields.Integer(string="Last Message Age (s)", compute="_compute_live")

    report_state = fields.Selection([("leading", "Leading"), ("stopped", "Stopped")], readonly=True)
    reported_at = fields.Datetime(readonly=True)
    leader_host = fields.Char(readonly=True)
    leader_pid = fields.Integer(string="Leader PID", readonly=True)
    leader_since = fields.Datetime(readonly=True)
    lock_backend_pid = fields.Integer(string="Lock Backend PID", readonly=True)
    broker_address = fields.Char(string="Broker", readonly=True)
    client_id = fields.Char(string="MQTT Client ID", readonly=True)
    broker_connected = fields.Boolean(readonly=True)
    connected_since = fields.Datetime(readonly=True)
    reconnects = fields.Integer(readonly=True)
    session_present = fields.Boolean(
        readonly=True, help="The broker still had the session: queued messages were delivered."
    )
    subscriptions = fields.Integer(readonly=True)
    subscribed_filters = fields.Json(readonly=True, groups="base.group_system")
    devices = fields.Integer(string="Devices Listened To", readonly=True)
    running_sessions = fields.Integer(readonly=True)
    messages = fields.Integer(string="Messages (this term)", readonly=True)
    redelivered = fields.Integer(
        string="Redelivered (this term)",
        readonly=True,
        help="Messages the broker delivered again because no one had acknowledged them.",
    )
    qos0_messages = fields.Integer(
        string="Delivered at QoS 0 (this term)",
        readonly=True,
        help="Messages the devices published at QoS 0: no broker delivers them again, so "
        "they are lost if Odoo stops before saving them. Let the devices publish at QoS 1.",
    )
    messages_per_s = fields.Float(string="Messages per Second", readonly=True, digits=(16, 2))
    last_message_at = fields.Datetime(readonly=True)
    events = fields.Integer(string="Events (this term)", readonly=True)
    commits = fields.Integer(readonly=True)
    commit_failures = fields.Integer(readonly=True)
    last_commit_at = fields.Datetime(readonly=True)
    commit_latency_p50_ms = fields.Float(string="Commit Latency p50 (ms)", readonly=True)
    commit_latency_p99_ms = fields.Float(string="Commit Latency p99 (ms)", readonly=True)
    buffered_events = fields.Integer(readonly=True)
    pending_acks = fields.Integer(string="Unacknowledged Messages", readonly=True)
    overflows = fields.Integer(readonly=True)
    overflow_messages = fields.Integer(readonly=True)
    catching_up = fields.Boolean(
        readonly=True, help="Reading what the broker queued while no leader was connected."
    )
    dropped = fields.Json(string="Dropped Messages", readonly=True)
    dropped_text = fields.Text(string="Dropped (by reason)", compute="_compute_dropped_text")
    last_error = fields.Text(readonly=True)

    def init(self):
        result = super().init()
        self.env.cr.execute(TERM_TABLE_SQL)
        return result

    def _compute_live(self):
        holder = self._ows_lock_holder()
        now = fields.Datetime.now()
        missing = paho_missing() and _(
            "paho-mqtt is not installed: nothing is ingested (pip install '%s')", PAHO_REQUIREMENT
        )
        labels = dict(self._fields["state"]._description_selection(self.env))
        for record in self:
            age = (now - record.reported_at).total_seconds() if record.reported_at else None
            if holder is None:
                state = "none"
            elif age is None or age > STALE_REPORT_S or record.report_state != "leading":
                state = "stale"
            else:
                state = "leading"
            record.state = state
            record.display_state = labels[state]
            if missing:
                record.display_state = f"{labels[state]}: {missing}"
            record.lock_holder = (
                f"{holder[1] or '?'} (backend {holder[0]})" if holder is not None else False
            )
            record.report_age_s = int(age) if age is not None else 0
            record.last_message_age_s = (
                int((now - record.last_message_at).total_seconds()) if record.last_message_at else 0
            )

    @api.model
    def _ows_lock_holder(self):
        """(pid, application name, ...) of the leader lock's holder, or None.

        Asked on the primary: Odoo serves readonly requests (health, the status
        form) from a replica cursor with --db_replica_host, and a replica's
        pg_locks does not show the primary's advisory locks.
        """
        cr = self.env.cr
        if not cr.readonly:
            cr.execute(*holder_sql(lock_key(cr.dbname)))
            return cr.fetchone()
        # Not registry.cursor(): in test mode it refuses a read/write cursor opened
        # from a readonly one; any connection to the primary sees its locks.
        with closing(db_connect(cr.dbname).cursor()) as primary:
            primary.execute(*holder_sql(lock_key(cr.dbname)))
            return primary.fetchone()

    @api.depends("dropped")
    def _compute_dropped_text(self):
        for record in self:
            dropped = record.dropped or {}
            record.dropped_text = (
                "\n".join(f"{reason}: {count}" for reason, count in sorted(dropped.items()))
                or False
            )

    # -- the leader's side -----------------------------------------------------------

    @api.model
    def _ows_get(self):
        record = self.sudo().env.ref("ows_iot.ows_iot_runtime_status", raise_if_not_found=False)
        return record or self.sudo().search([], limit=1) or self.sudo().create({})

    @api.model
    def _ows_report(self, values):
        """Store the leader's status (see LeaderTerm.status)."""
        vals = {field: values.get(key) for key, field in REPORT_FIELDS.items() if key in values}
        for key, field in REPORT_TIMES.items():
            if key in values:
                vals[field] = _datetime(values[key])
        for key in ("commit_latency_p50_s", "commit_latency_p99_s"):
            if values.get(key) is not None:
                vals[key.replace("_s", "_ms")] = values[key] * 1000
        if "filters" in values:
            vals["subscriptions"] = len(values["filters"])
            vals["subscribed_filters"] = values["filters"]
        if "dropped" in values:
            vals["dropped"] = values["dropped"]
        vals["reported_at"] = fields.Datetime.now()
        vals = {k: (v if v is not None else False) for k, v in vals.items()}
        self._ows_get().write(vals)

    @api.model
    def _ows_recorded_filters(self):
        """The filters the last leader subscribed to: they may linger in the broker session."""
        return set(self._ows_get().subscribed_filters or ())

    @api.model
    def _ows_health(self):
        """The runtime's state for monitoring (REST health endpoint)."""
        record = self._ows_get()
        return {
            "state": record.state,
            "leader": {
                "active": record.state != "none",
                "host": record.leader_host or None,
                "pid": record.leader_pid or None,
                "since": (record.leader_since and record.leader_since.isoformat() + "Z") or None,
                "lock_holder": record.lock_holder or None,
                "report_age_s": record.report_age_s if record.reported_at else None,
            },
            "broker": {
                "connected": bool(record.state == "leading" and record.broker_connected),
                "address": record.broker_address or None,
                "client_id": record.client_id or None,
                "reconnects": record.reconnects,
            },
            "last_message_age_s": record.last_message_age_s if record.last_message_at else None,
            "counters": {
                "messages": record.messages,
                "redelivered": record.redelivered,
                "qos0_messages": record.qos0_messages,
                "messages_per_s": record.messages_per_s,
                "events": record.events,
                "commits": record.commits,
                "commit_failures": record.commit_failures,
                "buffered_events": record.buffered_events,
                "pending_acks": record.pending_acks,
                "overflows": record.overflows,
                "overflow_messages": record.overflow_messages,
                "dropped": record.dropped or {},
            },
            "last_error": record.last_error or None,
        }

    def action_refresh(self):
        return {"type": "ir.actions.client", "tag": "soft_reload"}

    @api.model
    def action_open_status(self):
        return {
            "type": "ir.actions.act_window",
            "name": _("Ingestion Status"),
            "res_model": self._name,
            "res_id": self._ows_get().id,
            "view_mode": "form",
            "target": "current",
        }

    # -- the cron --------------------------------------------------------------------

    @api.model
    def _cron_flush(self):
        now = time.time()
        cr = self.env.cr
        self.env.flush_all()  # the queries below read the tables directly
        # Held until this transaction ends: no leader can start meanwhile, and
        # none runs if we get it.
        cr.execute("SELECT pg_try_advisory_xact_lock(%s)", (lock_key(cr.dbname),))
        leaderless = cr.fetchone()[0]
        if leaderless:
            # A leader cut off from the database may still hold events in memory:
            # a new term makes its next commit fail instead of overwriting ours.
            cr.execute(NEW_TERM_SQL)
        advanced = self._ows_advance_silent(now, leaderless)
        flushed = self._ows_flush_running(now)
        if leaderless:
            self._ows_warn_leaderless()
        _logger.log(
            logging.INFO if advanced or flushed else logging.DEBUG,
            "ows_iot flush: %d running sessions updated, %d silent devices advanced (%s)",
            flushed,
            advanced,
            "no leader" if leaderless else "leader alive",
        )

    @api.model
    def _ows_warn_leaderless(self):
        """Say so when devices are configured but no Odoo process has led for a while."""
        if not self.env["mqtt.device"].sudo().search_count([], limit=1):
            return
        record = self._ows_get()
        cutoff = fields.Datetime.subtract(fields.Datetime.now(), seconds=LEADERLESS_WARN_S)
        if not record.reported_at or record.reported_at < cutoff:
            _logger.warning(
                "ows_iot: no Odoo process consumes MQTT for database %s; start Odoo with "
                "--load=base,web,ows_iot (or server_wide_modules) and check the broker "
                "settings. Meanwhile this cron times out the sessions of silent devices.",
                self.env.cr.dbname,
            )

    @api.model
    def _ows_advance_silent(self, now, leaderless):
        """Run the engines of silent devices to ``now`` from their snapshots.

        Without a leader, of every device; with one, of archived devices only (the
        leader no longer listens to them). Only devices silent for their whole
        message timeout: for them a backlog the broker may still hold cannot
        change what fires (see services.flush.silent_for).
        """
        cr = self.env.cr
        self.env.flush_all()
        cr.execute(
            "SELECT id, engine_state FROM mqtt_device "
            "WHERE engine_state IS NOT NULL AND (%s OR active IS NOT TRUE)",
            [leaderless],
        )
        states = {record_id: state for record_id, state in cr.fetchall() if state}
        if not states:
            return 0
        devices = self.env["mqtt.device"].sudo().with_context(active_test=False).browse(states)
        configs, ids = [], {}
        for device in devices:
            try:
                config = device._ows_engine_config()
            except ConfigError:
                continue
            state = states[device.id]
            if config.device_id in ids or not silent_for(state, now, config.message_timeout_s):
                continue
            configs.append(config)
            ids[config.device_id] = device.id
        if not configs:
            return 0
        ingestor = Ingestor(configs)
        for device_id, record_id in ids.items():
            ingestor.restore_device(device_id, states[record_id])
        events = ingestor.advance(now)
        if events:
            results = (
                self.env["ows.iot.event"]
                .sudo()
                .ingest_events([e.to_dict() for e in events], device_ids=ids)
            )
            errors = [r for r in results if r["status"] == "error"]
            if errors:
                _logger.warning(
                    "ows_iot flush: %d events not applied, e.g. %s", len(errors), errors[0]
                )
        rows = [(ids[d], Json(ingestor.snapshot_device(d))) for d in ids]
        values = ", ".join(["(%s, %s::jsonb)"] * len(rows))
        cr.execute(
            f"UPDATE mqtt_device AS d SET engine_state = v.state "
            f"FROM (VALUES {values}) AS v(id, state) WHERE d.id = v.id",
            [value for row in rows for value in row],
        )
        return len(configs)

    @api.model
    def _ows_flush_running(self, now, min_age_s=FLUSH_MIN_AGE_S):
        """Bring the running sessions' totals up to ``now`` from the engine snapshots."""
        cr = self.env.cr
        self.env.flush_all()
        cr.execute(
            """
            SELECT s.id, s.session_id, d.engine_state
              FROM mqtt_session s
              JOIN mqtt_device d ON d.id = s.device_id
             WHERE s.status = 'running' AND s.billing_state = 'to_bill'
               AND d.engine_state IS NOT NULL
               AND s.write_date <= (now() AT TIME ZONE 'UTC') - make_interval(secs => %s)
            """,
            [min_age_s],
        )
        rows = []
        for session_id, uid, state in cr.fetchall():
            totals = running_totals(state, now, uid)
            if totals is None:
                continue
            rows.append(
                (
                    session_id,
                    totals["working_s"],
                    totals["standby_s"],
                    totals["total_s"],
                    totals["energy_wh"],
                    totals["avg_power_w"],
                    totals["power_w"],
                    totals["peak_power_w"],
                    totals["state"],
                )
            )
        if not rows:
            return 0
        Session = self.env["mqtt.session"].sudo()
        try:
            with cr.savepoint():
                for start in range(0, len(rows), FLUSH_BATCH):
                    chunk = rows[start : start + FLUSH_BATCH]
                    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
                    cr.execute(
                        f"""
                        UPDATE mqtt_session AS s
                           SET working_duration_s = v.working, standby_duration_s = v.standby,
                               total_duration_s = v.total, energy_wh = v.energy,
                               avg_power_w = v.avg, current_power_w = v.power,
                               peak_power_w = v.peak, current_state = v.state,
                               write_date = now() AT TIME ZONE 'UTC', write_uid = %s
                          FROM (VALUES {values})
                            AS v(id, working, standby, total, energy, avg, power, peak, state)
                         WHERE s.id = v.id AND s.status = 'running'
                        """,
                        [self.env.uid, *(value for row in chunk for value in row)],
                        log_exceptions=False,
                    )
                sessions = Session.browse([row[0] for row in rows])
                sessions.invalidate_recordset(list(FLUSH_FIELDS))
                # Hours and billing figures are stored computations of the durations.
                sessions.modified(["working_duration_s", "standby_duration_s", "total_duration_s"])
                self.env.flush_all()
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            # The leader wrote one of these sessions meanwhile: it is fresh; next minute.
            _logger.info("ows_iot flush: sessions changed concurrently, retrying next run")
            self.env.invalidate_all()
            return 0
        return len(rows)
