# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The event log and the single path that applies engine events to the database."""

import json
import logging
import math
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone

from psycopg2 import errors as pg_errors
from psycopg2.extras import Json

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL
from odoo.tools.sql import create_index, drop_index, make_index_name

from ..services.events import (
    EVENT_TYPES,
    FIGURE_LIMITS,
    MAX_SEQ,
    MEMBER_EVENT_TYPES,
    PAYLOAD_FIGURES,
    SESSION_EVENT_TYPES,
    SESSION_STATUSES,
    STATES,
)
from .bulk_write import write_rows
from .mqtt_device import SESSION_STATES

_logger = logging.getLogger(__name__)

EVENT_TYPE_LABELS = [
    ("session_started", "Session started"),
    ("session_heartbeat", "Session heartbeat"),
    ("session_stopped", "Session stopped"),
    ("session_timeout", "Session timeout"),
    ("state_changed", "State changed"),
    ("device_online", "Device online"),
    ("device_offline", "Device offline"),
    ("member_checked_in", "Member checked in"),
    ("member_checked_out", "Member checked out"),
]
# The status a session has after an event of this type, when its payload omits it.
TYPE_STATUS = {
    "session_started": "running",
    "session_heartbeat": "running",
    "state_changed": "running",
    "session_stopped": "completed",
    "session_timeout": "timeout",
}
# Events that prove the device alive at their timestamp. A heartbeat fires on the
# engine's clock and a silence offline is dated at the last message: neither is news.
SEEN_EVENT_TYPES = ("session_started", "state_changed", "session_stopped", "device_online")
ONLINE_BY_TYPE = {
    "session_started": True,
    "state_changed": True,
    "session_stopped": True,
    "device_online": True,
    "device_offline": False,
}
MAX_ID_LENGTH = 128
# Epoch bounds of a plausible event: 2000-01-01 .. 2100-01-01.
MIN_EPOCH, MAX_EPOCH = 946_684_800.0, 4_102_444_800.0
INSERT_CHUNK = 1000
RETENTION_PARAM = "ows_iot.event_retention_days"
DEFAULT_RETENTION_DAYS = 90
# Heartbeats and level changes are nearly all of the log and say nothing a closed
# session does not keep in its totals. Starts, stops, timeouts, online notices and
# failed events stay: they are what an audit of a session reads.
PURGEABLE_TYPES = ("session_heartbeat", "state_changed")
PURGE_BATCH = 20_000
PURGE_TIME_BUDGET_S = 60.0
PURGE_SQL = """
    DELETE FROM ows_iot_event WHERE id IN (
        SELECT event.id
          FROM ows_iot_event event
          LEFT JOIN mqtt_session session ON session.id = event.session_id
         WHERE event.event_type IN %(types)s
           AND event.timestamp < %(cutoff)s
           AND event.processed
           AND (session.id IS NULL OR session.status != 'running')
         LIMIT %(limit)s)
"""
# (name, columns, condition). A session's events are listed newest first: this one
# index serves that list, the session's event count and the foreign key's checks
# (so session_id has no index of its own). bench/event_log.py measured the others
# one would think of (device and time, the retention's rows) at 10 million rows:
# no view gained from them, and every index slows each insert of the ingestion.
EVENT_INDEXES = [
    ("ows_iot_event_session_time_idx", ["session_id", "timestamp DESC", "id DESC"], ""),
]
# Concurrent writers of the same event_uid: the other transaction won, ours is a duplicate.
CONFLICT_ERRORS = (pg_errors.UniqueViolation, pg_errors.SerializationFailure)


class EventError(ValueError):
    """An event that cannot be applied; the message names the offending field."""


def _epoch(value, name):
    """Epoch seconds from a number or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, bool):
        raise EventError(f"{name} must be epoch seconds or an ISO 8601 string")
    if isinstance(value, int | float):
        epoch = float(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise EventError(f"{name} is not an ISO 8601 timestamp: {value[:40]!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        epoch = moment.timestamp()
    else:
        raise EventError(f"{name} must be epoch seconds or an ISO 8601 string")
    if not math.isfinite(epoch) or not MIN_EPOCH <= epoch < MAX_EPOCH:
        raise EventError(f"{name} is out of range (years 2000 to 2099)")
    return epoch


def _jsonable(value):
    """``value`` as JSON PostgreSQL accepts, or its text when it is none."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return {"text": str(value)[:10_000]}


def _to_datetime(epoch):
    """A naive UTC datetime as Odoo stores it (whole seconds)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).replace(tzinfo=None, microsecond=0)


def _identifier(event, name, required=True, max_length=MAX_ID_LENGTH):
    value = event.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise EventError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise EventError(f"{name} must be at most {max_length} characters")
    return value.strip()


def _valid_seq(seq):
    """None, or an integer the seq columns (PostgreSQL integers) can hold."""
    return seq is None or (
        isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SEQ
    )


def parse_envelope(event):
    """Check an event's envelope; returns it normalised.

    An event failing here is rejected and nothing is written: without a valid uid,
    type, device and time there is no row to record an error on.
    """
    if not isinstance(event, dict):
        raise EventError("event must be a JSON object")
    uid = _identifier(event, "event_uid")
    event_type = event.get("event_type")
    if event_type not in EVENT_TYPES:
        raise EventError(f"event_type must be one of {', '.join(EVENT_TYPES)}")
    device = _identifier(event, "device_id")
    session_required = event_type in SESSION_EVENT_TYPES
    session = _identifier(event, "session_id", required=session_required)
    if "timestamp" not in event:
        raise EventError("timestamp is required")
    epoch = _epoch(event["timestamp"], "timestamp")
    payload = event.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise EventError("payload must be a JSON object")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError):
        raise EventError("payload must be plain JSON (no NaN or Infinity)") from None
    seq = payload.get("seq")
    if not _valid_seq(seq):
        # Kept in the payload; parse_payload reports it as a processing error.
        seq = None
    return {
        "event_uid": uid,
        "event_type": event_type,
        "device_id": device,
        "session_id": session,
        "epoch": epoch,
        "payload": payload,
        "seq": seq,
    }


def parse_payload(event):
    """Check a stored event's payload; returns what it says about session and device.

    An event failing here is stored with its processing error.
    """
    payload = event["payload"]
    if not _valid_seq(payload.get("seq")):
        raise EventError(f"payload.seq must be an integer from 0 to {MAX_SEQ}")
    for key in PAYLOAD_FIGURES:
        value = payload.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventError(f"payload.{key} must be a number")
        if not math.isfinite(value) or value < 0:
            raise EventError(f"payload.{key} must be a finite number, not negative")
        if value > FIGURE_LIMITS[key]:
            # Beyond what the columns (and the billing computed from them) can hold.
            raise EventError(f"payload.{key} must be at most {FIGURE_LIMITS[key]:.0f}")
    state = payload.get("state")
    if state is None and event["event_type"] == "state_changed":
        state = payload.get("to_state")
    if state is not None and state not in STATES:
        raise EventError(f"payload.state must be one of {', '.join(STATES)}")
    info = {"state": state, "power_w": payload.get("power_w")}
    if event["event_type"] not in SESSION_EVENT_TYPES:
        return info
    if payload.get("start") is None:
        raise EventError("payload.start is required for session events")
    start = _epoch(payload["start"], "payload.start")
    end = None if payload.get("end") is None else _epoch(payload["end"], "payload.end")
    status = payload.get("status") or TYPE_STATUS[event["event_type"]]
    if status not in SESSION_STATUSES:
        raise EventError(f"payload.status must be one of {', '.join(SESSION_STATUSES)}")
    if status == "running" and end is not None:
        raise EventError("payload.end must be null while the session is running")
    if status != "running" and end is None:
        raise EventError(f"payload.end is required for a {status} session")
    if end is not None and end < start:
        raise EventError("payload.end is before payload.start")
    working = float(payload.get("working_s") or 0.0)
    standby = float(payload.get("standby_s") or 0.0)
    total = payload.get("total_s")
    if state is None:
        state = "idle" if status != "running" else None
    info.update(
        start=start,
        end=end,
        status=status,
        state=state,
        working_s=working,
        standby_s=standby,
        total_s=float(total) if total is not None else working + standby,
    )
    return info


def _order_key(event):
    """Newer events sort higher: the engine's per-device seq, then the time."""
    return (event["seq"] or 0, event["epoch"])


class OwsIotEvent(models.Model):
    _name = "ows.iot.event"
    _description = "IoT Event"
    _order = "timestamp desc, id desc"
    _rec_name = "event_uid"

    event_uid = fields.Char(string="Event UID", required=True, readonly=True, index=True)
    event_type = fields.Selection(EVENT_TYPE_LABELS, required=True, readonly=True, index=True)
    timestamp = fields.Datetime(required=True, readonly=True, index=True)
    timestamp_epoch = fields.Float(
        string="Timestamp (epoch)", readonly=True, help="The exact time, in seconds since 1970."
    )
    device_id = fields.Many2one(
        "mqtt.device", required=True, readonly=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    session_uid = fields.Char(
        string="Session UUID", readonly=True, help="The session as the event names it."
    )
    # Indexed by EVENT_INDEXES, with the time the session's event list sorts by.
    session_id = fields.Many2one("mqtt.session", readonly=True, ondelete="restrict")
    payload_json = fields.Json(string="Payload", readonly=True)
    payload_text = fields.Text(string="Payload (JSON)", compute="_compute_payload_text")
    seq = fields.Integer(string="Sequence", readonly=True, help="The engine's per-device order.")
    power_w = fields.Float(string="Power (W)", readonly=True)
    state = fields.Selection(SESSION_STATES, readonly=True)
    processed = fields.Boolean(readonly=True)
    # Almost every row has none: a small index finds the failures.
    processing_error = fields.Text(readonly=True, index="btree_not_null")

    _sql_constraints = [
        ("event_uid_uniq", "unique(event_uid)", "An event with this UID was already received."),
    ]

    def init(self):
        res = super().init()
        self._ows_create_indexes()
        return res

    def _ows_create_indexes(self):
        # Databases of earlier versions indexed session_id alone; the index below
        # starts with it and replaces it.
        drop_index(self.env.cr, make_index_name(self._table, "session_id"), self._table)
        for name, expressions, where in EVENT_INDEXES:
            create_index(self.env.cr, name, self._table, expressions, where=where)

    @api.depends("payload_json")
    def _compute_payload_text(self):
        for event in self:
            event.payload_text = (
                json.dumps(event.payload_json, indent=2, sort_keys=True)
                if event.payload_json
                else False
            )

    # -- immutability ----------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.context.get("ows_iot_ingest"):
            raise UserError(_("IoT events are written by the ingestion only."))
        return super().create(vals_list)

    def write(self, vals):
        # The ingestion completes the rows it writes with batched column updates
        # (models/bulk_write.py); through the ORM, the log is read-only.
        if self:
            raise UserError(_("IoT events are an immutable log and cannot be changed."))
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_processed(self):
        if self.filtered("processed"):
            raise UserError(_("Processed IoT events are an immutable log and cannot be deleted."))

    # -- retention -------------------------------------------------------------------

    @api.model
    def _ows_retention_days(self):
        value = self.env["ir.config_parameter"].sudo().get_param(RETENTION_PARAM)
        try:
            return max(int(value), 0) if value not in (None, False, "") else DEFAULT_RETENTION_DAYS
        except ValueError:
            return DEFAULT_RETENTION_DAYS

    @api.model
    def _cron_purge_old_events(self, batch_size=PURGE_BATCH, time_budget_s=PURGE_TIME_BUDGET_S):
        """Remove heartbeats and level changes older than the retention, in batches.

        Only events of sessions that are no longer running go, and only applied ones.
        Each batch is committed, so a long backlog never holds one huge transaction;
        when the time budget is spent with rows left, the cron's progress says so and
        Odoo runs it again at once. Returns the number of rows removed.
        """
        days = self._ows_retention_days()
        if not days:
            return 0
        cutoff = fields.Datetime.subtract(fields.Datetime.now(), days=days)
        commit = not getattr(threading.current_thread(), "testing", False)
        deadline = time.monotonic() + time_budget_s
        removed = 0
        more = True
        while more and time.monotonic() < deadline:
            # Through SQL: the ORM refuses to delete applied events, by design.
            self.env.cr.execute(
                PURGE_SQL, {"types": PURGEABLE_TYPES, "cutoff": cutoff, "limit": batch_size}
            )
            removed += self.env.cr.rowcount
            more = self.env.cr.rowcount == batch_size
            self.env["ir.cron"]._notify_progress(done=removed, remaining=int(more))
            if commit:
                # Each batch stands on its own: a long backlog never holds one huge
                # transaction, and what is removed stays removed if the cron stops.
                self.env.cr.commit()  # pylint: disable=invalid-commit
        if removed:
            self.invalidate_model()
            _logger.info(
                "ows_iot: removed %d heartbeat and level-change events older than %d days%s",
                removed,
                days,
                " (more left: continuing)" if more else "",
            )
        return removed

    # -- ingestion -------------------------------------------------------------------

    @api.model
    def ingest_events(self, events, device_ids=None):
        """Apply a batch of engine events to the database, idempotently.

        ``events`` is a list of mappings in the schema of ``services/events.py``
        (``timestamp`` and ``payload.start``/``end`` as epoch seconds or ISO 8601
        strings, ``device_id`` the device's external id). Returns one result per
        event, in input order::

            {
                "event_uid": str | None,
                "status": "created" | "duplicate" | "error",
                "id": int | None,
                "message": str | None,
            }

        - ``created``: the event row is written and applied (sessions, device).
        - ``duplicate``: the event_uid is known (in the database or earlier in the
          batch); nothing is written. ``id`` is the existing row where known.
        - ``error`` without ``id``: the event is rejected (schema, unknown device);
          nothing is written.
        - ``error`` with ``id``: the row is written with ``processing_error`` and
          ``processed`` False; the message says why it was not applied.

        Sessions follow each session's newest event (payload ``seq``, then time), so
        batches applied in any order end in the same sessions. Devices are resolved
        within the caller's companies; callers are IoT managers or the superuser.
        The method never commits; it raises only on database failures.

        ``device_ids`` (superuser only: the MQTT runtime and the cron) maps external
        device ids to the ``mqtt.device`` record ids the engine ran them as; events
        of those devices are applied to that record, without searching again (an
        external id may exist in several companies, archived or not).
        """
        if not self.env.su and not self.env.user.has_group("ows_iot.group_ows_iot_manager"):
            raise AccessError(_("Only IoT managers may submit IoT events."))
        if device_ids and not self.env.su:
            raise AccessError(_("Only the ingestion runtime may name device records."))
        if not isinstance(events, list | tuple):
            raise UserError(_("IoT events must be submitted as a list."))
        results = [None] * len(events)
        accepted = []  # (index, parsed envelope)
        batch_uids = {}
        for index, raw in enumerate(events):
            try:
                event = parse_envelope(raw)
            except EventError as exc:
                event_uid = raw.get("event_uid") if isinstance(raw, dict) else None
                results[index] = self._ows_result(
                    event_uid if isinstance(event_uid, str) else None, "error", message=str(exc)
                )
                continue
            if event["event_uid"] in batch_uids:
                results[index] = self._ows_result(
                    event["event_uid"], "duplicate", message=_("Repeated within the batch.")
                )
                continue
            batch_uids[event["event_uid"]] = index
            accepted.append((index, event))

        known = self._ows_known_uids([event["event_uid"] for _index, event in accepted])
        devices = self._ows_resolve_devices(
            {event["device_id"] for _index, event in accepted if event["event_uid"] not in known},
            device_ids,
        )
        to_insert = []
        for index, event in accepted:
            event_uid = event["event_uid"]
            if event_uid in known:
                results[index] = self._ows_result(event_uid, "duplicate", known[event_uid])
                continue
            device = devices.get(event["device_id"])
            if not isinstance(device, models.BaseModel):
                results[index] = self._ows_result(event_uid, "error", message=device)
                continue
            event["device"] = device
            to_insert.append((index, event))

        sessions = self._ows_prepare([event for _index, event in to_insert])
        inserted = self._ows_insert(to_insert)
        claimed = []
        for index, event in to_insert:
            event_id = inserted.get(event["event_uid"])
            if event_id is None:
                results[index] = self._ows_result(
                    event["event_uid"], "duplicate", message=_("Received concurrently.")
                )
                continue
            event["id"] = event_id
            claimed.append((index, event))
        errors = self._ows_apply([event for _index, event in claimed], sessions)
        for index, event in claimed:
            error = errors.get(event["id"])
            results[index] = self._ows_result(
                event["event_uid"], "error" if error else "created", event["id"], error
            )
        return results

    @api.model
    def _ows_record_failed(self, failed, device_ids):
        """Write events that could not be applied as failed rows (IoT → Events).

        ``failed`` is a list of (event, reason) from the leader, ``device_ids`` maps
        external device ids to records. Only what certainly fits its column is
        kept; an event that cannot even be recorded is logged. Returns the count.
        """
        self.env.flush_all()
        now = self.env.cr.now()
        recorded = 0
        devices = self.env["mqtt.device"].sudo().with_context(active_test=False)
        for event, reason in failed:
            device = devices.browse(device_ids.get(event.get("device_id"))).exists()
            event_type = event.get("event_type")
            event_uid = event.get("event_uid")
            epoch = event.get("timestamp")
            if not (
                device
                and event_type in EVENT_TYPES
                and isinstance(event_uid, str)
                and isinstance(epoch, int | float)
                and MIN_EPOCH <= epoch <= MAX_EPOCH
            ):
                _logger.error("IoT event %s not recorded (%s): %s", event_uid, reason, event)
                continue
            session_uid = event.get("session_id")
            row = (
                event_uid[:MAX_ID_LENGTH],
                event_type,
                _to_datetime(epoch),
                float(epoch),
                device.id,
                device.company_id.id,
                session_uid if isinstance(session_uid, str) else None,
                Json(_jsonable(event.get("payload"))),
                None,
                None,
                None,
                None,
                False,
                _("Not applied: %(reason)s", reason=reason),
                self.env.uid,
                now,
                self.env.uid,
                now,
            )
            try:
                with self.env.cr.savepoint(flush=False):
                    recorded += len(self._ows_insert_rows([row]))
            except pg_errors.DataError as exc:
                _logger.error("IoT event %s not recorded (%s): %s", event_uid, reason, exc)
        return recorded

    @api.model
    def _ows_result(self, event_uid, status, event_id=None, message=None):
        return {"event_uid": event_uid, "status": status, "id": event_id, "message": message}

    @api.model
    def _ows_known_uids(self, uids):
        """uid -> id of the events already stored, whichever company they belong to."""
        known = {}
        for start in range(0, len(uids), INSERT_CHUNK):
            chunk = uids[start : start + INSERT_CHUNK]
            for row in self.sudo().search_read([("event_uid", "in", chunk)], ["event_uid"]):
                known[row["event_uid"]] = row["id"]
        return known

    @api.model
    def _ows_resolve_devices(self, external_ids, device_ids=None):
        """external id -> device, or -> an error message.

        Archived devices still take events, so a session running when its device is
        archived can finish. The search runs with the caller's record rules; the
        devices named in ``device_ids`` (external id -> record id) are taken as given.
        """
        resolved = {}
        given = {ext: device_ids[ext] for ext in external_ids if ext in (device_ids or {})}
        if given:
            records = (
                self.env["mqtt.device"]
                .sudo()
                .with_context(active_test=False)
                .browse(set(given.values()))
                .exists()
            )
            by_id = {record.id: record for record in records}
            for external_id, record_id in given.items():
                record = by_id.get(record_id)
                if record is not None and record.device_id == external_id:
                    resolved[external_id] = record
        external_ids = set(external_ids) - set(resolved)
        found = defaultdict(list)
        if external_ids:
            devices = (
                self.env["mqtt.device"]
                .with_context(active_test=False)
                .search([("device_id", "in", list(external_ids))])
            )
            for device in devices:
                found[device.device_id].append(device.sudo())
        for external_id in external_ids:
            matches = found.get(external_id, [])
            if len(matches) == 1:
                resolved[external_id] = matches[0]
            elif not matches:
                resolved[external_id] = _("Unknown device_id %(device)r.", device=external_id)
            else:
                resolved[external_id] = _(
                    "device_id %(device)r is ambiguous: it exists in several companies.",
                    device=external_id,
                )
        return resolved

    @api.model
    def _ows_prepare(self, events):
        """Check the payloads and find the known sessions before the rows are written.

        Each event gets ``info`` (what its payload says) or ``error``, and ``row``:
        the processing columns it is written with, predicted so that only the events
        whose outcome differs (a new session, a failure) are updated afterwards.
        Returns session uuid -> existing session.
        """
        uuids = {event["session_id"] for event in events if event["session_id"]}
        sessions = {}
        if uuids:
            found = (
                self.env["mqtt.session"]
                .sudo()
                .search_fetch(
                    [("session_id", "in", list(uuids))],
                    ["session_id", "device_id", "billing_state", "last_event_seq"],
                )
            )
            sessions = {session.session_id: session for session in found}
        for event in events:
            try:
                event["info"] = parse_payload(event)
                event["error"] = False
            except EventError as exc:
                event["info"] = None
                event["error"] = str(exc)
            session = sessions.get(event["session_id"])
            linked = session and session.device_id == event["device"]
            event["row"] = {
                "session_id": session.id if linked and not event["error"] else False,
                "processed": not event["error"],
                "processing_error": event["error"],
            }
        return sessions

    @api.model
    def _ows_insert(self, items):
        """Insert event rows, skipping known uids; returns uid -> new id.

        INSERT ... ON CONFLICT DO NOTHING writes each uid once even when another
        transaction inserts the same uid at the same time; under Odoo's repeatable
        read isolation that race surfaces as an error, then each row is retried on
        its own and the one the other transaction wrote counts as a duplicate.
        """
        if not items:
            return {}
        self.env.flush_all()
        now = self.env.cr.now()
        user_id = self.env.uid
        rows = []
        for _index, event in items:
            payload = event["payload"]
            state = payload.get("state")
            if event["event_type"] == "state_changed":
                state = payload.get("to_state", state)
            power = payload.get("power_w")
            rows.append(
                (
                    event["event_uid"],
                    event["event_type"],
                    _to_datetime(event["epoch"]),
                    event["epoch"],
                    event["device"].id,
                    event["device"].company_id.id,
                    event["session_id"],
                    Json(payload) if payload else None,
                    event["seq"],
                    float(power)
                    if isinstance(power, int | float)
                    and not isinstance(power, bool)
                    and math.isfinite(power)
                    else None,
                    state if state in STATES else None,
                    event["row"]["session_id"] or None,
                    event["row"]["processed"],
                    event["row"]["processing_error"] or None,
                    user_id,
                    now,
                    user_id,
                    now,
                )
            )
        inserted = {}
        try:
            with self.env.cr.savepoint(flush=False):
                for start in range(0, len(rows), INSERT_CHUNK):
                    inserted.update(self._ows_insert_rows(rows[start : start + INSERT_CHUNK]))
        except CONFLICT_ERRORS:
            _logger.info("Concurrent insert of IoT events; inserting one by one")
            inserted = {}
            for row in rows:
                try:
                    with self.env.cr.savepoint(flush=False):
                        inserted.update(self._ows_insert_rows([row]))
                except CONFLICT_ERRORS:
                    continue
        return inserted

    @api.model
    def _ows_insert_rows(self, rows):
        columns = (
            "event_uid",
            "event_type",
            "timestamp",
            "timestamp_epoch",
            "device_id",
            "company_id",
            "session_uid",
            "payload_json",
            "seq",
            "power_w",
            "state",
            "session_id",
            "processed",
            "processing_error",
            "create_uid",
            "create_date",
            "write_uid",
            "write_date",
        )
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        query = SQL(
            "INSERT INTO %s (%s) VALUES %s ON CONFLICT (event_uid) DO NOTHING "
            "RETURNING event_uid, id",
            SQL.identifier(self._table),
            SQL(", ").join(SQL.identifier(column) for column in columns),
            SQL(", ".join([row] * len(rows)), *[value for values in rows for value in values]),
        )
        self.env.cr.execute(query, log_exceptions=False)
        return dict(self.env.cr.fetchall())

    @api.model
    def _ows_apply(self, events, sessions):
        """Apply written events (prepared by ``_ows_prepare``, with their row ``id``).

        ``sessions`` maps the uuids of the sessions that existed before to them.
        Returns event id -> processing error for the events that could not be
        applied; the others end processed and linked to their session.
        """
        errors = {event["id"]: event["error"] for event in events if event["error"]}
        infos = {event["id"]: event["info"] for event in events if not event["error"]}
        valid = [event for event in events if not event["error"]]
        links = self.env["mqtt.session"]._ows_apply_events(valid, infos, errors, sessions)
        self._ows_apply_to_devices([event for event in valid if event["id"] not in errors], infos)
        updates = {}
        for event in events:
            row = {
                "session_id": links.get(event["id"], False),
                "processed": event["id"] not in errors,
                "processing_error": errors.get(event["id"], False),
            }
            changed = {name: value for name, value in row.items() if event["row"][name] != value}
            if changed:
                updates[event["id"]] = changed
        # Usually only the events that opened a session: one statement for all.
        write_rows(self.sudo(), updates)
        return errors

    @api.model
    def _ows_apply_to_devices(self, events, infos):
        """Update the live fields of the devices from applied events.

        Each live field follows the newest event that speaks about it, so the result
        does not depend on the order in which batches arrive.
        """
        by_device = defaultdict(list)
        for event in events:
            by_device[event["device"]].append(event)
        touched = self.env["mqtt.device"]
        updates = {}
        for device, device_events in by_device.items():
            device = device.sudo()
            marks = dict(device.live_marks or {})
            vals = {}
            state_events = [e for e in device_events if e["event_type"] in SESSION_EVENT_TYPES]
            if state_events:
                touched |= device
                newest = max(state_events, key=_order_key)
                if list(_order_key(newest)) > marks.get("state", [-1, 0.0]):
                    info = infos[newest["id"]]
                    vals["current_state"] = info["state"] or device.current_state
                    # After a timeout the meter is silent: its last power is stale.
                    vals["current_power_w"] = (
                        0.0
                        if newest["event_type"] == "session_timeout"
                        else float(info["power_w"] or 0.0)
                    )
                    marks["state"] = list(_order_key(newest))
            online_events = [e for e in device_events if e["event_type"] in ONLINE_BY_TYPE]
            if online_events:
                newest = max(online_events, key=_order_key)
                online_key = list(_order_key(newest))
                if online_key > marks.get("online", [-1, 0.0]):
                    vals["online"] = ONLINE_BY_TYPE[newest["event_type"]]
                    marks["online"] = online_key
                    # Gone since after its last reading: no power to show.
                    if not vals["online"] and online_key > marks.get("state", [-1, 0.0]):
                        vals["current_power_w"] = 0.0
            member_events = [e for e in device_events if e["event_type"] in MEMBER_EVENT_TYPES]
            if member_events:
                newest = max(member_events, key=_order_key)
                member_key = list(_order_key(newest))
                if member_key > marks.get("member", [-1, 0.0]):
                    marks["member"] = member_key
                    partner = self.env["mqtt.session"]._ows_member(
                        newest["payload"].get("member"), device
                    )
                    checked_in = newest["event_type"] == "member_checked_in" and partner
                    vals["checked_in_partner_id"] = partner if checked_in else False
                    vals["checked_in_since"] = (
                        _to_datetime(newest["epoch"]) if checked_in else False
                    )
            seen = [e["epoch"] for e in device_events if e["event_type"] in SEEN_EVENT_TYPES]
            if seen:
                last_seen = _to_datetime(max(seen))
                if not device.last_seen or last_seen > device.last_seen:
                    vals["last_seen"] = last_seen
            vals = {name: value for name, value in vals.items() if device[name] != value}
            if marks != (device.live_marks or {}):
                vals["live_marks"] = marks
            if vals:
                updates[device.id] = vals
        for device, session in touched._ows_running_sessions().items():
            if device.running_session_id != session:
                updates.setdefault(device.id, {})["running_session_id"] = session.id
        # Live fields are untracked and change all the time: one statement for all.
        write_rows(self.env["mqtt.device"].sudo(), updates)

    def action_reprocess(self):
        """Apply again the events whose processing failed (e.g. after a fix)."""
        if not self.env.su and not self.env.user.has_group("ows_iot.group_ows_iot_manager"):
            raise AccessError(_("Only IoT managers may reprocess IoT events."))
        pending = self.sudo().filtered(lambda event: not event.processed)
        events = [
            {
                "id": event.id,
                "event_uid": event.event_uid,
                "event_type": event.event_type,
                "device_id": event.device_id.device_id,
                "device": event.device_id,
                "session_id": event.session_uid or None,
                "epoch": event.timestamp_epoch,
                "payload": event.payload_json or {},
                "seq": event.seq
                if isinstance((event.payload_json or {}).get("seq"), int)
                else None,
            }
            for event in pending
        ]
        sessions = self._ows_prepare(events)
        for event, row in zip(events, pending, strict=True):
            # what the row holds now, whatever was predicted
            event["row"] = {
                "session_id": row.session_id.id,
                "processed": row.processed,
                "processing_error": row.processing_error,
            }
        errors = self._ows_apply(events, sessions)
        if errors:
            message = _(
                "%(failed)s of %(total)s event(s) still fail: %(errors)s",
                failed=len(errors),
                total=len(events),
                errors="; ".join(sorted(set(errors.values()))),
            )
            kind = "warning"
        else:
            message = _("%(total)s event(s) applied.", total=len(events))
            kind = "success"
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"message": message, "type": kind, "sticky": bool(errors)},
        }
