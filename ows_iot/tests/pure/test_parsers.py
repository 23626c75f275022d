"""Parsing of real-format Shelly and generic messages, and the drop counters."""

import json

import pytest

from ows_iot.services.config import DeviceConfig
from ows_iot.services.ingestor import Ingestor
from ows_iot.services.parsers import (
    Drop,
    compile_path,
    parse_json_path,
    parse_shelly_gen1,
    parse_shelly_gen2,
)

from .helpers import GEN1, GEN2, T0, gen1_config, gen2_config, rpc

FULL_STATUS = {
    "src": GEN2,
    "method": "NotifyFullStatus",
    "params": {
        "ts": 1700000000.5,
        "ble": {},
        "sys": {"uptime": 5},
        "pm1:0": {
            "id": 0,
            "voltage": 231.2,
            "current": 2.1,
            "apower": 480.3,
            "freq": 50,
            "aenergy": {"total": 10.5},
        },
    },
}


def gen2(subtopic, body, channel=None):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_shelly_gen2(subtopic, payload, channel)


def test_gen2_notify_status_power_and_device_ts():
    parsed = gen2("events/rpc", json.loads(rpc(42.5, ts=T0)[1]))
    assert (parsed.power_w, parsed.device_ts, parsed.component) == (42.5, T0, "pm1:0")


def test_gen2_energy_only_notify_status_is_liveness_only():
    parsed = gen2("events/rpc", json.loads(rpc(None, ts=T0)[1]))
    assert parsed.power_w is None and parsed.device_ts == T0 and parsed.online is None


def test_gen2_full_status_picks_first_component_with_power():
    parsed = gen2("events/rpc", FULL_STATUS)
    assert (parsed.power_w, parsed.component) == (480.3, "pm1:0")


def test_gen2_configured_channel_ignores_other_components():
    frame = json.loads(rpc(700, ts=T0, component="switch:1")[1])
    assert gen2("events/rpc", frame, channel="switch:0").power_w is None
    assert gen2("events/rpc", frame, channel="switch:1").power_w == 700


def test_gen2_notify_event_is_liveness_with_ts():
    frame = {"method": "NotifyEvent", "params": {"ts": T0, "events": [{"event": "btn_down"}]}}
    parsed = gen2("events/rpc", frame)
    assert parsed.power_w is None and parsed.device_ts == T0


@pytest.mark.parametrize(
    ("subtopic", "status", "watts"),
    [
        ("status/pm1:0", {"id": 0, "apower": 12.5}, 12.5),
        ("status/switch:0", {"id": 0, "output": True, "apower": 1500}, 1500),
        ("status/em1:0", {"id": 0, "act_power": -230.0}, -230.0),
        ("status/em:0", {"id": 0, "a_act_power": 1, "total_act_power": 3000.5}, 3000.5),
        ("status/sys", {"uptime": 3}, None),
        ("status/emdata:0", {"total_act": 5}, None),
    ],
)
def test_gen2_component_status_topics(subtopic, status, watts):
    assert gen2(subtopic, status).power_w == watts


def test_gen2_online_last_will():
    assert gen2("online", b"true").online is True
    assert gen2("online", b"false").online is False


@pytest.mark.parametrize(
    ("subtopic", "payload", "reason"),
    [
        ("events/rpc", b"{not json", "malformed_json"),
        ("events/rpc", b"\xff\xfe", "malformed_json"),
        ("events/rpc", b"[1, 2]", "wrong_type"),
        ("events/rpc", b'{"method": "NotifyStatus", "params": 3}', "wrong_type"),
        (
            "events/rpc",
            b'{"method": "NotifyStatus", "params": {"pm1:0": {"apower": "12"}}}',
            "wrong_type",
        ),
        (
            "events/rpc",
            b'{"method": "NotifyStatus", "params": {"pm1:0": {"apower": true}}}',
            "wrong_type",
        ),
        (
            "events/rpc",
            b'{"method": "NotifyStatus", "params": {"pm1:0": {"apower": NaN}}}',
            "non_finite",
        ),
        (
            "events/rpc",
            b'{"method": "NotifyStatus", "params": {"pm1:0": {"apower": -Infinity}}}',
            "non_finite",
        ),
        (
            "events/rpc",
            b'{"method": "NotifyStatus", "params": {"pm1:0": {"apower": 100001}}}',
            "absurd_power",
        ),
        ("events/rpc", b'{"method": "NotifyStatus", "params": {"ts": "now"}}', "bad_timestamp"),
        ("events/rpc", b'{"method": "NotifyStatus", "params": {"ts": 1e300}}', "bad_timestamp"),
        ("online", b"maybe", "wrong_type"),
        ("rpc", b"{}", "unknown_topic"),
    ],
)
def test_gen2_bad_input_is_dropped_with_reason(subtopic, payload, reason):
    with pytest.raises(Drop) as drop:
        parse_shelly_gen2(subtopic, payload, None)
    assert drop.value.reason == reason


def test_gen1_power_topics():
    assert parse_shelly_gen1("relay/0/power", b"1234.5", None).power_w == 1234.5
    assert parse_shelly_gen1("emeter/1/power", b" -80 ", None).component == "emeter:1"
    assert parse_shelly_gen1("relay/1/power", b"80", "relay:0").power_w is None
    assert parse_shelly_gen1("relay/1/power", b"80", "relay/1").power_w == 80
    assert parse_shelly_gen1("relay/0", b"on", None).power_w is None
    assert parse_shelly_gen1("online", b"false", None).online is False
    for bad, reason in [(b"abc", "wrong_type"), (b"nan", "non_finite"), (b"1e9", "absurd_power")]:
        with pytest.raises(Drop) as drop:
            parse_shelly_gen1("relay/0/power", bad, None)
        assert drop.value.reason == reason
    with pytest.raises(Drop):
        parse_shelly_gen1("relay/0/command", b"on", None)


@pytest.mark.parametrize(
    ("path", "payload", "watts"),
    [
        ("ENERGY.Power", {"ENERGY": {"Power": 45}}, 45),
        ("$.data[1].w", {"data": [{"w": 1}, {"w": 2.5}]}, 2.5),
        ("$.data.1.w", {"data": [{"w": 1}, {"w": 7.5}]}, 7.5),
        ("$.w", {"w": [100, 200.5, 300]}, 600.5),
        ("a.b", {"a": {}}, None),
        ("a.b", [1], None),
        ("$", 12, 12),
    ],
)
def test_json_path(path, payload, watts):
    assert parse_json_path(json.dumps(payload).encode(), compile_path(path)).power_w == watts


@pytest.mark.parametrize("value", ["7.5", "on", True, False])
def test_json_path_reading_a_text_or_boolean_is_no_power(value):
    with pytest.raises(Drop) as drop:
        parse_json_path(json.dumps({"w": value}).encode(), compile_path("w"))
    assert drop.value.reason == "wrong_type"


def test_ingestor_counts_every_drop_reason_and_keeps_going():
    ingestor = Ingestor([gen2_config(), gen1_config()])
    bad = [
        ("other/device/events/rpc", b"{}"),
        (f"{GEN2}/events/rpc", b"x" * (64 * 1024 + 1)),
        (f"{GEN2}/events/rpc", b"{oops"),
        (f"shellies/{GEN1}/relay/0/power", b"NaN"),
    ]
    for topic, payload in bad:
        assert ingestor.process(topic, payload, T0) == []
    ingestor.process(f"{GEN2}/events/rpc", rpc(500, ts=T0 + 1)[1], T0 + 1)
    assert dict(ingestor.dropped) == {
        "unknown_topic": 1,
        "oversized": 1,
        "malformed_json": 1,
        "non_finite": 1,
    }
    assert ingestor.engines[GEN2].state == "starting"
    assert ingestor.messages == 5


def test_component_choice_sticks_to_the_first_with_power():
    ingestor = Ingestor([gen2_config()])
    ingestor.process(*rpc(500, ts=T0, component="switch:0"), T0)
    ingestor.process(*rpc(0, ts=T0 + 1, component="switch:1"), T0 + 1)
    engine = ingestor.engines[GEN2]
    assert engine.component == "switch:0" and engine.power == 500


def test_json_path_device_routes_exact_topic():
    config = DeviceConfig(
        device_id="plc-1",
        mqtt_topic="factory/plc1/power",
        parser_type="json_path",
        power_path="$.w",
    )
    ingestor = Ingestor([config])
    ingestor.process("factory/plc1/power", b'{"w": 300}', T0)
    assert ingestor.engines["plc-1"].state == "starting"
    assert ingestor.topic_filters() == {"factory/plc1/power/#"}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{GEN2}/status/switch:0", b'{"apower": ' + b"9" * 4000 + b"}", "absurd_power"),
        (f"{GEN2}/status/switch:0", b'{"apower": -' + b"9" * 4000 + b"}", "absurd_power"),
        (
            f"{GEN2}/events/rpc",
            b'{"method": "NotifyStatus", "params": {"ts": ' + b"9" * 4000 + b"}}",
            "bad_timestamp",
        ),
    ],
)
def test_integers_too_large_for_a_float_are_dropped(topic, payload, reason):
    ingestor = Ingestor([gen2_config()])
    assert ingestor.process(topic, payload, T0) == []
    assert ingestor.dropped == {reason: 1}
