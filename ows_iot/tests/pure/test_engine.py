"""Golden traces of every transition and edge of the session state machine."""

import json

import pytest

from ows_iot.services.events import session_uuid

from .helpers import GEN1, GEN2, T0, Run, gen1_config, gen2_config, online, rpc


def assert_session(event, start, end, working, standby):
    payload = event.payload
    assert payload["start"] == T0 + start
    assert payload["end"] == (None if end is None else T0 + end)
    assert payload["working_s"] == working
    assert payload["standby_s"] == standby
    if end is not None:
        assert working + standby == end - start


def test_noise_shorter_than_start_debounce_makes_no_session():
    run = Run().power(0, 0).power(10, 150).power(12, 0).power(20, 50).power(22.9, 5).until(600)
    assert "session_started" not in run.types()
    assert run.ingestor.running_sessions() == []


def test_session_starts_at_first_non_off_reading_once_debounce_passed():
    run = Run().power(0, 0).power(10, 50).power(12, 500)
    assert "session_started" not in run.types()
    run.until(13)
    (started,) = run.of_type("session_started")
    assert started.timestamp == T0 + 10
    assert started.session_id == session_uuid(GEN2, round((T0 + 10) * 1000))
    assert started.payload["state"] == "working"
    assert started.payload["start_power_w"] == 50.0


def test_off_exactly_at_debounce_end_confirms_then_stops():
    run = Run().power(0, 200).power(3, 0).until(100)
    (stopped,) = run.of_type("session_stopped")
    assert_session(stopped, 0, 3, 3, 0)


def test_confirmed_stop_ends_at_first_off_reading():
    run = Run().power(0, 500).power(60, 0).power(70, 2).until(74.999)
    assert run.ended() == []
    run.until(75)
    (stopped,) = run.of_type("session_stopped")
    assert stopped.timestamp == T0 + 60
    assert_session(stopped, 0, 60, 60, 0)
    assert stopped.payload["status"] == "completed"
    assert stopped.payload["energy_wh"] == pytest.approx(500 * 60 / 3600)
    assert stopped.payload["end_power_w"] == 500.0


def test_cancelled_stop_counts_the_pause_as_standby():
    run = Run().power(0, 500).power(60, 0).power(70, 400).power(100, 0).until(200)
    (stopped,) = run.of_type("session_stopped")
    assert_session(stopped, 0, 100, 90, 10)
    changes = [
        (e.payload["from_state"], e.payload["to_state"]) for e in run.of_type("state_changed")
    ]
    assert changes == [("working", "stopping"), ("stopping", "working"), ("working", "stopping")]


def test_standby_and_working_follow_each_reading():
    run = Run().power(0, 30).power(10, 300).power(40, 50).power(50, 0).until(100)
    (stopped,) = run.of_type("session_stopped")
    assert_session(stopped, 0, 50, 30, 20)
    assert [e.payload["to_state"] for e in run.of_type("state_changed")] == [
        "working",
        "standby",
        "stopping",
    ]
    assert stopped.payload["energy_wh"] == pytest.approx((30 * 10 + 300 * 30 + 50 * 10) / 3600)
    assert stopped.payload["peak_power_w"] == 300.0


def test_timeout_with_energy_only_frames_ends_at_last_message():
    run = Run(gen2_config(message_timeout_s=120)).power(0, 500)
    for minute in range(1, 6):
        run.at(60 * minute, rpc(None, ts=T0 + 60 * minute))  # steady load: energy only
    run.until(300 + 119.999)
    assert run.ended() == []
    run.until(300 + 120)
    (timeout,) = run.of_type("session_timeout")
    assert timeout.timestamp == T0 + 300
    assert_session(timeout, 0, 300, 300, 0)
    assert timeout.payload["status"] == "timeout"
    assert run.types()[-1] == "device_offline"


def test_offline_last_will_times_out_at_last_message():
    run = Run().power(0, 40).power(30, 250).at(95, online(False))
    (timeout,) = run.of_type("session_timeout")
    assert_session(timeout, 0, 30, 0, 30)
    run.power(100, 0).until(1000)
    assert len(run.ended()) == 1
    assert run.types().count("device_online") == 2


def test_offline_while_stopping_ends_at_the_off_reading():
    run = Run().power(0, 500).power(60, 0).at(65, online(False)).until(1000)
    (timeout,) = run.ended()
    assert timeout.event_type == "session_timeout"
    assert_session(timeout, 0, 60, 60, 0)


def test_offline_before_start_confirmed_makes_no_session():
    run = Run().power(0, 500).at(1, online(False)).until(1000)
    assert "session_started" not in run.types()


def test_duplicate_frames_are_dropped_and_counted():
    message = rpc(500, ts=T0 + 1)
    run = Run().power(0, 0).at(1, message).at(1.2, message).power(100, 0).until(200)
    assert run.ingestor.dropped["duplicate"] == 1
    (stopped,) = run.ended()
    assert_session(stopped, 1, 100, 99, 0)


def test_out_of_order_frames_are_dropped_and_counted():
    run = Run().power(0, 500).at(50, rpc(0, ts=T0 + 50)).at(51, rpc(500, ts=T0 + 40))
    run.until(200)
    assert run.ingestor.dropped["out_of_order"] == 1
    (stopped,) = run.ended()
    assert_session(stopped, 0, 50, 50, 0)


def test_device_clock_beyond_skew_falls_back_to_receive_time():
    run = Run(gen2_config(max_clock_skew_s=5))
    run.at(0, rpc(500, ts=T0 + 3600)).at(100, rpc(0, ts=T0 + 3700)).until(200)
    (stopped,) = run.ended()
    assert_session(stopped, 0, 100, 100, 0)


def test_negative_power_counts_by_magnitude():
    run = Run().power(0, -450).power(30, -2).until(100)
    (stopped,) = run.ended()
    assert_session(stopped, 0, 30, 30, 0)
    assert stopped.payload["energy_wh"] == pytest.approx(450 * 30 / 3600)


def test_heartbeats_carry_interval_aggregates():
    run = Run(gen2_config(heartbeat_interval_s=60)).power(0, 500)
    for second in range(10, 200, 10):
        run.power(second, 500 if second < 90 else 50)
    run.until(200)
    beats = run.of_type("session_heartbeat")
    assert [b.timestamp - T0 for b in beats] == [60, 120, 180]
    assert [(b.payload["interval_working_s"], b.payload["interval_standby_s"]) for b in beats] == [
        (60, 0),
        (30, 30),
        (0, 60),
    ]
    assert beats[-1].payload["working_s"] + beats[-1].payload["standby_s"] == 180


def test_interleaved_devices_keep_separate_sessions():
    run = Run(gen2_config(), gen1_config())
    run.power(0, 500)
    run.at(5, (f"shellies/{GEN1}/relay/0/power", b"1200.5"))
    run.power(40, 0)
    run.at(50, (f"shellies/{GEN1}/relay/0/power", b"30"))
    run.at(80, (f"shellies/{GEN1}/relay/0/power", b"0"))
    run.until(500)
    by_device = {e.device_id: e for e in run.ended()}
    assert_session(by_device[GEN2], 0, 40, 40, 0)
    assert_session(by_device[GEN1], 5, 80, 45, 30)


def test_every_event_uid_is_unique_and_sequenced():
    run = Run().power(0, 500).power(60, 0).power(70, 500).power(200, 0).until(400)
    uids = [e.event_uid for e in run.events]
    assert len(uids) == len(set(uids))
    assert [e.payload["seq"] for e in run.events] == list(range(1, len(run.events) + 1))


def test_snapshot_is_json_and_restores_mid_session():
    first = Run().power(0, 500).power(60, 0)
    state = json.loads(json.dumps(first.ingestor.snapshot()))
    second = Run()
    second.ingestor.restore(state)
    second.power(65, 300).power(120, 0).until(300)
    (stopped,) = second.ended()
    assert_session(stopped, 0, 120, 115, 5)


def test_running_session_totals_hold_the_level_until_the_clock():
    run = Run().power(0, 30).power(10, 500).until(70)
    (running,) = run.ingestor.running_sessions()
    assert (running["working_s"], running["standby_s"], running["end"]) == (60, 10, None)


def test_receive_time_messages_behind_a_fast_device_clock_are_kept():
    run = Run().at(0, rpc(500, ts=T0 + 2)).at(29, rpc(500, ts=T0 + 31))
    run.at(30, (f"{GEN2}/status/pm1:0", b'{"apower": 0}')).until(200)
    assert run.ingestor.dropped == {}
    (stopped,) = run.ended()
    # Received at 30 on a clock 2 s behind the device's: at 32 device time.
    assert_session(stopped, 2, 32, 30, 0)


def test_debounces_run_on_a_fast_device_clock():
    # Device time runs ahead of receive time (within the skew): a 120 s job that
    # arrives within 2 s of our clock is still a 120 s session.
    run = Run(gen2_config(max_clock_skew_s=600))
    run.at(0, rpc(500, ts=T0)).at(1, rpc(0, ts=T0 + 120)).at(2, rpc(0, ts=T0 + 140))
    (stopped,) = run.ended()
    assert_session(stopped, 0, 120, 120, 0)


def test_frame_dated_just_before_an_online_notice_is_not_stale():
    run = Run().at(10, online(True)).at(10.2, rpc(500, ts=T0 + 9.99)).until(20)
    assert run.ingestor.dropped == {}
    assert run.of_type("session_started")[0].timestamp == T0 + 9.99


def test_identical_values_on_other_topics_are_no_duplicate_readings():
    run = Run(gen1_config())
    prefix = f"shellies/{GEN1}/emeter/0"
    for topic in ("pf", "reactive_power", "power"):
        run.at(0, (f"{prefix}/{topic}", b"0.00"))
    run.at(5, (f"{prefix}/power", b"300.00")).at(5, (f"{prefix}/power", b"300.00"))
    assert dict(run.ingestor.dropped) == {"duplicate": 1}
    assert run.ingestor.engines[GEN1].state == "starting"


@pytest.mark.parametrize("lag_s", [0, 10, 30])
def test_a_lagging_device_clock_keeps_its_debounces(lag_s):
    # The device's clock is lag_s behind ours; a 5 s pause (shorter than the 15 s
    # stop debounce) must stay inside the session however far behind it is.
    run = Run()
    for t in range(40):
        run.at(t + lag_s, rpc(0 if 20 <= t < 25 else 500, ts=T0 + t))
        run.until(t + lag_s + 0.5)
    run.at(40 + lag_s, rpc(0, ts=T0 + 40)).until(100 + lag_s)
    (stopped,) = run.ended()
    assert_session(stopped, 0, 40, 35, 5)


def test_a_redelivered_message_without_a_timestamp_counts_once():
    run = Run(gen1_config())
    relay = f"shellies/{GEN1}/relay/0/power"
    run.at(0, (relay, b"500")).at(10, (relay, b"0"))
    # The broker sends the off reading again (its acknowledgement was lost).
    run.events += run.ingestor.process(relay, b"0", T0 + 13, redelivered=True)
    assert run.ingestor.dropped == {"duplicate": 1}
    # The same payload again, not redelivered, is a new reading.
    run.events += run.ingestor.process(relay, b"0", T0 + 14)
    run.until(100)
    (stopped,) = run.ended()
    assert_session(stopped, 0, 10, 10, 0)
