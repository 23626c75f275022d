"""The replay tool's command-line contract."""

import json
import subprocess
import sys

from .helpers import GEN2, T0, rpc

DEVICE = {
    "device_id": GEN2,
    "mqtt_topic": GEN2,
    "parser_type": "shelly_gen2",
    "channel": None,
    "standby_threshold_w": 20,
    "working_threshold_w": 100,
    "start_debounce_s": 3,
    "stop_debounce_s": 15,
    "message_timeout_s": 300,
    "heartbeat_interval_s": 300,
    "a_key_from_the_future": True,
}


def run_replay(tmp_path, devices, lines, *extra):
    devices_file = tmp_path / "devices.json"
    devices_file.write_text(devices if isinstance(devices, str) else json.dumps(devices))
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines) + b"\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ows_iot.services.replay",
            "--devices",
            str(devices_file),
            str(capture),
            *extra,
        ],
        capture_output=True,
        check=False,
    )


def line(offset, message):
    topic, payload = message
    return json.dumps({"ts": T0 + offset, "topic": topic, "payload": payload.decode()}).encode()


def test_replay_prints_events_then_sessions(tmp_path):
    lines = [
        line(0, rpc(0, ts=T0)),
        line(10, rpc(300, ts=T0 + 10)),
        b"garbage",
        b'{"ts": "x", "topic": "a", "payload": ""}',
        b"\xff\xfe",
        json.dumps({"ts": T0 + 20, "topic": f"{GEN2}/online", "payload_b64": "dHJ1ZQ=="}).encode(),
        line(70, rpc(0, ts=T0 + 70)),
        line(100, rpc(150, ts=T0 + 100)),
    ]
    result = run_replay(tmp_path, [DEVICE], lines, "--until", str(T0 + 200))
    assert result.returncode == 0, result.stderr
    out = [json.loads(x) for x in result.stdout.splitlines()]
    kinds = [o["kind"] for o in out]
    assert kinds == ["event"] * kinds.count("event") + ["session", "session"]
    first, second = out[-2:]
    assert first == {
        "kind": "session",
        "device_id": GEN2,
        "session_id": first["session_id"],
        "status": "completed",
        "start": T0 + 10,
        "end": T0 + 70,
        "working_s": 60.0,
        "standby_s": 0.0,
        "energy_wh": 5.0,
    }
    assert second["status"] == "running" and second["end"] is None
    assert second["working_s"] == 100.0
    assert b"skipped" in result.stderr


def test_unreadable_devices_exit_2_with_one_line(tmp_path):
    for devices in [
        "{not json",
        json.dumps([{"device_id": "x"}]),
        json.dumps({"a": 1}),
        json.dumps([dict(DEVICE, working_threshold_w=1)]),
    ]:
        result = run_replay(tmp_path, devices, [])
        assert result.returncode == 2
        assert len(result.stderr.decode().strip().splitlines()) == 1
        assert b"Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "ows_iot.services.replay", "--devices", "/nonexistent", "-"],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 2 and b"cannot read" in result.stderr


def test_replay_runs_every_meter_family_from_devices_json(tmp_path):
    devices = [
        {"device_id": "saw", "mqtt_topic": "tasmota_A1B2C3", "parser_type": "tasmota"},
        {
            "device_id": "laser",
            "mqtt_topic": "zigbee2mqtt/laser plug",
            "parser_type": "zigbee2mqtt",
        },
        {"device_id": "lathe", "mqtt_topic": "lathe", "parser_type": "esphome", "channel": "power"},
        {
            "device_id": "cnc",
            "mqtt_topic": "shellies/shellyem3-ECFABCC7F0A2",
            "parser_type": "shelly_gen1",
            "channel": "emeter/*",
        },
    ]
    on_off = [
        ("tele/tasmota_A1B2C3/SENSOR", '{"ENERGY":{"Power":1800}}', '{"ENERGY":{"Power":0}}'),
        ("zigbee2mqtt/laser plug", '{"power":600}', '{"power":0}'),
        ("lathe/sensor/power/state", "900", "0"),
    ] + [(f"shellies/shellyem3-ECFABCC7F0A2/emeter/{i}/power", "1500", "0") for i in range(3)]
    lines = []
    for offset, index in ((0, 1), (120, 1), (240, 2)):
        for topic, on, off in on_off:
            payload = (on, on, off)[index] if index < 2 else off
            line = {"ts": T0 + offset, "topic": topic, "payload": payload}
            lines.append(json.dumps(line).encode())
    result = run_replay(tmp_path, devices, lines, "--until", str(T0 + 400))
    assert result.returncode == 0, result.stderr
    sessions = {
        s["device_id"]: s
        for s in map(json.loads, result.stdout.splitlines())
        if s.get("kind") == "session"
    }
    assert {d: (s["status"], s["end"] - s["start"]) for d, s in sessions.items()} == {
        "saw": ("completed", 240),
        "laser": ("completed", 240),
        "lathe": ("completed", 240),
        "cnc": ("completed", 240),
    }
    assert sessions["cnc"]["energy_wh"] == 4500 * 240 / 3600


def test_record_subscribes_to_what_the_devices_publish(tmp_path):
    from ows_iot.services.record import device_filters

    devices = tmp_path / "devices.json"
    devices.write_text(
        json.dumps(
            [
                {"device_id": "saw", "mqtt_topic": "tasmota_A1B2C3", "parser_type": "tasmota"},
                {"device_id": "lathe", "mqtt_topic": "lathe", "parser_type": "esphome"},
            ]
        )
    )
    assert device_filters(str(devices)) == {
        "tele/tasmota_A1B2C3/#",
        "stat/tasmota_A1B2C3/#",
        "lathe/#",
    }
    assert "shellies/announce" in device_filters(str(devices), discovery=True)
