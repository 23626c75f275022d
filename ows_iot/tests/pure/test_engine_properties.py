"""Invariants of the engine under arbitrary input (hypothesis)."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ows_iot.services.ingestor import Ingestor

from .helpers import GEN1, GEN2, T0, gen1_config, gen2_config, online, rpc

CONFIGS = [
    gen2_config(
        start_debounce_s=3, stop_debounce_s=15, message_timeout_s=120, heartbeat_interval_s=60
    ),
    gen1_config(
        start_debounce_s=0, stop_debounce_s=5, message_timeout_s=40, heartbeat_interval_s=25
    ),
]

power = st.one_of(
    st.sampled_from([0.0, 5.0, 19.9, 20.0, 50.0, 99.9, 100.0, 500.0, -300.0]),
    st.floats(min_value=-2000, max_value=2000, allow_nan=False),
)


@st.composite
def message(draw):
    kind = draw(st.sampled_from(["gen2", "gen2", "energy", "gen1", "online", "skewed"]))
    gap = draw(st.sampled_from([0, 0.5, 1, 2.5, 3, 10, 15, 30, 61, 130]))
    if kind == "gen1":
        watts = draw(power)
        return gap, (f"shellies/{GEN1}/relay/0/power", repr(watts).encode()), False
    if kind == "online":
        return (
            gap,
            online(draw(st.booleans()), draw(st.sampled_from([GEN2, f"shellies/{GEN1}"]))),
            False,
        )
    if kind == "energy":
        return gap, None, None
    return gap, draw(power), kind == "skewed"


messages = st.lists(message(), max_size=60)


def frames(script):
    """(topic, payload, receive time) of each message; times derive from the gaps."""
    result = []
    now = T0
    for gap, body, skewed in script:
        now += gap
        if isinstance(body, tuple):
            topic, payload = body
        else:
            device_ts = now - 0.7 if skewed else now
            topic, payload = rpc(body, ts=device_ts)
        result.append((topic, payload, now))
    return result


def feed(ingestor, script, start=0, stop=None):
    """Run script[start:stop]; times derive from the gaps, so any slice lines up."""
    events = []
    now = T0
    for index, (topic, payload, now) in enumerate(frames(script)):
        if index < start or (stop is not None and index >= stop):
            continue
        events += ingestor.process(topic, payload, now)
    return events, (now if script else T0)


def finish(ingestor, now):
    return ingestor.advance(now + 1000)


def summaries(events):
    return [e.to_dict() for e in events]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_every_session_second_is_working_or_standby(script):
    ingestor = Ingestor(CONFIGS)
    events, now = feed(ingestor, script)
    events += finish(ingestor, now)
    started = {e.session_id for e in events if e.event_type == "session_started"}
    ended = [e for e in events if e.event_type in ("session_stopped", "session_timeout")]
    assert {e.session_id for e in ended} == started
    for event in events:
        if event.session_id is None:
            continue
        p = event.payload
        assert p["working_s"] >= 0 and p["standby_s"] >= 0 and p["energy_wh"] >= -1e-9
        if p["end"] is not None:
            assert round((p["working_s"] + p["standby_s"]) * 1000) == round(
                (p["end"] - p["start"]) * 1000
            )
            assert p["end"] >= p["start"]


@settings(max_examples=150, deadline=None)
@given(messages)
def test_same_input_same_output_and_uids(script):
    first = Ingestor(CONFIGS)
    second = Ingestor(CONFIGS)
    a, now = feed(first, script)
    b, _ = feed(second, script)
    assert summaries(a + finish(first, now)) == summaries(b + finish(second, now))


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(min_value=0, max_value=60))
def test_snapshot_restore_continues_exactly(script, cut):
    whole = Ingestor(CONFIGS)
    expected, now = feed(whole, script)
    expected += finish(whole, now)

    before = Ingestor(CONFIGS)
    events, _ = feed(before, script, stop=cut)
    state = json.loads(json.dumps(before.snapshot()))
    after = Ingestor(CONFIGS)
    after.restore(state)
    more, now = feed(after, script, start=cut)
    events += more + finish(after, now)
    assert summaries(events) == summaries(expected)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                f"{GEN2}/events/rpc",
                f"{GEN2}/status/pm1:0",
                f"{GEN2}/online",
                f"shellies/{GEN1}/relay/0/power",
                f"shellies/{GEN1}/online",
                f"{GEN2}/status/em:0",
                f"{GEN2}",
                f"shellies/{GEN1}/emeter/1/power",
            ]
        ),
    ),
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
            lambda kids: (
                st.lists(kids, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        ["ts", "params", "method", "pm1:0", "apower", "switch:0", "id"]
                    ),
                    kids,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 2**40),
)
def test_arbitrary_topics_and_bytes_never_raise(topic, payload, ts):
    ingestor = Ingestor(CONFIGS)
    ingestor.process(topic, payload, ts)
    ingestor.process(topic, payload, T0)
    assert ingestor.messages == 2


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=60))
def test_redelivered_copies_after_a_restore_change_nothing(script, cut, copies):
    # The leader committed script[:cut] but its acknowledgements were lost: the
    # next leader restores the snapshot and gets the last messages again, late.
    whole = Ingestor(CONFIGS)
    expected, now = feed(whole, script)
    expected += finish(whole, now)

    before = Ingestor(CONFIGS)
    events, delivered_at = feed(before, script, stop=cut)
    after = Ingestor(CONFIGS)
    after.restore(json.loads(json.dumps(before.snapshot())))
    for topic, payload, _sent in frames(script)[max(0, cut - copies) : cut]:
        events += after.process(topic, payload, delivered_at, True, True)
    more, now = feed(after, script, start=cut)
    events += more + finish(after, now)
    assert summaries(events) == summaries(expected)


# Meters with a clock, each message stamped when it is sent (no transport delay:
# live, a late message can only be judged at its arrival).
clocked = st.lists(
    st.tuples(
        st.sampled_from([0, 0.5, 1, 2.5, 3, 10, 15, 30, 61, 130]),
        st.one_of(power, st.none()),
        st.just(False),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    clocked,
    st.integers(min_value=0, max_value=60),
    st.sampled_from([10, 45, 120, 600, 3600]),
)
def test_a_backlog_after_any_gap_replays_in_device_time(script, cut, gap_s):
    # Meters with a clock: whatever was published while no one consumed arrives
    # at once, gap_s late, and ends in exactly the events of an uninterrupted run.
    # (A meter's very first message has no history to be judged by: it is live.)
    cut = 1 + cut % len(script)
    whole = Ingestor(CONFIGS)
    expected, now = feed(whole, script)
    expected += finish(whole, now)

    before = Ingestor(CONFIGS)
    events, _ = feed(before, script, stop=cut)
    after = Ingestor(CONFIGS)
    after.restore(json.loads(json.dumps(before.snapshot())))
    sent = frames(script)
    back_at = sent[cut - 1][2] + gap_s
    for topic, payload, sent_at in sent[cut:]:
        late = sent_at <= back_at
        events += after.process(topic, payload, back_at if late else sent_at, late)
    events += finish(after, max(now, back_at))
    assert summaries(events) == summaries(expected)
