# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""REST API for external producers and monitoring (SPEC section 8).

Plain JSON over HTTP (``type="http"``, no JSON-RPC envelope), authenticated by an
Odoo API key sent as ``Authorization: Bearer <key>``. Every answer, errors
included, is a JSON object; tracebacks stay in the server log.

The routes accept every HTTP method so that an unsupported one gets a JSON 405
with an ``Allow`` header instead of werkzeug's HTML page.
"""

import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import psycopg2

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from ..models.ows_iot_event import EventError, parse_envelope, parse_payload
from ..services.badge import normalize_badge
from .validation import (
    MAX_BODY_BYTES,
    ApiValidationError,
    parse_body,
    split_batch,
    validate_checkin,
    validate_event,
)

_logger = logging.getLogger(__name__)

MANAGER_GROUP = "ows_iot.group_ows_iot_manager"
# API keys with this scope (or global keys, scope NULL) are accepted; keys created
# for RPC with the explicit scope "rpc" as well.
API_KEY_SCOPES = ("ows_iot", "rpc")
# Odoo's keys are 40 hex digits; anything that is not printable ASCII cannot be one
# and is refused before it reaches the database (NUL bytes would break the query).
BEARER_RE = re.compile(r"^Bearer[ \t]+([!-~]{1,256})[ \t]*$", re.IGNORECASE)
AUTH_CHALLENGE = 'Bearer realm="ows_iot"'
JSON_MIMETYPES = ("application/json",)
OPENAPI_FILE = Path(__file__).with_name("openapi.json")
EVENT_FIELD_RE = re.compile(r"^(payload\.[a-z_]+|[a-z_]+)\b")


class ApiError(Exception):
    """An answer other than success: HTTP status, error code, message, details."""

    def __init__(self, status, error, message, headers=None, **details):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.details = details

    def body(self):
        return {"status": "error", "error": self.error, "message": self.message, **self.details}


def _bad_request(field, message):
    return ApiError(400, "invalid_request", message, field=field)


def _json_response(data, status=200, headers=None):
    # json.dumps escapes non-ASCII, so the body's length in bytes is its length in
    # characters (Odoo's make_json_response miscounts UTF-8 bodies).
    body = json.dumps(data, sort_keys=False)
    all_headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        **(headers or {}),
    }
    return request.make_response(body, headers=list(all_headers.items()), status=status)


def _now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class OwsIotApi(http.Controller):
    # -- routes ----------------------------------------------------------------------

    @http.route(
        "/ows/iot/config",
        type="http",
        auth="public",
        csrf=False,
        save_session=False,
        readonly=True,
    )
    def iot_config(self, **_params):
        return self._serve(("GET",), self._get_config)

    @http.route(
        "/ows/iot/event",
        type="http",
        auth="public",
        csrf=False,
        save_session=False,
    )
    def iot_event(self, **_params):
        return self._serve(("POST",), self._post_events)

    @http.route(
        "/ows/iot/checkin",
        type="http",
        auth="public",
        csrf=False,
        save_session=False,
    )
    def iot_checkin(self, **_params):
        return self._serve(("POST",), lambda: self._post_checkin("check_in"))

    @http.route(
        "/ows/iot/checkout",
        type="http",
        auth="public",
        csrf=False,
        save_session=False,
    )
    def iot_checkout(self, **_params):
        return self._serve(("POST",), lambda: self._post_checkin("check_out"))

    @http.route(
        "/ows/iot/health",
        type="http",
        auth="public",
        csrf=False,
        save_session=False,
        readonly=True,
    )
    def iot_health(self, **_params):
        return self._serve(("GET",), self._get_health)

    @http.route(
        "/ows/iot/openapi.json",
        type="http",
        auth="public",
        csrf=False,
        save_session=False,
        readonly=True,
    )
    def iot_openapi(self, **_params):
        return self._serve(("GET",), self._get_openapi)

    # -- plumbing --------------------------------------------------------------------

    def _serve(self, methods, handler):
        """Method check, authentication, then ``handler``; every outcome as JSON."""
        method = request.httprequest.method
        allow = ", ".join(
            (*methods, "HEAD", "OPTIONS") if "GET" in methods else (*methods, "OPTIONS")
        )
        if method == "OPTIONS":
            return request.make_response("", headers=[("Allow", allow)], status=204)
        if method == "HEAD" and "GET" in methods:
            method = "GET"
        try:
            if method not in methods:
                raise ApiError(
                    405,
                    "method_not_allowed",
                    f"{method} is not allowed here; use {' or '.join(methods)}",
                    headers={"Allow": allow},
                )
            self._authenticate()
            return handler()
        except ApiError as exc:
            return _json_response(exc.body(), exc.status, exc.headers)
        except ApiValidationError as exc:
            return _json_response(_bad_request(exc.field, exc.message).body(), 400)
        except (psycopg2.OperationalError, psycopg2.IntegrityError):
            # Odoo retries the request on serialization failures and deadlocks.
            raise
        except Exception:
            _logger.exception("IoT API: %s %s failed", method, request.httprequest.path)
            # Answering normally would commit whatever the failed handler wrote.
            request.env.cr.rollback()
            return _json_response(
                {
                    "status": "error",
                    "error": "internal_error",
                    "message": "The request could not be processed; the details are in "
                    "the server log.",
                },
                500,
            )

    def _authenticate(self):
        """Switch the request to the API key's user, in all of the user's companies."""
        header = request.httprequest.headers.get("Authorization")
        challenge = {"WWW-Authenticate": AUTH_CHALLENGE}
        if not header:
            raise ApiError(
                401,
                "unauthorized",
                "Authentication required: send 'Authorization: Bearer <Odoo API key>'.",
                headers=challenge,
            )
        match = BEARER_RE.match(header)
        if not match:
            raise ApiError(
                401,
                "unauthorized",
                "The Authorization header must use the Bearer scheme with an Odoo API key.",
                headers=challenge,
            )
        key = match.group(1)
        api_keys = request.env["res.users.apikeys"].sudo()
        uid = None
        for scope in API_KEY_SCOPES:
            uid = api_keys._check_credentials(scope=scope, key=key)
            if uid:
                break
        if not uid:
            raise ApiError(
                401,
                "unauthorized",
                "The API key is invalid, expired or revoked.",
                headers=challenge,
            )
        request.update_env(user=uid)
        user = request.env.user
        # Record rules then cover every company of the key's user, not only the default.
        request.update_context(allowed_company_ids=user.company_ids.ids)
        if not user.has_group(MANAGER_GROUP):
            raise ApiError(
                403,
                "forbidden",
                "The API key's user is not an IoT Manager.",
            )

    # -- handlers --------------------------------------------------------------------

    def _get_config(self):
        devices = request.env["mqtt.device"].search([])
        return _json_response(
            {
                "status": "success",
                "devices": [self._device_config(device) for device in devices],
                "timestamp": _now_iso(),
            }
        )

    def _device_config(self, device):
        return {
            "device_id": device.device_id,
            "machine_name": device.name,
            "company_id": device.company_id.id,
            "mqtt_topic": device.mqtt_topic,
            "parser_type": device.parser_type,
            "channel": device.channel or None,
            "power_path": device.power_path or None,
            "session_config": {
                "strategy": device.session_strategy,
                "standby_threshold_w": device.standby_threshold_w,
                "working_threshold_w": device.working_threshold_w,
                "start_debounce_s": device.start_debounce_s,
                "stop_debounce_s": device.stop_debounce_s,
                "message_timeout_s": device.message_timeout_s,
                "heartbeat_interval_s": device.heartbeat_interval_s,
                "max_clock_skew_s": device.max_clock_skew_s,
            },
        }

    def _post_events(self):
        events, is_batch = split_batch(parse_body(self._read_body()))
        results = self._ingest(events)
        if is_batch:
            counts = {
                status: sum(1 for result in results if result["status"] == status)
                for status in ("created", "duplicate", "error")
            }
            return _json_response({"status": "success", **counts, "results": results})
        (result,) = results
        if result["status"] == "created":
            return _json_response(result, 201)
        if result["status"] == "duplicate":
            return _json_response(result, 409)
        return _json_response(
            {
                "status": "error",
                "error": "invalid_event",
                "message": result["message"],
                "field": result["field"],
                "event_uid": result["event_uid"],
            },
            400,
        )

    def _read_body(self):
        httprequest = request.httprequest
        if httprequest.mimetype not in JSON_MIMETYPES:
            given = httprequest.mimetype or "missing"
            raise _bad_request(
                "Content-Type", f"Content-Type must be application/json, not {given!r}."
            )
        if "chunked" in httprequest.headers.get("Transfer-Encoding", "").lower():
            # werkzeug would read a chunked body whole before any size check.
            raise _bad_request(
                "Content-Length", "Send the body with a Content-Length, not chunked."
            )
        if (httprequest.content_length or 0) > MAX_BODY_BYTES:
            raise _bad_request("body", f"body must be at most {MAX_BODY_BYTES} bytes")
        # Cached: Odoo replays the whole request after a serialization failure.
        return httprequest.get_data()

    def _ingest(self, events):
        """Validate, then hand the valid events to the single ingestion method.

        Returns one result per event, in order: ``created`` (``processed`` False when
        the row was written but could not be applied), ``duplicate`` or ``error``.
        """
        results = [None] * len(events)
        valid = []
        for index, event in enumerate(events):
            try:
                event = self._validate(event)
            except ApiValidationError as exc:
                uid = event.get("event_uid") if isinstance(event, dict) else None
                results[index] = self._result(
                    index, uid if isinstance(uid, str) else None, "error", exc.message, exc.field
                )
                continue
            valid.append((index, event))
        valid = self._refuse_mqtt_devices(valid, results)
        if valid:
            outcomes = request.env["ows.iot.event"].ingest_events([event for _i, event in valid])
            for (index, _event), outcome in zip(valid, outcomes, strict=True):
                results[index] = self._outcome(index, outcome)
        return results

    def _refuse_mqtt_devices(self, valid, results):
        """Keep the sequence spaces apart: no REST events for the MQTT engine's devices.

        Sessions and live state follow the newest ``seq``; a REST event for a device
        the engine feeds (see ``mqtt.device._ows_fed_by_mqtt``) could outrank every
        later engine event. Returns the events that may go on; the others get an
        error on ``device_id``.
        """
        external_ids = {event["device_id"] for _index, event in valid}
        devices = (
            request.env["mqtt.device"]
            .with_context(active_test=False)
            .search([("device_id", "in", list(external_ids))])
        )
        owned = set(devices._ows_fed_by_mqtt().mapped("device_id"))
        if not owned:
            return valid
        allowed = []
        for index, event in valid:
            if event["device_id"] in owned:
                results[index] = self._result(
                    index,
                    event["event_uid"],
                    "error",
                    f"device_id {event['device_id']!r} is fed by the MQTT runtime, whose "
                    "engine numbers its events; the REST API takes events only for "
                    "devices the runtime does not run (archived, or no broker configured, "
                    "and never run by the engine)",
                    "device_id",
                )
            else:
                allowed.append((index, event))
        return allowed

    def _validate(self, event):
        """Structure and types here; the ingestion's own rules next, before any write.

        Returns the event as the ingestion takes it (times in epoch seconds).
        """
        event = validate_event(event)
        try:
            parse_payload(parse_envelope(event))
        except EventError as exc:
            message = str(exc)
            match = EVENT_FIELD_RE.match(message)
            raise ApiValidationError(match.group(1) if match else "body", message) from None
        return event

    @staticmethod
    def _result(index, uid, status, message=None, field=None, event_id=None, processed=None):
        result = {"index": index, "event_uid": uid, "status": status, "message": message}
        if status == "created":
            result.update(id=event_id, processed=processed)
        if status == "error":
            result["field"] = field
        return result

    def _outcome(self, index, outcome):
        uid, status, event_id = outcome["event_uid"], outcome["status"], outcome["id"]
        if status == "created":
            return self._result(index, uid, "created", event_id=event_id, processed=True)
        if status == "error" and event_id:
            # Written, but not applied: the row records why; posting it again is a duplicate.
            return self._result(
                index, uid, "created", outcome["message"], event_id=event_id, processed=False
            )
        if status == "duplicate":
            return self._result(
                index, uid, "duplicate", outcome["message"] or "Event already received."
            )
        # Rejected by the ingestion before writing: only the device can be at fault
        # here, the rest was validated above.
        return self._result(index, uid, "error", outcome["message"], "device_id")

    def _post_checkin(self, action):
        """Check a member in or out: validated here, then published as a check-in
        command that the leader's engine applies (services.badge). 202 once the
        broker took it; a refusal is counted by reason (health ``checkin_refused``)."""
        try:
            body = validate_checkin(parse_body(self._read_body()), action)
            device = self._checkin_device(body)
            partner = self._checkin_partner(body, device)
        except ApiValidationError:
            self._count_refused("invalid_request")
            raise
        except ApiError as exc:
            self._count_refused(exc.error)
            raise
        try:
            device._ows_publish_checkin(action, partner or None)
        except UserError as exc:
            self._count_refused("broker_unavailable")
            raise ApiError(503, "broker_unavailable", str(exc)) from None
        return _json_response(
            {
                "status": "accepted",
                "action": action,
                "device_id": device.device_id,
                "company_id": device.company_id.id,
                "partner_id": partner.id or None,
                "partner_name": partner.display_name or None,
                "message": "The check-in was handed to the broker; the engine applies it "
                "within seconds.",
            },
            202,
        )

    def _count_refused(self, reason):
        request.env["ows.iot.runtime"].sudo()._ows_count_checkin_refused(reason)

    def _checkin_device(self, body):
        domain = [("device_id", "=", body["device_id"])]
        if body["company_id"]:
            domain.append(("company_id", "=", body["company_id"]))
        devices = request.env["mqtt.device"].search(domain)
        if not devices:
            raise ApiError(
                404,
                "unknown_device",
                f"No active device with device_id {body['device_id']!r} is visible to the "
                "API key's user.",
                field="device_id",
            )
        if len(devices) > 1:
            raise ApiError(
                400,
                "invalid_request",
                f"device_id {body['device_id']!r} exists in several companies; give company_id.",
                field="company_id",
            )
        return devices

    def _checkin_partner(self, body, device):
        Partner = request.env["res.partner"]
        if body["badge"] is not None:
            card = normalize_badge(body["badge"])
            member = dict(Partner._ows_badges(device.company_id)).get(card)
            if member is None:
                raise ApiError(
                    404,
                    "unknown_badge",
                    f"No member of {device.company_id.name} has the badge {card!r}.",
                    field="badge",
                )
            return Partner.sudo().browse(int(member))
        if body["partner_id"] is not None:
            # Read as superuser: a partner of another company must be refused, not hidden.
            partner = Partner.sudo().browse(body["partner_id"]).exists()
            if not partner:
                raise ApiError(
                    404,
                    "unknown_partner",
                    f"No partner with id {body['partner_id']}.",
                    field="partner_id",
                )
            if partner.company_id and partner.company_id != device.company_id:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"partner {partner.id} belongs to another company than the device.",
                    field="partner_id",
                )
            return partner
        return Partner

    def _get_health(self):
        # The runtime reports the leader's state to the database (any worker or node may
        # answer this request); whether a leader lives comes from the advisory lock.
        health = request.env["ows.iot.runtime"]._ows_health()
        healthy = bool(health["leader"]["active"] and health["broker"]["connected"])
        body = {"status": "ok" if healthy else "unavailable", "timestamp": _now_iso(), **health}
        return _json_response(body, 200 if healthy else 503)

    def _get_openapi(self):
        document = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
        return _json_response(document)
