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


def feed(ingestor, script, start=0, stop=None):
    """Run script[start:stop]; times derive from the gaps, so any slice lines up."""
    events = []
    now = T0
    for index, (gap, body, skewed) in enumerate(script):
        now += gap
        if index < start or (stop is not None and index >= stop):
            continue
        if isinstance(body, tuple):
            topic, payload = body
        else:
            device_ts = now - 0.7 if skewed else now
            topic, payload = rpc(body, ts=device_ts)
        events += ingestor.process(topic, payload, now)
    return events, now


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
