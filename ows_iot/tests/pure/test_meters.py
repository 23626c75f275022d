"""Every meter family: a golden test per message type, phases, sessions, discovery."""

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ows_iot.services.config import ConfigError, DeviceConfig
from ows_iot.services.ingestor import Ingestor
from ows_iot.services.parsers import FAMILIES, Drop, discover, family, topic_matches
from ows_iot.services.phases import hold_phases
from ows_iot.services.trial import try_message

from . import meter_fixtures as fx

T0 = 1_709_288_100.0


@pytest.mark.parametrize("case", fx.GOLDEN, ids=[case["model"] for case in fx.GOLDEN])
def test_golden_message(case):
    result = try_message(DeviceConfig.from_dict(case["config"]), case["topic"], case["payload"])
    assert result["drop"] == case.get("drop")
    if "drop" in case:
        return
    assert (
        result["power_w"] == pytest.approx(case.get("power"))
        if "power" in case
        else (result["power_w"] is None)
    )
    assert result["online"] == case.get("online")
    if "component" in case:
        assert result["component"] == case["component"]
    if "ts" in case:
        assert result["device_ts"] == pytest.approx(case["ts"])
    if case.get("online") is False:
        assert result["will"] and not result["liveness"]


def test_every_family_has_golden_messages():
    assert {case["config"]["parser_type"] for case in fx.GOLDEN} >= set(FAMILIES) - {"json_path"}


# -- three-phase sums ------------------------------------------------------------------


def _run(config, messages):
    ingestor = Ingestor([DeviceConfig.from_dict(config)])
    events = []
    for offset, topic, payload in messages:
        events += ingestor.process(topic, payload, T0 + offset)
    return ingestor, events


def test_gen1_3em_sums_the_latest_value_of_each_phase():
    prefix = f"shellies/{fx.EM3}"
    ingestor, _ = _run(
        fx.gen1(fx.EM3, channel="emeter/*"),
        [
            (0, f"{prefix}/emeter/0/power", b"1000.0"),
            (0, f"{prefix}/emeter/1/power", b"1100.0"),
            (0, f"{prefix}/emeter/2/power", b"900.0"),
            (30, f"{prefix}/emeter/1/power", b"1200.0"),  # the same phase again: replaced
            (30, f"{prefix}/emeter/1/power", b"1250.0"),
        ],
    )
    engine = ingestor.engines[fx.EM3]
    assert engine.power == pytest.approx(3150.0)
    assert engine.phases == {"emeter:0": 1000.0, "emeter:1": 1250.0, "emeter:2": 900.0}


def test_gen2_pro3em_monophase_sums_em1_phases_from_partial_notifications():
    topic = f"{fx.PRO3EM}/events/rpc"

    def status(ts, **phases):
        return fx.rpc(
            fx.PRO3EM,
            "NotifyStatus",
            {"ts": ts, **{k.replace("_", ":"): {"act_power": v} for k, v in phases.items()}},
        )

    ingestor, _ = _run(
        fx.gen2(fx.PRO3EM, channel="em1:*"),
        [
            (0, topic, fx.PRO3EM_FULL_STATUS),
            (5, topic, status(T0 + 5, em1_2=500.0)),
        ],
    )
    assert ingestor.engines[fx.PRO3EM].power == pytest.approx(400.1 + 440.5 + 500.0)


def test_phases_survive_a_snapshot():
    prefix = f"shellies/{fx.EM3}"
    config = fx.gen1(fx.EM3, channel="emeter/*")
    ingestor, _ = _run(
        config, [(0, f"{prefix}/emeter/0/power", b"700"), (0, f"{prefix}/emeter/1/power", b"800")]
    )
    state = ingestor.snapshot_device(fx.EM3)
    other = Ingestor([DeviceConfig.from_dict(config)])
    other.restore_device(fx.EM3, state)
    other.process(f"{prefix}/emeter/2/power", b"900", T0 + 1)
    assert other.engines[fx.EM3].power == pytest.approx(2400.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(-30000, 30000, allow_nan=False)),
        max_size=40,
    )
)
def test_phase_sum_is_the_sum_of_the_held_phase_values(readings):
    held, latest = {}, {}
    for phase, value in readings:
        total = hold_phases(held, {phase: value})
        latest[phase] = value
        assert total == pytest.approx(sum(latest.values()), abs=1e-6)
    assert held == latest  # a phase that reported twice is held once


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5000)), min_size=1, max_size=30))
def test_three_phase_meter_power_never_double_counts_a_phase(readings):
    prefix = f"shellies/{fx.EM3}"
    messages = [
        (i, f"{prefix}/emeter/{p}/power", str(w).encode()) for i, (p, w) in enumerate(readings)
    ]
    ingestor, _ = _run(fx.gen1(fx.EM3, channel="emeter/*"), messages)
    latest = {}
    for phase, watts in readings:
        latest[phase] = watts
    assert ingestor.engines[fx.EM3].power == pytest.approx(sum(latest.values()))


# -- bad input never raises ----------------------------------------------------------

CONFIGS = [
    fx.gen2(fx.PLUS1PM),
    fx.gen2(fx.PRO3EM, channel="em1:*"),
    fx.gen1(fx.EM3, channel="emeter/*"),
    fx.gen1(fx.RGBW2),
    fx.TASMOTA,
    fx.TASMOTA_SWAPPED,
    dict(fx.TASMOTA_3CH, channel="2"),
    fx.Z2M,
    fx.ESPHOME,
    {
        "device_id": "plc",
        "mqtt_topic": "plc",
        "parser_type": "json_path",
        "power_path": "$.w",
        "offline_topic": "plc/status",
    },
]
LEAVES = [
    "",
    "/online",
    "/events/rpc",
    "/status/em1:0",
    "/emeter/0/power",
    "/relay/power",
    "/color/0/status",
    "/availability",
    "/set",
    "/sensor/power/state",
    "/status",
    "/tele/SENSOR",
    "/tele/LWT",
    "/stat/STATUS10",
]
PREFIXES = [c["mqtt_topic"] for c in CONFIGS] + ["tele/tasmota_A1B2C3", "stat/tasmota_PZEM3", "x"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(PREFIXES),
    st.one_of(st.sampled_from(LEAVES), st.text(max_size=20).map(lambda t: "/" + t)),
    st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"true",
                b"false",
                b"Offline",
                b"{}",
                b"[]",
                b"1e999",
                b"-0",
                b"null",
                b'{"ENERGY":{"Power":[1,"x"]}}',
                b'{"power":true}',
                b'{"state":7}',
                b'{"power_l1":1e308,"power_l2":1e308}',
                b'{"last_seen":"yesterday"}',
            ]
        ),
    ),
)
def test_no_exception_on_arbitrary_topics_and_bytes(prefix, leaf, payload):
    ingestor = Ingestor([DeviceConfig.from_dict(c) for c in CONFIGS])
    ingestor.discovery = True
    topic = prefix + leaf
    ingestor.discover(topic, payload, T0)
    ingestor.offline_notice(topic, payload)
    ingestor.process(topic, payload, T0)
    ingestor.process(topic, payload, T0 + 1)
    for config in CONFIGS:
        try_message(DeviceConfig.from_dict(config), topic, payload)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(FAMILIES)), st.text(max_size=30), st.binary(max_size=100))
def test_families_only_raise_drop(parser_type, subtopic, payload):
    config = next(DeviceConfig.from_dict(c) for c in CONFIGS if c["parser_type"] == parser_type)
    with contextlib.suppress(Drop):
        family(parser_type).parse(subtopic, payload, config, None)
    family(parser_type).discover(subtopic, payload)


# -- sessions per family ---------------------------------------------------------------


def _session(config, on, off, **timing):
    """A 600 s job: power on at 0, off at 600; returns the stopped session's payload."""
    config = DeviceConfig.from_dict(
        {**config, "start_debounce_s": 3, "stop_debounce_s": 15, **timing}
    )
    ingestor = Ingestor([config])
    events = []
    for offset, messages in ((0, on), (200, on), (400, on), (600, off), (700, off)):
        for topic, payload in messages:
            events += ingestor.process(topic, payload, T0 + offset)
    events += ingestor.advance(T0 + 800)
    stopped = [e for e in events if e.event_type == "session_stopped"]
    assert len(stopped) == 1, [e.event_type for e in events]
    return stopped[0].payload


@pytest.mark.parametrize(
    ("name", "config", "on", "off", "watts"),
    [
        (
            "gen1 shelly 2",
            fx.gen1(fx.SHELLY2),
            [(f"shellies/{fx.SHELLY2}/relay/power", b"600")],
            [(f"shellies/{fx.SHELLY2}/relay/power", b"0")],
            600,
        ),
        (
            "gen1 rgbw2",
            fx.gen1(fx.RGBW2),
            [(f"shellies/{fx.RGBW2}/color/0/power", b"150")],
            [(f"shellies/{fx.RGBW2}/color/0/power", b"0")],
            150,
        ),
        (
            "gen1 3em",
            fx.gen1(fx.EM3, channel="emeter/*"),
            [(f"shellies/{fx.EM3}/emeter/{i}/power", b"1000") for i in range(3)],
            [(f"shellies/{fx.EM3}/emeter/{i}/power", b"0") for i in range(3)],
            3000,
        ),
        (
            "tasmota",
            fx.TASMOTA,
            [("tele/tasmota_A1B2C3/SENSOR", b'{"ENERGY":{"Power":800}}')],
            [("tele/tasmota_A1B2C3/SENSOR", b'{"ENERGY":{"Power":0}}')],
            800,
        ),
        (
            "tasmota 3ch",
            fx.TASMOTA_3CH,
            [("tele/tasmota_PZEM3/SENSOR", b'{"ENERGY":{"Power":[100,200,300]}}')],
            [("tele/tasmota_PZEM3/SENSOR", b'{"ENERGY":{"Power":[0,0,0]}}')],
            600,
        ),
        (
            "zigbee2mqtt",
            fx.Z2M,
            [("zigbee2mqtt/laser plug", b'{"power":1500,"state":"ON"}')],
            [("zigbee2mqtt/laser plug", b'{"power":0,"state":"OFF"}')],
            1500,
        ),
        (
            "esphome",
            fx.ESPHOME,
            [("lathe/sensor/power/state", b"900"), ("lathe/sensor/voltage/state", b"230")],
            [("lathe/sensor/power/state", b"0"), ("lathe/sensor/voltage/state", b"230")],
            900,
        ),
    ],
)
def test_each_family_opens_and_closes_a_session_with_its_seconds_and_energy(
    name, config, on, off, watts
):
    payload = _session(config, on, off)
    assert payload["total_s"] == 600
    assert payload["energy_wh"] == pytest.approx(watts * 600 / 3600, rel=1e-6)


@pytest.mark.parametrize(
    ("config", "will"),
    [
        (fx.TASMOTA, ("tele/tasmota_A1B2C3/LWT", b"Offline")),
        (fx.Z2M, ("zigbee2mqtt/laser plug/availability", b'{"state":"offline"}')),
        (fx.ESPHOME, ("lathe/status", b"offline")),
        (
            {
                "device_id": "plc",
                "mqtt_topic": "plc/power",
                "parser_type": "json_path",
                "power_path": "$",
                "offline_topic": "plc/lwt",
                "offline_payload": "dead",
            },
            ("plc/lwt", b"dead"),
        ),
    ],
)
def test_last_wills_of_every_family_end_the_session_and_prove_nothing(config, will):
    device = DeviceConfig.from_dict(config)
    ingestor = Ingestor([device])
    power_topic = {
        "tasmota": ("tele/tasmota_A1B2C3/SENSOR", b'{"ENERGY":{"Power":500}}'),
        "zigbee2mqtt": ("zigbee2mqtt/laser plug", b'{"power":500}'),
        "esphome": ("lathe/sensor/power/state", b"500"),
        "json_path": ("plc/power", b"500"),
    }[device.parser_type]
    ingestor.process(*power_topic, T0)
    ingestor.process(*power_topic, T0 + 60)
    assert ingestor.offline_notice(*will) == device.device_id
    events = ingestor.process(*will, T0 + 120)
    timeout = [e for e in events if e.event_type == "session_timeout"]
    assert len(timeout) == 1
    assert timeout[0].payload["total_s"] == 60  # ends at the last message
    assert ingestor.engines[device.device_id].last_msg_ms == round((T0 + 60) * 1000)


def test_zigbee2mqtt_offline_notice_is_no_sign_of_life():
    ingestor = Ingestor([DeviceConfig.from_dict(fx.Z2M)])
    ingestor.process("zigbee2mqtt/laser plug/availability", b"offline", T0)
    engine = ingestor.engines[fx.Z2M["device_id"]]
    assert engine.last_msg_ms is None and engine.online is False


def test_topic_filters_follow_each_family():
    ingestor = Ingestor(
        [
            DeviceConfig.from_dict(c)
            for c in (
                fx.TASMOTA,
                fx.TASMOTA_SWAPPED | {"device_id": "b", "mqtt_topic": "t2"},
                fx.Z2M,
                fx.ESPHOME,
            )
        ]
    )
    assert ingestor.topic_filters() == {
        "tele/tasmota_A1B2C3/#",
        "stat/tasmota_A1B2C3/#",
        "t2/#",
        "zigbee2mqtt/laser plug/#",
        "lathe/#",
    }
    ingestor.discovery = True
    assert "shellies/announce" in ingestor.topic_filters()
    assert "tasmota/discovery/+/config" in ingestor.topic_filters()


@pytest.mark.parametrize(
    "config",
    [
        {**fx.TASMOTA, "channel": "L1"},
        {**fx.TASMOTA, "full_topic": "%topic%/tele/"},
        {**fx.ESPHOME, "channel": "sensor/power"},
        {"device_id": "x", "mqtt_topic": "x", "parser_type": "json_path", "power_path": "a b"},
    ],
)
def test_configurations_a_family_cannot_read_are_refused(config):
    with pytest.raises(ConfigError):
        DeviceConfig.from_dict(config)


def test_json_path_plain_number_and_sum():
    config = DeviceConfig.from_dict(
        {"device_id": "p", "mqtt_topic": "p", "parser_type": "json_path", "power_path": "$"}
    )
    assert try_message(config, "p", b"412.5")["power_w"] == 412.5
    assert try_message(config, "p", b"[100, 200]")["power_w"] == 300
    assert try_message(config, "p", b"true")["drop"] == "wrong_type"
    assert try_message(config, "p", b'"12"')["drop"] == "wrong_type"


# -- discovery -------------------------------------------------------------------------


def test_discovery_of_a_gen2_pro3em_suggests_all_phases():
    (found,) = discover(f"{fx.PRO3EM}/events/rpc", fx.PRO3EM_FULL_STATUS)
    assert (found.parser_type, found.mqtt_topic, found.channel) == (
        "shelly_gen2",
        fx.PRO3EM,
        "em1:*",
    )
    assert found.components == ["em1:0", "em1:1", "em1:2"] and found.model == "shellypro3em"


def test_discovery_of_a_gen1_announce():
    (found,) = discover("shellies/announce", fx.EM3_ANNOUNCE)
    assert (found.parser_type, found.mqtt_topic, found.channel) == (
        "shelly_gen1",
        f"shellies/{fx.EM3}",
        "emeter/*",
    )
    assert "3EM" in found.model


def test_discovery_of_tasmota_joins_config_and_sensors():
    ingestor = Ingestor([])
    ingestor.discovery = True
    assert ingestor.discover(
        "tasmota/discovery/A4CF12A1B2C3/config", fx.TASMOTA_DISCOVERY_CONFIG, T0
    )
    assert ingestor.discover(
        "tasmota/discovery/A4CF12A1B2C3/sensors", fx.TASMOTA_DISCOVERY_SENSORS, T0 + 1
    )
    (entry,) = ingestor.take_discovered()
    assert entry["mqtt_topic"] == "tasmota_A1B2C3" and entry["full_topic"] == "%prefix%/%topic%/"
    assert entry["model"] == "Sonoff Pow R2" and entry["components"] == ["ENERGY.Power"]
    assert entry["last_seen"] == T0 + 1
    assert ingestor.take_discovered() == []


def test_discovery_of_zigbee2mqtt_lists_meters_only():
    found = discover("zigbee2mqtt/bridge/devices", fx.Z2M_BRIDGE_DEVICES)
    assert [(f.device_id, f.mqtt_topic, f.components) for f in found] == [
        ("0xa4c138d1e2f3a4b5", "zigbee2mqtt/laser plug", ["power"])
    ]


def test_discovered_configuration_runs_a_device():
    for topic, payload in [
        (f"{fx.PRO3EM}/events/rpc", fx.PRO3EM_FULL_STATUS),
        ("shellies/announce", fx.EM3_ANNOUNCE),
        ("tasmota/discovery/A4CF12A1B2C3/config", fx.TASMOTA_DISCOVERY_CONFIG),
        ("zigbee2mqtt/bridge/devices", fx.Z2M_BRIDGE_DEVICES),
    ]:
        for found in discover(topic, payload):
            config = DeviceConfig.from_dict(found.to_dict())
            assert Ingestor([config]).topic_filters()


def test_configured_devices_are_not_discovered_and_discovery_is_switchable():
    ingestor = Ingestor([DeviceConfig.from_dict(fx.gen2(fx.PRO3EM))])
    assert not ingestor.discover(f"{fx.PRO3EM}/events/rpc", fx.PRO3EM_FULL_STATUS, T0)
    ingestor.discovery = True
    assert not ingestor.discover(f"{fx.PRO3EM}/events/rpc", fx.PRO3EM_FULL_STATUS, T0)
    assert ingestor.discover("shellies/announce", fx.EM3_ANNOUNCE, T0)
    assert [e["key"] for e in ingestor.take_discovered()] == [f"shelly_gen1:{fx.EM3}"]


def test_topic_matches():
    assert topic_matches("+/events/rpc", "shellyplus1pm-x/events/rpc")
    assert not topic_matches("+/events/rpc", "a/b/events/rpc")
    assert topic_matches("tasmota/discovery/+/config", "tasmota/discovery/AB/config")
    assert topic_matches("a/#", "a")


def test_a_large_zigbee2mqtt_network_is_discovered():
    devices = json.loads(fx.Z2M_BRIDGE_DEVICES)
    plug = devices[1]
    many = [dict(plug, friendly_name=f"plug {i}", ieee_address=f"0x{i:016x}") for i in range(120)]
    payload = json.dumps(many).encode()
    assert len(payload) > 64 * 1024
    ingestor = Ingestor([])
    ingestor.discovery = True
    assert ingestor.discover("zigbee2mqtt/bridge/devices", payload, T0)
    assert len(ingestor.take_discovered()) == 120
