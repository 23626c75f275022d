"""A backlog delivered late (after a failover) replays as if it had arrived on time."""

import json

import pytest

from ows_iot.services.ingestor import Ingestor

from .helpers import GEN1, GEN2, T0, gen1_config, gen2_config, online, rpc

# (device time offset, watts): a job, a pause shorter than the stop debounce
# (cancelled stop), more work, then a real stop.
PROFILE = [(t, 150.0) for t in range(0, 20)]
PROFILE += [(t, 0.0) for t in range(20, 25)]
PROFILE += [(t, 150.0) for t in range(25, 40)]
PROFILE += [(t, 0.0) for t in range(40, 46)]
END = 80


def _message(offset, watts):
    return rpc(watts, ts=T0 + offset)


def _dicts(events):
    return [json.loads(json.dumps(event.to_dict())) for event in events]


def uninterrupted(end=END):
    ingestor = Ingestor([gen2_config()])
    events = []
    for offset, watts in PROFILE:
        events += ingestor.process(*_message(offset, watts), T0 + offset)
    events += ingestor.advance(T0 + end)
    return _dicts(events)


def interrupted(cut, delivered_at, catch_up, end=END):
    """Run up to ``cut``; a new ingestor restores the snapshot and receives the
    messages from ``cut`` on at ``delivered_at`` (late), the rest on time."""
    first = Ingestor([gen2_config()])
    events = []
    for offset, watts in PROFILE:
        if offset >= cut:
            break
        events += first.process(*_message(offset, watts), T0 + offset)
    state = json.loads(json.dumps(first.snapshot_device(GEN2)))
    second = Ingestor([gen2_config()])
    second.restore_device(GEN2, state)
    for offset, watts in PROFILE:
        if offset < cut:
            continue
        late = offset <= delivered_at
        receive = T0 + delivered_at if late else T0 + offset
        events += second.process(*_message(offset, watts), receive, catch_up=catch_up and late)
    events += second.advance(T0 + end)
    return _dicts(events)


def test_backlog_in_catch_up_mode_equals_the_uninterrupted_run():
    expected = uninterrupted()
    assert [e["event_type"] for e in expected].count("session_stopped") == 1
    for cut in (1, 2, 5, 19, 21, 24, 26, 41, 45):
        for delay in (5, 14, 30):
            got = interrupted(cut, cut + delay, catch_up=True)
            assert got == expected, (cut, delay)


def test_a_late_message_does_not_move_its_own_device_to_the_receive_time():
    # Cut during the pause, delivered 15 s late even outside catch-up: the device
    # moves to each message's own time, so the pause stays a cancelled stop.
    assert interrupted(21, 36, catch_up=False) == uninterrupted()


@pytest.mark.parametrize("gap_s", [10, 120, 600, 3600])
def test_backlog_after_a_long_gap_keeps_device_time(gap_s):
    # Odoo was down for longer than the clock skew (an upgrade): the queued
    # readings keep their own timestamps, judged against the device's history.
    for cut in (2, 21, 41):
        end = cut + gap_s + 10
        assert interrupted(cut, cut + gap_s, catch_up=True, end=end) == uninterrupted(end), cut


def test_last_lag_reports_how_late_a_stamped_message_came():
    ingestor = Ingestor([gen2_config()])
    ingestor.process(*rpc(150.0, ts=T0 + 1), T0 + 1.2)
    assert ingestor.last_lag_s == 0  # the first lag seen is the clock offset
    ingestor.process(*rpc(150.0, ts=T0 + 2), T0 + 2.5)
    assert 0.25 < ingestor.last_lag_s < 0.3  # the offset rises slowly towards it
    ingestor.process(*rpc(150.0), T0 + 3)
    assert ingestor.last_lag_s is None
    # Before the device's last timestamp and beyond the skew: the receive time.
    ingestor.process(*rpc(150.0, ts=T0 - 1000), T0 + 4)
    assert ingestor.last_lag_s is None
    # Behind by far more than the skew but after the last one: it waited in a queue.
    ingestor.process(*rpc(150.0, ts=T0 + 3), T0 + 4000)
    assert ingestor.last_lag_s == pytest.approx(3997, abs=0.5)
    ingestor.process("unknown/topic", b"{}", T0 + 4001)
    assert ingestor.last_lag_s is None


def test_a_device_clock_judged_by_its_own_history_not_by_the_receive_time():
    # A clock set to the past (a device that lost its time) is not taken for a
    # queued message: it is behind the device's previous timestamps.
    ingestor = Ingestor([gen2_config()])
    ingestor.process(*rpc(150.0, ts=T0), T0)
    ingestor.process(*rpc(150.0, ts=T0 - 86400), T0 + 10)
    assert ingestor.engines[GEN2].last_reading_ms == round((T0 + 10) * 1000)


def test_online_notice_in_catch_up_does_not_move_the_device_time():
    ingestor = Ingestor([gen2_config()])
    ingestor.process(*rpc(150.0, ts=T0), T0)
    ingestor.process(*online(True), T0 + 30, catch_up=True)
    assert ingestor.engines[GEN2].last_msg_ms == round(T0 * 1000)
    # A backlog reading after the notice still applies at its own time.
    events = ingestor.process(*rpc(150.0, ts=T0 + 5), T0 + 30, catch_up=True)
    assert [e.event_type for e in events] == ["session_started"]
    assert events[0].payload["start"] == T0


def test_offline_notice_names_the_device_of_a_last_will():
    ingestor = Ingestor([gen2_config(), gen1_config()])
    assert ingestor.offline_notice(*online(False)) == GEN2
    assert ingestor.offline_notice(*online(True)) is None
    assert ingestor.offline_notice(f"shellies/{GEN1}/online", b"false") == GEN1
    assert ingestor.offline_notice(f"{GEN2}/online", b"garbage") is None
    assert ingestor.offline_notice(*rpc(150.0, ts=T0)) is None
    assert ingestor.offline_notice("unknown/online", b"false") is None
    json_device = Ingestor(
        [gen2_config(device_id="x", mqtt_topic="x", parser_type="json_path", power_path="p")]
    )
    assert json_device.offline_notice("x/online", b"false") is None


def test_a_backlog_of_a_device_without_a_clock_marks_its_sessions_delayed():
    relay = f"shellies/{GEN1}/relay/0/power"
    ingestor = Ingestor([gen1_config(), gen2_config()])
    events = ingestor.process(relay, b"500", T0)
    events += ingestor.process(*rpc(150.0, ts=T0), T0)
    events += ingestor.advance(T0 + 5)
    # A failover: what was published meanwhile arrives at once, late.
    events += ingestor.process(relay, b"0", T0 + 30, catch_up=True)
    events += ingestor.process(*rpc(0.0, ts=T0 + 20), T0 + 30, catch_up=True)
    events += ingestor.advance(T0 + 60)
    ended = {e.device_id: e.payload for e in events if e.event_type == "session_stopped"}
    assert ended[GEN1]["timing"] == "delayed"
    assert ended[GEN1]["end"] == T0 + 30  # its delivery time: the bound documented
    assert "timing" not in ended[GEN2] and ended[GEN2]["end"] == T0 + 20
    started = [e.payload for e in events if e.event_type == "session_started"]
    assert all("timing" not in payload for payload in started)  # exact until then
