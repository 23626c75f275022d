"""Running totals from snapshots, as the cron flush computes them."""

import json

from ows_iot.services.flush import running_totals, silent_for
from ows_iot.services.ingestor import Ingestor

from .helpers import GEN2, T0, gen2_config, rpc


def snapshot_after(*readings, timeout=300):
    ingestor = Ingestor([gen2_config(message_timeout_s=timeout)])
    events = []
    for offset, watts in readings:
        events += ingestor.process(*rpc(watts, ts=T0 + offset), T0 + offset)
    return json.loads(json.dumps(ingestor.snapshot_device(GEN2))), ingestor, events


def test_level_is_held_to_now_like_the_engine_would():
    state, ingestor, events = snapshot_after((0, 150.0), (4, 150.0), (10, 50.0))
    session_id = events[-1].session_id
    totals = running_totals(state, T0 + 70, session_id)
    assert totals["working_s"] == 10 and totals["standby_s"] == 60
    assert totals["total_s"] == 70
    assert totals["energy_wh"] == round((150 * 10 + 50 * 60) / 3600, 6)
    # The engine, advanced to the same time without messages, agrees.
    ingestor.advance(T0 + 70)
    (running,) = ingestor.running_sessions()
    assert running["working_s"] == totals["working_s"]
    assert running["standby_s"] == totals["standby_s"]


def test_a_pending_stop_holds_nothing():
    state, _ingestor, events = snapshot_after((0, 150.0), (4, 150.0), (10, 0.0))
    totals = running_totals(state, T0 + 12, events[-1].session_id)
    assert totals["state"] == "stopping"
    assert totals["working_s"] == 10 and totals["standby_s"] == 0


def test_no_running_session_or_another_one():
    state, _i, _e = snapshot_after((0, 5.0))
    assert running_totals(state, T0 + 10) is None
    state, _i, events = snapshot_after((0, 150.0), (4, 150.0))
    assert running_totals(state, T0 + 10, "another-session") is None
    assert running_totals(state, T0 + 10, events[-1].session_id) is not None
    assert running_totals({"session_id": "x", "acc_ms": "broken"}, T0) is None
    assert running_totals(None, T0) is None


def test_silence():
    state, _i, _e = snapshot_after((0, 150.0), (4, 150.0), timeout=60)
    assert not silent_for(state, T0 + 63, 60)
    assert silent_for(state, T0 + 64, 60)
    idle_offline = {"state": "idle", "online": False, "last_msg_ms": 0}
    assert not silent_for(idle_offline, T0, 60)
    assert silent_for({"state": "idle", "online": True, "last_msg_ms": 0}, T0, 60)
    assert not silent_for({}, T0, 60)
