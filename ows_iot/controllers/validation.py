"""Validation of the REST API's request bodies, without Odoo.

The API is stricter than the ingestion method behind it: a request is rejected with
a message naming the offending field before anything is written, so that a
producer learns at once what to fix. Whatever passes here is well-formed for
``ows.iot.event.ingest_events``: strings PostgreSQL can store, numbers that fit
their columns, timestamps in ISO 8601.

The rules are the ones of ``openapi.json`` (a test keeps both in step).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from datetime import datetime, timedelta, timezone

from ..services.events import (
    EVENT_TYPES,
    FIGURE_LIMITS,
    MAX_SEQ,
    PAYLOAD_FIGURES,
    SESSION_EVENT_TYPES,
    SESSION_STATUSES,
    STATES,
)

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH_EVENTS = 1000
MAX_ID_LENGTH = 128
# Printable ASCII, no leading or trailing space: safe in a URL, a log line and a
# PostgreSQL column, and unchanged by the ingestion's strip().
ID_PATTERN = r"^[!-~]([ -~]{0,126}[!-~])?$"
_ID_RE = re.compile(ID_PATTERN)
# Epoch bounds the ingestion accepts: 2000-01-01 (inclusive) to 2100-01-01 (exclusive).
MIN_EPOCH, MAX_EPOCH = 946_684_800.0, 4_102_444_800.0
# RFC 3339, the profile of ISO 8601 the OpenAPI format "date-time" names: a full date
# and time with an explicit offset, so that no timestamp depends on a server's zone.
# Parsed here rather than by datetime.fromisoformat, which before Python 3.11 takes
# neither "Z" nor other than 3 or 6 fractional digits.
_RFC3339_RE = re.compile(
    r"^(\d{4})-(0[1-9]|1[0-2])-(\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.(\d+))?"
    r"(?:Z|([+-])([01]\d|2[0-3]):([0-5]\d))$",
    re.ASCII,
)
EVENT_FIELDS = ("event_uid", "event_type", "device_id", "session_id", "timestamp", "payload")
PAYLOAD_STATES = ("state", "from_state", "to_state")


class ApiValidationError(ValueError):
    """A request the API rejects; ``field`` names what is wrong (``payload.start``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def parse_body(body: bytes) -> object:
    """The JSON document of a request body, or ApiValidationError on field ``body``."""
    if len(body) > MAX_BODY_BYTES:
        raise ApiValidationError("body", f"body must be at most {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise ApiValidationError("body", "body is empty: send a JSON event or a list of events")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiValidationError("body", "body is not UTF-8") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiValidationError("body", "body is nested too deeply") from None
    except ValueError as exc:
        raise ApiValidationError("body", f"body is not valid JSON: {exc}") from None
    return document


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _check_strings(event: dict) -> None:
    """Reject what PostgreSQL cannot store: NUL characters and lone surrogates."""
    stack = [(event, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                _check_text(key, child_path)
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise ApiValidationError(path, f"{path} must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiValidationError(path, f"{path} must be valid Unicode text") from None


def split_batch(document: object) -> tuple[list, bool]:
    """(events, is_batch): a JSON object is one event, a JSON list a batch."""
    if isinstance(document, dict):
        return [document], False
    if isinstance(document, list):
        if not 1 <= len(document) <= MAX_BATCH_EVENTS:
            raise ApiValidationError(
                "body", f"a batch must hold 1 to {MAX_BATCH_EVENTS} events, not {len(document)}"
            )
        return document, True
    raise ApiValidationError("body", "body must be a JSON object (an event) or a list of events")


def parse_iso_timestamp(value: object, field: str) -> float:
    """Epoch seconds of an ISO 8601 (RFC 3339) date-time with offset."""
    if not isinstance(value, str):
        raise ApiValidationError(field, f"{field} must be an ISO 8601 date-time string")
    match = _RFC3339_RE.match(value)
    moment = None
    if match:
        year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        with contextlib.suppress(ValueError):  # e.g. February 30th
            moment = datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second),
                int((fraction or "0")[:6].ljust(6, "0")),
                tzinfo=timezone(-offset if sign == "-" else offset),
            )  # fmt: skip
    if moment is None:
        raise ApiValidationError(
            field,
            f"{field} is not an ISO 8601 date-time with offset "
            f"(e.g. 2025-01-31T14:05:00Z): {value[:40]!r}",
        )
    epoch = moment.timestamp()
    _check_epoch_range(epoch, field)
    return epoch


def _check_epoch_range(epoch: float, field: str) -> None:
    if not (math.isfinite(epoch) and MIN_EPOCH <= epoch < MAX_EPOCH):
        raise ApiValidationError(field, f"{field} is out of range (years 2000 to 2099)")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _identifier(event: dict, field: str, required: bool) -> None:
    value = event.get(field)
    if value is None:
        if required:
            raise ApiValidationError(field, f"{field} is required")
        return
    if not isinstance(value, str):
        raise ApiValidationError(field, f"{field} must be a string")
    if not _ID_RE.match(value):
        raise ApiValidationError(
            field,
            f"{field} must be 1 to {MAX_ID_LENGTH} printable ASCII characters "
            "without leading or trailing spaces",
        )


def _moment(payload: dict, key: str) -> float:
    """Epoch seconds of ``payload[key]``, given as epoch seconds or ISO 8601."""
    field = f"payload.{key}"
    value = payload[key]
    if isinstance(value, str):
        return parse_iso_timestamp(value, field)
    if _is_number(value):
        epoch = float(value) if abs(value) < 1e18 else math.inf
        _check_epoch_range(epoch, field)
        return epoch
    raise ApiValidationError(field, f"{field} must be epoch seconds or an ISO 8601 string")


def validate_payload(event_type: str, payload: object) -> dict:
    """The payload with ``start`` and ``end`` as epoch seconds, as the engine writes them."""
    if not isinstance(payload, dict):
        raise ApiValidationError("payload", "payload must be a JSON object")
    for key in PAYLOAD_FIGURES:
        value = payload.get(key)
        if value is None:
            continue
        field = f"payload.{key}"
        if not _is_number(value):
            raise ApiValidationError(field, f"{field} must be a number")
        if not 0 <= value <= FIGURE_LIMITS[key]:
            raise ApiValidationError(
                field, f"{field} must be between 0 and {FIGURE_LIMITS[key]:.0f}"
            )
    seq = payload.get("seq")
    if seq is not None and (
        isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ
    ):
        raise ApiValidationError("payload.seq", f"payload.seq must be an integer 0 to {MAX_SEQ}")
    for key in PAYLOAD_STATES:
        if payload.get(key) is not None and payload[key] not in STATES:
            raise ApiValidationError(
                f"payload.{key}", f"payload.{key} must be one of {', '.join(STATES)}"
            )
    if event_type not in SESSION_EVENT_TYPES:
        return payload
    if payload.get("start") is None:
        raise ApiValidationError("payload.start", "payload.start is required for session events")
    normalised = {**payload, "start": _moment(payload, "start")}
    if payload.get("end") is not None:
        normalised["end"] = _moment(payload, "end")
    status = payload.get("status")
    if status is not None and status not in SESSION_STATUSES:
        raise ApiValidationError(
            "payload.status", f"payload.status must be one of {', '.join(SESSION_STATUSES)}"
        )
    return normalised


def validate_event(event: object) -> dict:
    """Check one event's structure and types; raises ApiValidationError.

    Returns the event with its times as epoch seconds: exactly what the engine writes,
    so an event posted here is stored as the same event from MQTT would be.
    """
    if not isinstance(event, dict):
        raise ApiValidationError("body", "an event must be a JSON object")
    unknown = sorted(set(event) - set(EVENT_FIELDS))
    if unknown:
        raise ApiValidationError(
            unknown[0],
            f"unknown field {unknown[0]!r}; an event has {', '.join(EVENT_FIELDS)}",
        )
    _check_strings(event)
    _identifier(event, "event_uid", required=True)
    event_type = event.get("event_type")
    if event_type is None:
        raise ApiValidationError("event_type", "event_type is required")
    if event_type not in EVENT_TYPES:
        raise ApiValidationError(
            "event_type", f"event_type must be one of {', '.join(EVENT_TYPES)}"
        )
    _identifier(event, "device_id", required=True)
    _identifier(event, "session_id", required=event_type in SESSION_EVENT_TYPES)
    if event.get("timestamp") is None:
        raise ApiValidationError("timestamp", "timestamp is required")
    timestamp = parse_iso_timestamp(event["timestamp"], "timestamp")
    payload = event.get("payload")
    return {
        "event_uid": event["event_uid"],
        "event_type": event_type,
        "device_id": event["device_id"],
        "session_id": event.get("session_id"),
        "timestamp": timestamp,
        "payload": validate_payload(event_type, {} if payload is None else payload),
    }


# -- check-in -------------------------------------------------------------------------

CHECKIN_FIELDS = ("device_id", "company_id", "badge", "partner_id")


def validate_checkin(document: object, action: str) -> dict:
    """The body of ``POST /ows/iot/checkin`` or ``/checkout``, checked.

    ``{"device_id": str, "badge": str}`` or ``{"device_id": str, "partner_id": int}``,
    and ``company_id`` (int) where one device id exists in several companies. A
    check-out may name nobody: whoever is checked in leaves.
    """
    if not isinstance(document, dict):
        raise ApiValidationError("body", "body must be a JSON object")
    unknown = sorted(set(document) - set(CHECKIN_FIELDS))
    if unknown:
        raise ApiValidationError(
            unknown[0], f"{unknown[0]} is not a field; use {', '.join(CHECKIN_FIELDS)}"
        )
    _identifier(document, "device_id", True)
    for field in CHECKIN_FIELDS:
        if field in document and document[field] is None:
            raise ApiValidationError(field, f"{field} must not be null; leave it out")
    for field in ("company_id", "partner_id"):
        value = document.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31
        ):
            raise ApiValidationError(field, f"{field} must be a positive integer")
    card = document.get("badge")
    if card is not None:
        if not isinstance(card, str) or not card.strip():
            raise ApiValidationError("badge", "badge must be a non-empty string")
        if len(card) > 64 or not card.strip().isprintable():
            raise ApiValidationError("badge", "badge must be at most 64 printable characters")
    given = [field for field in ("badge", "partner_id") if document.get(field) is not None]
    if len(given) > 1:
        raise ApiValidationError("badge", "give either badge or partner_id, not both")
    if not given and action == "check_in":
        raise ApiValidationError("badge", "badge or partner_id is required to check in")
    return {field: document.get(field) for field in CHECKIN_FIELDS}
