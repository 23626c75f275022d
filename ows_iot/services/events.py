"""Events the engine emits: the contract between the engine, the database and the API.

Every event is a plain mapping once serialised::

    {"event_uid": str, "event_type": str, "device_id": <external id>,
     "session_id": <uuid or None>, "timestamp": <epoch seconds>, "payload": {...}}

Session events (``session_started``, ``state_changed``, ``session_heartbeat``,
``session_stopped``, ``session_timeout``) carry in their payload everything needed to
create or update the session on their own, so a consumer may apply them in any
order: ``start``, ``end`` (null while running), ``status``, ``state``, ``power_w``,
``working_s``, ``standby_s``, ``total_s``, ``energy_wh``, ``start_power_w``,
``end_power_w``, ``avg_power_w``, ``peak_power_w``, ``seq`` (per-device event
sequence, higher is newer). ``state_changed`` adds ``from_state``/``to_state``;
``session_heartbeat`` adds ``interval_working_s``/``interval_standby_s``. A session
whose times are delivery times rather than the device's (a device without a clock,
read from a backlog) says ``"timing": "delayed"``.
Device events (``device_online``, ``device_offline``) carry ``reason`` and ``seq``.
Member events (``member_checked_in``, ``member_checked_out``) carry ``member``,
``reason`` (``badge``, ``command``, ``takeover``, ``session_end``) and ``seq``; a
session's events carry the ``member`` checked in when it started, if any.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

EVENT_TYPES = (
    "session_started",
    "session_heartbeat",
    "session_stopped",
    "session_timeout",
    "state_changed",
    "device_online",
    "device_offline",
    "member_checked_in",
    "member_checked_out",
)
SESSION_EVENT_TYPES = EVENT_TYPES[:5]
MEMBER_EVENT_TYPES = ("member_checked_in", "member_checked_out")
STATES = ("idle", "starting", "standby", "working", "stopping")
SESSION_STATUSES = ("running", "completed", "timeout")
# Payload keys holding seconds, watts or watt-hours: finite and not negative.
DURATION_FIGURES = (
    "working_s",
    "standby_s",
    "total_s",
    "interval_working_s",
    "interval_standby_s",
)
POWER_FIGURES = ("power_w", "start_power_w", "end_power_w", "avg_power_w", "peak_power_w")
ENERGY_FIGURES = ("energy_wh",)
PAYLOAD_FIGURES = (
    "working_s",
    "standby_s",
    "total_s",
    "energy_wh",
    "power_w",
    "start_power_w",
    "end_power_w",
    "avg_power_w",
    "peak_power_w",
    "interval_working_s",
    "interval_standby_s",
)
# What the columns and the engine hold. seq is stored in PostgreSQL integers.
MAX_SEQ = 2**31 - 1
# Ten years: longer than any session, and its billable units (an integer column)
# still fit with a billing unit of one second.
MAX_DURATION_S = 10 * 366 * 86400
# The parsers drop readings beyond 100 kW: no engine figure exceeds it.
MAX_POWER_W = 100_000.0
MAX_ENERGY_WH = MAX_POWER_W * MAX_DURATION_S / 3600
FIGURE_LIMITS = {
    **dict.fromkeys(DURATION_FIGURES, MAX_DURATION_S),
    **dict.fromkeys(POWER_FIGURES, MAX_POWER_W),
    **dict.fromkeys(ENERGY_FIGURES, MAX_ENERGY_WH),
}

# Fixed namespace: uids and session ids are reproducible across runs and machines.
UID_NAMESPACE = uuid.UUID("6f0d3c8e-5b7a-4f1e-9a51-0e2b7c4d9a10")


def session_uuid(device_id: str, start_ms: int) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, f"session|{device_id}|{start_ms}"))


def event_uuid(device_id: str, session_id: str | None, seq: int) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, f"event|{device_id}|{session_id or '-'}|{seq}"))


@dataclass(slots=True)
class Event:
    event_type: str
    event_uid: str
    device_id: str
    session_id: str | None
    timestamp: float
    payload: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "event_uid": self.event_uid,
            "event_type": self.event_type,
            "device_id": self.device_id,
            "session_id": self.session_id,
            "timestamp": self.timestamp,
            "payload": self.payload,
        }
