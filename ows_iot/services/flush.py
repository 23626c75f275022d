"""Totals of running sessions from engine snapshots, for the periodic flush.

The leader checkpoints each device's engine state with every commit. The flush
(an ``ir.cron`` job) turns those snapshots into the running sessions' totals up
to now, the current power level held since the last reading (sample and hold),
without running the engine: nothing fires, nothing is emitted.

Pure Python; nothing here imports Odoo.
"""

from __future__ import annotations

from .config import DeviceConfig
from .engine import DeviceEngine

# Thresholds and timings play no part in the totals of a snapshot.
_PREVIEW_CONFIG = DeviceConfig(device_id="preview", mqtt_topic="preview")


def running_totals(state: dict, now: float, session_id: str | None = None) -> dict | None:
    """The totals of the session running in ``state`` at ``now`` (epoch seconds).

    None when the snapshot has no running session, or another one than
    ``session_id`` (the snapshot is newer than the session row, or older).
    """
    if not isinstance(state, dict) or not state.get("session_id"):
        return None
    if session_id is not None and state["session_id"] != session_id:
        return None
    engine = DeviceEngine(_PREVIEW_CONFIG)
    try:
        engine.restore(state)
        now_ms = round(now * 1000)
        totals = engine.session_totals(held_ms=engine.held_until(engine.device_time(now_ms)))
    except (TypeError, ValueError, KeyError):
        return None  # a snapshot of another engine version: the leader rewrites it
    totals["session_id"] = engine.session_id
    return totals


def silent_for(state: dict, now: float, timeout_s: float) -> bool:
    """Whether a device whose engine is in ``state`` has said nothing for ``timeout_s``.

    Only such devices have something the cron may fire without a leader: their
    session (or online state) times out whatever a backlog might still hold.
    """
    if not isinstance(state, dict):
        return False
    last_ms = state.get("last_msg_ms")
    if not isinstance(last_ms, int | float):
        return False
    offset_ms = state.get("clock_offset_ms")
    if not isinstance(offset_ms, int | float):
        offset_ms = 0  # the device's times are receive times
    busy = state.get("state") not in (None, "idle") or bool(state.get("online"))
    return busy and now * 1000 - offset_ms - last_ms >= timeout_s * 1000
