"""Round trip: simulator → real Mosquitto → record → replay (end to end: about 25 s).

The simulator publishes a profile to a private broker while ``record`` captures it;
the same profile, seed and start time also give a dry-run capture in simulated time.
Replaying both must give the same sessions, and those must be what the profile says.

Gen2 devices stamp their frames (``params.ts``) with the simulated clock, so the
Gen2 test runs at ``--speed 60``: receive times are then compressed 60-fold while
the device timestamps are not, and the devices get a ``max_clock_skew_s`` covering
the whole simulated span so that the engine keeps using the device timestamps,
as it does with real devices whose clocks are right. Gen1 messages carry no
timestamp, so the Gen1 test runs in real time and compares durations.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from ows_iot.tests.pure.mqtt_broker import run_tool, running_mosquitto, start_tool, wait_for_text

SPEED = 60

PM1 = "shellypmminig3-0a1b2c3d4e5f"
SWITCH = "shellyplus1pm-0a1b2c3d4e60"
DROPPING = "shellypmminig3-0a1b2c3dc0de"
GEN1 = "shellyplug-s-0A1B2C3D4E61"


def pm1(*steps):
    return {"kind": "pm1", "device_id": PM1, "steps": list(steps)}


def switch(*steps):
    return {"kind": "switch", "device_id": SWITCH, "steps": list(steps)}


def dropping(*steps):
    return {"kind": "pm1", "device_id": DROPPING, "steps": list(steps)}


def step(power_w, duration_s, jitter_w=0):
    return {"power_w": power_w, "duration_s": duration_s, "jitter_w": jitter_w}


OFFLINE = {"offline": True}

# Debounces scaled down with the profile, so the real-time run takes seconds.
REAL_TIME_PROFILE = [
    pm1(step(0, 2), step(540, 8, 5), step(60, 3, 2), step(0, 2)),
    switch(step(0, 1), step(1500, 6, 30), step(0, 2), step(1500, 3, 30), step(0, 3)),
    dropping(step(0, 1), step(800, 6, 10), OFFLINE),
    {
        "kind": "gen1-relay",
        "device_id": GEN1,
        "steps": [step(6, 1, 1), step(300, 5, 5), step(6, 3, 1)],
    },
]
REAL_TIME_SPAN_S = 15
REAL_TIME_DEBOUNCES = {"start_debounce_s": 1, "stop_debounce_s": 3}

SPED_UP_PROFILE = [
    pm1(step(0, 30), step(540, 120, 5), step(60, 20, 2), step(0, 40)),
    # The 5 s off is shorter than the stop debounce: a cancelled stop.
    switch(step(0, 10), step(1500, 90, 30), step(0, 5), step(1500, 30, 30), step(0, 45)),
    # Jitter beyond Shelly's 5 % report threshold: frames all along the job. Sped up,
    # the last will arrives at a receive time long before the device's own time, so
    # only the device's frames can carry its clock past the start debounce.
    dropping(step(0, 20), step(800, 60, 120), OFFLINE),
]
SPED_UP_SPAN_S = 210


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


def device_config(device_id, prefix, parser_type, **overrides):
    config = {
        "device_id": device_id,
        "mqtt_topic": prefix,
        "parser_type": parser_type,
        "channel": None,
        "standby_threshold_w": 20,
        "working_threshold_w": 100,
        "start_debounce_s": 3,
        "stop_debounce_s": 15,
        "message_timeout_s": 300,
        "heartbeat_interval_s": 300,
    }
    config.update(overrides)
    return config


def simulate_and_record(broker, tmp_path, profile, *sim_args):
    """Publish the profile through the broker while recording it; return both captures.

    The simulated clock starts a few seconds ahead, once the recorder listens; the
    simulator waits for that moment, so that at --speed 1 device time is wall time.
    """
    profile_path = tmp_path / "profile.json"
    profile_path.write_text(json.dumps(profile))
    recorded = tmp_path / "recorded.jsonl"
    record_stderr = tmp_path / "record.stderr"
    with record_stderr.open("wb") as stderr:
        recorder = start_tool(
            # Retained last wills of an earlier test on this broker are not this run's.
            "record", *broker.args, "-t", f"{broker.root}/#", "--duration", "300",
            "--skip-retained",
            "-o", str(recorded), stderr=stderr,
        )  # fmt: skip
    try:
        wait_for_text(record_stderr, "record: recording", recorder)
        start_ts = float(int(time.time()) + 4)
        common = [str(profile_path), "--start-ts", str(start_ts), "--seed", "7", *sim_args]
        simulator = start_tool(
            "simulator", *common, *broker.args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        dry = tmp_path / "dry.jsonl"
        result = run_tool("simulator", *common, "--dry-run", "--capture", str(dry))
        assert result.returncode == 0, result.stderr
        _, simulator_stderr = simulator.communicate(timeout=300)
        assert simulator.returncode == 0, simulator_stderr
        assert b"waiting" in simulator_stderr, "started late: device time is not wall time"

        # The broker acknowledged everything; give the recorder time to write it.
        expected = len(dry.read_text().splitlines())
        deadline = time.monotonic() + 15
        while len(recorded.read_text().splitlines()) < expected:
            assert time.monotonic() < deadline, f"recorded fewer than {expected} messages"
            time.sleep(0.2)
        recorder.send_signal(signal.SIGTERM)
        assert recorder.wait(10) == 0, record_stderr.read_text()
    finally:
        if recorder.poll() is None:
            recorder.kill()
    return start_ts, dry, recorded


def replay_sessions(devices, capture, until, tmp_path):
    devices_path = tmp_path / "devices.json"
    devices_path.write_text(json.dumps(devices))
    result = run_tool("replay", "--devices", str(devices_path), str(capture), "--until", str(until))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    return [line for line in lines if line["kind"] == "session"]


def by_topic(capture):
    """Payloads per topic, in order: what the broker must have passed on unchanged."""
    messages = {}
    for line in capture.read_text().splitlines():
        record = json.loads(line)
        messages.setdefault(record["topic"], []).append(record["payload"])
    return messages


def by_device(sessions):
    grouped = {}
    for session in sessions:
        grouped.setdefault(session["device_id"], []).append(session)
    return grouped


def assert_same_sessions(actual, expected, tolerance_s):
    assert sorted(actual) == sorted(expected)
    for device_id, sessions in expected.items():
        assert len(actual[device_id]) == len(sessions), device_id
        for got, want in zip(actual[device_id], sessions):
            assert got["status"] == want["status"], device_id
            assert got["start"] == pytest.approx(want["start"], abs=tolerance_s), device_id
            assert got["end"] == pytest.approx(want["end"], abs=tolerance_s), device_id
            assert got["working_s"] == pytest.approx(want["working_s"], abs=tolerance_s)
            assert got["standby_s"] == pytest.approx(want["standby_s"], abs=tolerance_s)
            assert got["energy_wh"] == pytest.approx(want["energy_wh"], rel=0.05, abs=0.01)


def assert_session(session, status, start, end, working_s, standby_s, tolerance_s=0.5):
    assert session["status"] == status
    assert session["start"] == pytest.approx(start, abs=tolerance_s)
    assert session["end"] == pytest.approx(end, abs=tolerance_s)
    assert session["working_s"] == pytest.approx(working_s, abs=tolerance_s)
    assert session["standby_s"] == pytest.approx(standby_s, abs=tolerance_s)


@pytest.mark.mqtt
@pytest.mark.slow
def test_round_trip_in_real_time_gives_the_sessions_of_the_profile(broker, tmp_path):
    gen2_prefix = f"{broker.root}/{{id}}"
    gen1_prefix = f"{broker.root}/shellies/{{id}}"
    profile = [
        {**device, "prefix": gen1_prefix if device["kind"].startswith("gen1") else gen2_prefix}
        for device in REAL_TIME_PROFILE
    ]
    started = time.monotonic()
    start_ts, dry, recorded = simulate_and_record(broker, tmp_path, profile)
    assert time.monotonic() - started >= REAL_TIME_SPAN_S  # real time, not sped up

    # Every message arrived, unchanged and in order per topic, about when it was due.
    assert by_topic(recorded) == by_topic(dry)
    dry_lines = [json.loads(line) for line in dry.read_text().splitlines()]
    due = {}
    for line in dry_lines:
        due.setdefault((line["topic"], line["payload"]), line["ts"])
    for line in (json.loads(text) for text in recorded.read_text().splitlines()):
        assert 0 <= line["ts"] - due[line["topic"], line["payload"]] < 1.0

    devices = [
        device_config(PM1, gen2_prefix.replace("{id}", PM1), "shelly_gen2", **REAL_TIME_DEBOUNCES),
        device_config(
            SWITCH, gen2_prefix.replace("{id}", SWITCH), "shelly_gen2", **REAL_TIME_DEBOUNCES
        ),
        device_config(
            DROPPING, gen2_prefix.replace("{id}", DROPPING), "shelly_gen2", **REAL_TIME_DEBOUNCES
        ),
        device_config(
            GEN1, gen1_prefix.replace("{id}", GEN1), "shelly_gen1", **REAL_TIME_DEBOUNCES
        ),
    ]
    until = start_ts + REAL_TIME_SPAN_S + 30
    expected = by_device(replay_sessions(devices, dry, until, tmp_path))
    actual = by_device(replay_sessions(devices, recorded, until, tmp_path))
    # Gen2 sessions follow the device timestamps, Gen1 ones the receive times.
    assert_same_sessions(actual, expected, tolerance_s=0.5)

    assert_session(actual[PM1][0], "completed", start_ts + 2, start_ts + 13, 8, 3)
    # The 2 s off is shorter than the 3 s stop debounce: a cancelled stop, as standby.
    assert_session(actual[SWITCH][0], "completed", start_ts + 1, start_ts + 12, 9, 2)
    assert_session(actual[GEN1][0], "completed", start_ts + 1, start_ts + 6, 5, 0)
    dropped = actual[DROPPING][0]
    assert dropped["status"] == "timeout"
    assert dropped["start"] == pytest.approx(start_ts + 1, abs=0.5)
    # It ends at its last message before its last will, at the latest when it dropped.
    assert start_ts + 1 <= dropped["end"] <= start_ts + 7


@pytest.mark.mqtt
def test_round_trip_sped_up_follows_the_device_timestamps(broker, tmp_path):
    prefix = f"{broker.root}/{{id}}"
    profile = [{**device, "prefix": prefix} for device in SPED_UP_PROFILE]
    start_ts, dry, recorded = simulate_and_record(broker, tmp_path, profile, "--speed", str(SPEED))

    assert by_topic(recorded) == by_topic(dry)
    receive_times = [json.loads(line)["ts"] for line in recorded.read_text().splitlines()]
    assert max(receive_times) - min(receive_times) < SPED_UP_SPAN_S / SPEED + 5

    devices = [
        device_config(
            device_id,
            prefix.replace("{id}", device_id),
            "shelly_gen2",
            # Sped up, device timestamps run ahead of receive times by up to the span.
            max_clock_skew_s=SPED_UP_SPAN_S + 60,
        )
        for device_id in (PM1, SWITCH, DROPPING)
    ]
    until = start_ts + SPED_UP_SPAN_S + 60
    expected = by_device(replay_sessions(devices, dry, until, tmp_path))
    actual = by_device(replay_sessions(devices, recorded, until, tmp_path))
    assert_same_sessions(actual, expected, tolerance_s=1.0)

    assert_session(actual[PM1][0], "completed", start_ts + 30, start_ts + 170, 120, 20)
    assert actual[PM1][0]["energy_wh"] == pytest.approx(540 * 120 / 3600 + 60 * 20 / 3600, rel=0.03)
    assert_session(actual[SWITCH][0], "completed", start_ts + 10, start_ts + 135, 120, 5)
    dropped = actual[DROPPING][0]
    assert dropped["status"] == "timeout"
    assert dropped["start"] == pytest.approx(start_ts + 20, abs=0.5)
    assert start_ts + 20 <= dropped["end"] <= start_ts + 80
