"""The simulator: profile → messages without a broker, and publishing to a real one."""

from __future__ import annotations

import itertools
import json
import signal
import time

import paho.mqtt.client as mqtt
import pytest

from ows_iot.services.config import DeviceConfig
from ows_iot.services.replay import replay
from ows_iot.services.simulator import (
    KINDS,
    ProfileError,
    builtin_profiles,
    capture_lines,
    customise,
    load_profile,
    parse_profile,
    simulate,
)
from ows_iot.services.trial import try_message

from .mqtt_broker import run_tool, running_mosquitto, start_tool, wait_for_text

T0 = 1_700_000_000.0  # on a minute boundary + 20 s
LASER = "shellypmminig3-48f6eeb73a1c"


def device(kind="pm1", steps=None, **extra):
    if steps is None:
        steps = [{"power_w": 0, "duration_s": 10}]
    return {"kind": kind, "steps": steps, **extra}


def generate(profile_data, **options):
    profile = (
        profile_data if not isinstance(profile_data, dict | list) else parse_profile(profile_data)
    )
    options.setdefault("start_ts", T0)
    return list(simulate(profile, **options))


def frames(messages, topic_suffix="/events/rpc"):
    return [(m.ts, json.loads(m.payload)) for m in messages if m.topic.endswith(topic_suffix)]


def component_frames(messages, component="pm1:0"):
    return [(ts, f) for ts, f in frames(messages) if component in f["params"]]


# -- every built-in profile -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(builtin_profiles()))
def test_builtin_profile_gives_well_formed_messages(name):
    profile = load_profile(name)
    assert profile.description
    messages = generate(profile)
    assert messages
    stamps = [m.ts for m in messages]
    assert stamps == sorted(stamps)
    assert stamps[0] == T0 and stamps[-1] <= T0 + profile.duration_s
    for message in messages:
        dev = next(d for d in profile.devices if _owns(d, message.topic))
        assert isinstance(message.payload, bytes)
        if message.topic == dev.online_topic:
            assert message.payload in (dev.online_payload(True), dev.online_payload(False))
            assert message.retain
            continue
        assert not message.retain
        if not dev.kind_info.is_shelly:
            config = DeviceConfig(
                device_id=dev.device_id,
                mqtt_topic=dev.prefix,
                parser_type=dev.kind_info.parser_type,
            )
            assert try_message(config, message.topic, message.payload)["drop"] is None
            continue
        if dev.kind_info.is_gen1:
            if not message.topic.endswith("/relay/0"):
                float(message.payload)  # plain-text numbers
            continue
        frame = json.loads(message.payload)
        if "/status/" in message.topic:
            assert frame["id"] == dev.channel
            continue
        assert frame["src"] == dev.device_id
        assert frame["dst"] == f"{dev.prefix}/events"
        assert frame["method"] in ("NotifyStatus", "NotifyFullStatus")
        assert frame["params"]["ts"] == pytest.approx(message.ts, abs=0.006)
    for dev in profile.devices:
        own = [m for m in messages if _owns(dev, m.topic)]
        assert own[0].topic == dev.online_topic and own[0].payload == dev.online_payload(True)


def _owns(dev, topic):
    return (
        topic.startswith(dev.prefix + "/")
        or topic in (dev.prefix, dev.online_topic)
        or (topic.startswith(f"tele/{dev.prefix}/"))
    )


def test_each_kind_has_a_builtin_profile():
    kinds = {d.kind for name in builtin_profiles() for d in load_profile(name).devices}
    assert kinds == set(KINDS)


def replay_sessions(profile, messages, until, **config):
    devices = [
        DeviceConfig(
            device_id=d.device_id,
            mqtt_topic=d.prefix,
            parser_type=d.kind_info.parser_type,
            channel=d.kind_info.channel_setting,
            **config,
        )
        for d in profile.devices
    ]
    lines = []
    replay(devices, ((m.ts, m.topic, m.payload) for m in messages), until, write=lines.append)
    return [s for s in map(json.loads, lines) if s["kind"] == "session"]


def test_meters_profile_plays_every_other_meter_family_with_right_sessions():
    profile = load_profile("meters")
    sessions = replay_sessions(profile, generate(profile), T0 + 2000)
    got = {s["device_id"]: (s["status"], s["start"] - T0, s["end"] - T0) for s in sessions}
    assert got == {
        "shellyem3-ECFABCC7F0A2": ("completed", 60, 660),
        "shellypro3em-08f9e0e5a1b2": ("completed", 120, 420),
        "tasmota_A1B2C3": ("completed", 90, 330),
        "laser-plug": ("completed", 30, 450),
        "lathe": ("completed", 45, 405),
    }
    energy = {s["device_id"]: s["energy_wh"] for s in sessions}
    # All phases count: 4.5 kW for 600 s, 3 kW for 300 s.
    assert energy["shellyem3-ECFABCC7F0A2"] == pytest.approx(750, rel=0.02)
    assert energy["shellypro3em-08f9e0e5a1b2"] == pytest.approx(250, rel=0.02)
    assert energy["tasmota_A1B2C3"] == pytest.approx(120, rel=0.02)
    assert energy["laser-plug"] == pytest.approx(70, rel=0.02)
    assert energy["lathe"] == pytest.approx(90, rel=0.02)


def test_three_phase_kinds_publish_every_phase():
    profile = load_profile("meters")
    messages = generate(profile)
    em3 = {
        m.topic.split("/")[3]
        for m in messages
        if m.topic.endswith("/power") and "emeter" in m.topic
    }
    assert em3 == {"0", "1", "2"}
    full = [f for _, f in frames(messages) if f["method"] == "NotifyFullStatus"]
    assert {"em1:0", "em1:1", "em1:2"} <= set(full[0]["params"])


def test_laser_job_is_one_session_of_120_s_working():
    profile = load_profile("laser-job")
    sessions = replay_sessions(profile, generate(profile), T0 + 400)
    assert [(s["status"], s["start"] - T0, s["end"] - T0) for s in sessions] == [
        ("completed", 30, 150)
    ]
    assert sessions[0]["working_s"] == 120 and sessions[0]["standby_s"] == 0
    assert sessions[0]["energy_wh"] == pytest.approx(18, rel=0.02)


def test_idle_noise_makes_no_session():
    profile = load_profile("idle-noise")
    assert replay_sessions(profile, generate(profile), T0 + 1200) == []


def test_cnc_day_is_two_sessions_split_by_lunch():
    profile = load_profile("cnc-day")
    sessions = replay_sessions(profile, generate(profile), T0 + profile.duration_s + 60)
    assert [(s["start"] - T0, s["end"] - T0) for s in sessions] == [(600, 8590), (10390, 20711)]
    # The 8 s emergency stop is a cancelled stop: standby, inside the first session.
    assert sessions[0]["standby_s"] == 900 + 360 + 8 + 600


def test_printer_alternates_working_and_standby_in_one_session():
    profile = load_profile("printer")
    sessions = replay_sessions(profile, generate(profile), T0 + profile.duration_s + 60)
    assert len(sessions) == 1
    assert sessions[0]["working_s"] == 240 + 30 * 40
    assert sessions[0]["standby_s"] == 30 * 50


def test_offline_drop_ends_both_sessions_in_timeout():
    profile = load_profile("offline-drop")
    sessions = replay_sessions(profile, generate(profile), T0 + profile.duration_s + 60)
    assert sorted(s["status"] for s in sessions) == ["timeout", "timeout"]


# -- Gen2 reporting -------------------------------------------------------------------


def laser(**extra):
    return [
        device(
            "pm1",
            [
                {"power_w": 0, "duration_s": 30},
                {"power_w": 540, "jitter_w": 5, "duration_s": 240},
                {"power_w": 0, "duration_s": 60},
            ],
            device_id=LASER,
            **extra,
        )
    ]


def test_starts_with_retained_online_then_full_status():
    messages = generate(laser())
    assert messages[0] == (T0, f"{LASER}/online", b"true", True)
    full = json.loads(messages[1].payload)
    assert messages[1].topic == f"{LASER}/events/rpc"
    assert full["method"] == "NotifyFullStatus"
    status = full["params"]["pm1:0"]
    assert status["apower"] == 0 and status["voltage"] > 200 and "aenergy" in status
    assert {"sys", "wifi", "mqtt"} <= set(full["params"])


def test_power_is_reported_on_change_only():
    power = [
        (ts - T0, f["params"]["pm1:0"]["apower"])
        for ts, f in component_frames(generate(laser()))
        if f["method"] == "NotifyStatus" and "apower" in f["params"]["pm1:0"]
    ]
    # ±5 W of jitter on 540 W stays under the 5 % threshold: one report per step.
    assert [t for t, _ in power] == [30, 270]
    assert power[0][1] == pytest.approx(540, abs=5) and power[1][1] == 0


def test_energy_only_frames_once_a_minute_while_steady():
    energy = [
        (ts, f["params"]["pm1:0"])
        for ts, f in component_frames(generate(laser()))
        if f["method"] == "NotifyStatus" and "apower" not in f["params"]["pm1:0"]
    ]
    stamps = [ts for ts, _ in energy]
    assert all(ts % 60 == 0 for ts in stamps)
    assert [b - a for a, b in itertools.pairwise(stamps)] == [60] * (len(stamps) - 1)
    assert len(stamps) == 5  # minutes starting within the 330 s
    for ts, status in energy:
        assert set(status) == {"id", "aenergy", "ret_aenergy"}
        assert status["aenergy"]["minute_ts"] == ts
    steady = [s["aenergy"] for ts, s in energy if T0 + 30 + 60 <= ts <= T0 + 270]
    totals = [a["total"] for a in steady]
    for before, after in itertools.pairwise(totals):
        assert after - before == pytest.approx(540 / 60, rel=0.02)  # Wh in a minute
    assert steady[-1]["by_minute"][0] == pytest.approx(540 / 60 * 1000, rel=0.02)


def test_device_clock_offset_shifts_params_ts():
    for _, frame in frames(generate(laser(clock_offset_s=-7.5))):
        assert "ts" in frame["params"]
    messages = generate(laser(clock_offset_s=-7.5))
    for message in messages:
        if message.topic.endswith("/events/rpc"):
            assert json.loads(message.payload)["params"]["ts"] == pytest.approx(message.ts - 7.5)


def test_status_topics_carry_the_full_component_status():
    messages = generate(laser(status_topics=True))
    status = [json.loads(m.payload) for m in messages if m.topic == f"{LASER}/status/pm1:0"]
    assert status and all({"apower", "aenergy", "voltage"} <= set(s) for s in status)


@pytest.mark.parametrize(
    ("kind", "component", "power_key", "energy_component"),
    [
        ("switch", "switch:0", "apower", "switch:0"),
        ("em1", "em1:0", "act_power", "em1data:0"),
        ("em", "em:0", "total_act_power", "emdata:0"),
    ],
)
def test_other_gen2_components(kind, component, power_key, energy_component):
    data = device(kind, [{"power_w": 0, "duration_s": 30}, {"power_w": 1200, "duration_s": 130}])
    messages = generate([data])
    notify = [f for _, f in frames(messages) if f["method"] == "NotifyStatus"]
    power = [
        f["params"][component][power_key]
        for f in notify
        if power_key in f["params"].get(component, {})
    ]
    assert power == [pytest.approx(1200, abs=0.5)]
    energy = [f["params"][energy_component] for f in notify if energy_component in f["params"]]
    assert len(energy) >= 2
    full = next(f for _, f in frames(messages) if f["method"] == "NotifyFullStatus")
    assert component in full["params"]
    if kind == "switch":
        assert full["params"][component]["output"] is True
    if kind == "em":
        phases = [notify[0]["params"][component][f"{p}_act_power"] for p in "abc"]
        assert sum(phases) == pytest.approx(1200, abs=0.5)


def test_channel_selects_the_component_instance():
    messages = generate([device("switch", channel=2)])
    full = next(f for _, f in frames(messages) if f["method"] == "NotifyFullStatus")
    assert "switch:2" in full["params"] and full["params"]["switch:2"]["id"] == 2


# -- Gen1 -----------------------------------------------------------------------------


def test_gen1_relay_topics_are_plain_text_with_periodic_updates():
    gen1 = "shellyplug-s-7C87CEB4A1B2"
    data = device(
        "gen1-relay",
        [{"power_w": 0, "duration_s": 10}, {"power_w": 300, "duration_s": 65}],
        device_id=gen1,
    )
    messages = generate([data])
    prefix = f"shellies/{gen1}"
    assert messages[0] == (T0, f"{prefix}/online", b"true", True)
    power = [
        (m.ts - T0, float(m.payload)) for m in messages if m.topic == f"{prefix}/relay/0/power"
    ]
    # At connection, on the change at 10 s, then every 30 s with the whole state.
    assert power == [(0, 0.0), (10, 300.0), (30, 300.0), (60, 300.0)]
    energy = [m.payload for m in messages if m.topic == f"{prefix}/relay/0/energy"]
    assert all(value.isdigit() for value in energy)  # watt-minutes
    assert int(energy[-1]) - int(energy[0]) == pytest.approx(300 * 50 / 60, abs=1)
    assert {m.payload for m in messages if m.topic == f"{prefix}/relay/0"} == {b"on"}


def test_gen1_emeter_topics():
    messages = generate([device("gen1-emeter", [{"power_w": 750, "duration_s": 40}])])
    topics = {m.topic.rsplit("/", 1)[1] for m in messages if "/emeter/0/" in m.topic}
    assert {"power", "voltage", "total", "energy", "reactive_power"} <= topics


# -- timeline: offline, silent, end ---------------------------------------------------


def test_last_will_published_at_the_end_only_when_asked():
    assert generate(laser())[-1].topic != f"{LASER}/online"
    last = generate(laser(), offline_at_end=True)[-1]
    assert last == (T0 + 330, f"{LASER}/online", b"false", True)
    assert generate(laser(offline_at_end=True))[-1].payload == b"false"


def test_offline_at_drops_every_device_then():
    messages = generate([*laser(), device("switch")], offline_at_s=100)
    assert all(m.ts <= T0 + 100 for m in messages)
    last = [m for m in messages if m.ts == T0 + 100 and m.topic.endswith("/online")]
    assert {m.payload for m in last} == {b"false"}
    switch_lines = [m for m in messages if m.topic.startswith("shellyplus")]
    assert switch_lines[-1].payload == b"false"  # a finished device still drops at S


def test_offline_step_publishes_the_will_then_reconnects():
    steps = [
        {"power_w": 500, "duration_s": 40},
        {"offline": True, "duration_s": 100},
        {"power_w": 0, "duration_s": 20},
    ]
    messages = generate([device("pm1", steps, device_id=LASER)])
    online = [(m.ts - T0, m.payload) for m in messages if m.topic.endswith("/online")]
    assert online == [(0, b"true"), (40, b"false"), (140, b"true")]
    assert not [m for m in messages if T0 + 40 < m.ts < T0 + 140]
    methods = [f["method"] for ts, f in frames(messages) if ts == T0 + 140]
    assert methods[0] == "NotifyFullStatus"


def test_endless_offline_step_ends_the_device():
    steps = [{"power_w": 500, "duration_s": 40}, {"offline": True}]
    messages = generate([device("pm1", steps)], duration_s=1000)
    assert messages[-1].ts == T0 + 40 and messages[-1].payload == b"false"


def test_silent_step_publishes_nothing_but_energy_keeps_counting():
    steps = [
        {"power_w": 600, "duration_s": 30},
        {"silent": True, "power_w": 600, "duration_s": 300},
        {"power_w": 600, "duration_s": 70},
    ]
    messages = generate([device("pm1", steps)])
    assert not [m for m in messages if T0 + 30 <= m.ts < T0 + 330]
    totals = [(ts, f["params"]["pm1:0"]["aenergy"]["total"]) for ts, f in frames(messages)]
    (first_ts, first), (last_ts, last) = totals[0], totals[-1]
    assert last_ts > T0 + 330
    assert last - first == pytest.approx(600 * (last_ts - first_ts) / 3600, rel=0.01)


def test_loop_repeats_until_the_duration():
    messages = generate(laser(), loop=True, duration_s=1000)
    assert messages[-1].ts <= T0 + 1000
    starts = [
        ts - T0
        for ts, f in component_frames(messages)
        if f["params"]["pm1:0"].get("apower", 0) > 500
    ]
    assert starts == [30, 360, 690]


# -- determinism and overrides --------------------------------------------------------


def test_same_seed_same_messages_other_seed_other_noise():
    assert generate(laser(), seed=3) == generate(laser(), seed=3)
    first, other = generate(laser(), seed=3), generate(laser(), seed=4)
    assert [m.topic for m in first] == [m.topic for m in other]
    assert [m.payload for m in first] != [m.payload for m in other]


def test_capture_lines_use_simulated_time():
    lines = [json.loads(line) for line in capture_lines(generate(laser()))]
    assert lines[0] == {"ts": T0, "topic": f"{LASER}/online", "payload": "true"}


def test_replicas_get_their_own_ids_prefixes_and_noise():
    profile = customise(parse_profile(laser()), replicas=3)
    ids = [d.device_id for d in profile.devices]
    assert len(set(ids)) == 3 and ids[0] == LASER
    assert all(i.startswith("shellypmminig3-") for i in ids)
    assert [d.prefix for d in profile.devices] == ids
    messages = generate(profile)
    first_power = {
        f["src"]: f["params"]["pm1:0"]["apower"]
        for _, f in frames(messages)
        if f["params"]["ts"] == T0 + 30
    }
    assert len(set(first_power.values())) > 1


def test_overrides_of_id_prefix_and_kind():
    profile = customise(load_profile("laser-job"), device_id="shellypmminig3-aabbccddeeff")
    assert profile.devices[0].prefix == "shellypmminig3-aabbccddeeff"
    profile = customise(load_profile("laser-job"), prefix="workshop/{id}")
    assert profile.devices[0].prefix == f"workshop/{LASER}"
    profile = customise(load_profile("laser-job"), kind="gen1-relay")
    assert profile.devices[0].prefix.startswith("shellies/shellyplug-s-")
    with pytest.raises(ProfileError, match=r"\{id\}"):
        customise(load_profile("workshop"), prefix="fixed")
    with pytest.raises(ProfileError, match="single device"):
        customise(load_profile("workshop"), device_id="x")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "non-empty"),
        ([device("pm2")], "kind must be one of"),
        ([device(steps=[])], "steps must not be empty"),
        ([device(steps=[{"power_w": 1}])], "duration_s is missing"),
        ([device(steps=[{"duration_s": 1}])], "power_w is missing"),
        ([device(steps=[{"power_w": 1, "duration_s": -1}])], "at least 0"),
        ([device(steps=[{"power_w": "x", "duration_s": 1}])], "power_w must be a number"),
        ([device(steps=[{"power_w": 1, "duration_s": 1, "jiter_w": 1}])], "unknown keys jiter_w"),
        ([device(steps=[{"offline": True}, {"power_w": 0, "duration_s": 1}])], "not last"),
        ([device(steps=[{"repeat": 0, "steps": []}])], "repeat must be"),
        ([device(device_id="a"), device(device_id="a")], "share the device_id"),
        ([device(prefix="a/#")], "without wildcards"),
        ([device(colour="red")], "unknown keys colour"),
    ],
)
def test_bad_profiles_are_refused_with_the_reason(data, message):
    with pytest.raises(ProfileError, match=message):
        parse_profile(data, source="p.json")


# -- command line ---------------------------------------------------------------------


def test_dry_run_prints_the_capture(tmp_path):
    result = run_tool("simulator", "laser-job", "--dry-run", "--start-ts", str(T0), "--seed", "1")
    assert result.returncode == 0, result.stderr
    expected = b"".join(capture_lines(generate(load_profile("laser-job"), seed=1)))
    assert result.stdout == expected


def test_dry_run_capture_file_with_profile_file(tmp_path):
    profile_path = tmp_path / "mine.json"
    profile_path.write_text(json.dumps(laser()))
    out = tmp_path / "capture.jsonl"
    result = run_tool(
        "simulator", str(profile_path), "--dry-run", "--capture", str(out),
        "--start-ts", str(T0), "--offline-at-end",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[-1] == {"ts": T0 + 330, "topic": f"{LASER}/online", "payload": "false"}


def test_help_explains_the_simulated_clock():
    result = run_tool("simulator", "--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "--speed" in text and "simulated clock" in text and "params.ts" in text


def test_list_profiles_names_every_builtin():
    result = run_tool("simulator", "--list-profiles")
    assert result.returncode == 0
    for name in builtin_profiles():
        assert name in result.stdout.decode()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["no-such-profile", "--dry-run"], "built-in"),
        (["laser-job", "--port", "1", "--host", "127.0.0.1"], "refused"),
    ],
)
def test_errors_are_one_line(args, fragment):
    result = run_tool("simulator", *args)
    assert result.returncode == 2
    text = result.stderr.decode()
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1
    assert fragment in text


def test_broken_profile_file_is_one_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    result = run_tool("simulator", str(path), "--dry-run")
    assert result.returncode == 2 and b"not valid JSON" in result.stderr
    assert b"Traceback" not in result.stderr


# -- against a broker -----------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


def retained(broker, topic, timeout=3.0):
    """The retained payload of ``topic`` (None when there is none)."""
    got = []
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    deadline = time.monotonic() + timeout
    client.loop_start()
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    return got[0] if got else None


def sim_args(broker, device_id):
    return [*broker.args, "--prefix", f"{broker.root}/{{id}}", "--device-id", device_id]


@pytest.mark.mqtt
def test_publishes_retained_online_and_the_will_at_the_end(broker, tmp_path):
    device_id = "shellypmminig3-00000000aa01"
    topic = f"{broker.root}/{device_id}/online"
    result = run_tool(
        "simulator", "laser-job", *sim_args(broker, device_id), "--speed", "inf", "--qos", "1"
    )
    assert result.returncode == 0, result.stderr
    assert b"done: published" in result.stderr
    assert retained(broker, topic) == b"true"
    result = run_tool(
        "simulator", "laser-job", *sim_args(broker, device_id), "--speed", "inf",
        "--offline-at-end",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert retained(broker, topic) == b"false"


@pytest.mark.mqtt
def test_broker_publishes_the_last_will_when_the_simulator_dies(broker, tmp_path):
    device_id = "shellypmminig3-00000000aa02"
    topic = f"{broker.root}/{device_id}/online"
    stderr_path = tmp_path / "sim.stderr"
    with stderr_path.open("wb") as stderr:
        process = start_tool(
            "simulator", "cnc-day", *sim_args(broker, device_id), "--keepalive", "5",
            stderr=stderr,
        )  # fmt: skip
    try:
        wait_for_text(stderr_path, "publishing to", process)
        assert retained(broker, topic) == b"true"
        process.kill()  # no DISCONNECT: the broker sends the will
        process.wait(5)
        deadline = time.monotonic() + 10
        while retained(broker, topic, timeout=0.5) != b"false":
            assert time.monotonic() < deadline, "the broker did not publish the last will"
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.mqtt
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_a_signal(broker, tmp_path, signum):
    device_id = f"shellypmminig3-00000000ab{signum:02d}"
    topic = f"{broker.root}/{device_id}/online"
    stderr_path = tmp_path / "sim.stderr"
    with stderr_path.open("wb") as stderr:
        process = start_tool(
            "simulator", "cnc-day", *sim_args(broker, device_id), "--offline-at-end",
            stderr=stderr,
        )  # fmt: skip
    wait_for_text(stderr_path, "publishing to", process)
    process.send_signal(signum)
    try:
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    text = stderr_path.read_text()
    assert "stopped: published" in text and "Traceback" not in text
    assert retained(broker, topic) == b"false"
