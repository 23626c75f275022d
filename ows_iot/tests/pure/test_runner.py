"""The checkpoint loop: commit before acknowledging, backoff, overflow, catch-up."""

import json
from dataclasses import dataclass

import pytest

from ows_iot.services.ingestor import Ingestor
from ows_iot.services.runner import BufferOverflow, LeadershipLost, Runner

from .helpers import GEN1, GEN2, T0, gen1_config, gen2_config, online, rpc


@dataclass
class Msg:
    topic: str
    payload: bytes
    receive_ts: float
    retain: bool = False
    mid: int = 0
    dup: bool = False


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


class Store:
    """What a database would hold: events by uid (idempotent) and device snapshots."""

    def __init__(self):
        self.events = {}
        self.order = []
        self.states = {}
        self.fail = None
        self.commits = 0

    def commit(self, events, states, failed=()):
        if self.fail is not None:
            raise self.fail
        self.failed = getattr(self, "failed", []) + [event["event_uid"] for event, _ in failed]
        for event in json.loads(json.dumps(events)):
            if event["event_uid"] not in self.events:
                self.events[event["event_uid"]] = event
                self.order.append(event["event_uid"])
        self.states.update(json.loads(json.dumps(states)))
        self.commits += 1


def make(clock, store, acked, configs=None, **kwargs):
    ingestor = Ingestor(configs or [gen2_config()])
    for device_id, state in store.states.items():
        ingestor.restore_device(device_id, state)
    kwargs.setdefault("flush_interval_s", 0.5)
    runner = Runner(
        ingestor,
        store.commit,
        lambda m: acked.append(m.mid) or True,
        clock=clock,
        monotonic=clock,
        **kwargs,
    )
    return runner


def live(runner, clock):
    """Connect and let the (empty) backlog pass, so the clock ticks."""
    runner.connection_changed(True)
    runner.step(0)
    clock.now += 1.1
    runner.step(0)
    assert not runner.catching_up


def feed_readings(runner, clock, count, watts):
    """One reading a second from now on (mids 1..count); returns the first one's time."""
    start = clock.now
    for i in range(count):
        clock.now = start + i
        runner.submit(power_msg(start - T0 + i, watts, mid=i + 1))
        runner.step(0)
    return start


def power_msg(offset, watts, mid, late=0.0):
    topic, payload = rpc(watts, ts=T0 + offset)
    return Msg(topic, payload, T0 + offset + late, mid=mid)


def test_acknowledges_only_after_the_commit():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    base = clock.now - T0
    for i in range(5):
        runner.submit(power_msg(base + i * 0.05, 150.0, mid=i + 1))
    clock.now += 0.25
    runner.step(0)
    assert acked == [] and store.commits == 0 and runner.status()["pending_acks"] == 5
    clock.now += 0.3
    runner.step(0)
    assert acked == [1, 2, 3, 4, 5]
    assert store.commits == 1
    assert store.states[GEN2]["state"] == "starting"
    assert runner.status()["pending_acks"] == 0


def test_size_limit_flushes_without_waiting():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked, max_pending=3)
    live(runner, clock)
    base = clock.now - T0
    for i in range(7):
        runner.submit(power_msg(base + i * 0.01, 5.0, mid=i + 1))
    runner.step(0)
    assert acked[:6] == [1, 2, 3, 4, 5, 6]


def test_failed_commits_keep_the_buffer_and_back_off():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    base = clock.now - T0
    store.fail = OSError("connection refused")
    for i in range(10):
        runner.submit(power_msg(base + i, 150.0, mid=i + 1))
        clock.now += 1
        runner.step(0)
    assert acked == []
    failures = runner.stats.commit_failures
    assert 2 <= failures < 10  # backoff: not every step retried
    assert runner.status()["last_commit_error"] == "OSError: connection refused"
    store.fail = None
    clock.now += 60
    runner.step(0)
    assert acked == list(range(1, 11))
    types = [store.events[uid]["event_type"] for uid in store.order]
    assert "session_started" in types
    assert runner.status()["last_commit_error"] is None


def test_overflow_discards_and_reports():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked, max_pending=5, max_buffer=20)
    live(runner, clock)
    store.fail = OSError("down")
    base = clock.now - T0
    with pytest.raises(BufferOverflow):
        for i in range(100):
            runner.submit(power_msg(base + i, 150.0, mid=i + 1))
            clock.now += 0.01
            runner.step(0)
    status = runner.status()
    assert status["overflows"] == 1
    assert status["overflow_messages"] + status["overflow_events"] > 20
    assert status["pending_acks"] == 0 and acked == []


def test_lost_leadership_acknowledges_nothing():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    store.fail = LeadershipLost("lock gone")
    runner.submit(power_msg(clock.now - T0, 150.0, mid=1))
    clock.now += 1
    with pytest.raises(LeadershipLost):
        runner.step(0)
    assert acked == []


def test_retained_messages_are_acknowledged_but_not_applied():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    topic, payload = rpc(500.0, ts=clock.now)
    runner.submit(Msg(topic, payload, clock.now, retain=True, mid=7))
    runner.submit(Msg(*online(True), clock.now, retain=True, mid=8))
    clock.now += 10
    runner.step(0)
    assert acked == [7, 8]
    assert runner.ingestor.engines[GEN2].state == "idle"
    assert runner.ingestor.engines[GEN2].last_msg_ms is None
    assert runner.status()["dropped"] == {"retained": 2}


def test_ticks_fire_debounces_and_timeouts_without_messages():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked, configs=[gen2_config(message_timeout_s=30)])
    live(runner, clock)
    runner.submit(power_msg(clock.now - T0, 150.0, mid=1))
    runner.step(0)
    for _ in range(40):
        clock.now += 1
        runner.step(0)
    types = [store.events[uid]["event_type"] for uid in store.order]
    assert types == ["device_online", "session_started", "session_timeout", "device_offline"]


def test_no_ticks_while_disconnected_within_the_catch_up_limit():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked, configs=[gen2_config(message_timeout_s=30)])
    live(runner, clock)
    runner.submit(power_msg(clock.now - T0, 150.0, mid=1))
    clock.now += 5
    runner.step(0)
    runner.connection_changed(False)
    for _ in range(50):
        clock.now += 1
        runner.step(0)
    types = [store.events[uid]["event_type"] for uid in store.order]
    assert types == ["device_online", "session_started"]
    # Past the limit the clock runs again: a long broker outage times sessions out.
    clock.now += 20
    runner.step(0)
    clock.now += 1
    runner.step(0)
    types = [store.events[uid]["event_type"] for uid in store.order]
    assert "session_timeout" in types


def test_reconfigure_flushes_and_restores_new_devices():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    runner.submit(power_msg(clock.now - T0, 150.0, mid=1))
    runner.step(0)
    gen1_state = {"state": "idle", "online": True, "last_msg_ms": 5, "seq": 41}
    assert runner.reconfigure([gen2_config(), gen1_config()], {GEN1: gen1_state, GEN2: {}})
    assert acked == [1]  # flushed before the change
    assert runner.ingestor.engines[GEN1].seq == 41
    assert runner.ingestor.engines[GEN2].state == "starting"  # kept, not restored
    store.fail = OSError("down")
    runner.submit(power_msg(clock.now - T0 + 1, 150.0, mid=2))
    runner.step(0)
    assert not runner.reconfigure([gen2_config()], {})
    assert GEN1 in runner.ingestor.engines


# -- failover: a crash anywhere loses nothing and duplicates nothing -------------------

PROFILE = (
    [(t * 0.5, 150.0) for t in range(0, 40)]
    + [(20 + t * 0.5, 0.0) for t in range(0, 10)]
    + [(25 + t * 0.5, 60.0) for t in range(0, 20)]
    + [(35 + t * 0.5, 0.0) for t in range(0, 10)]
    + [(t, 0.0) for t in range(41, 70, 3)]
)


def run_profile(crash_after=None, gap=8.0, end=120):
    """Feed PROFILE in real time; optionally 'SIGKILL' the leader after a number of
    messages, and let a new one take over ``gap`` seconds later with the backlog."""
    clock, store = Clock(), Store()
    acked = []
    runner = make(clock, store, acked, configs=[gen2_config(message_timeout_s=30)])
    live(runner, clock)
    t0 = clock.now
    sent = []
    index = 0
    crashed_at = None
    while index < len(PROFILE):
        offset, watts = PROFILE[index]
        at = t0 + offset
        if crash_after is not None and index == crash_after and crashed_at is None:
            # The leader dies: its buffer is gone; unacked messages stay at the broker.
            crashed_at = clock.now
            backlog = [m for m in sent if m.mid not in set(acked)]
            clock.now = max(clock.now, at) + gap
            acked_before = list(acked)
            runner = make(clock, store, acked, configs=[gen2_config(message_timeout_s=30)])
            runner.connection_changed(True)
            for message in backlog:
                runner.submit(Msg(message.topic, message.payload, clock.now, mid=message.mid))
            # Messages published during the gap were queued by the broker.
            while index < len(PROFILE) and t0 + PROFILE[index][0] <= clock.now:
                offset, watts = PROFILE[index]
                topic, payload = rpc(watts, ts=t0 + offset)
                message = Msg(topic, payload, clock.now, mid=1000 + index)
                sent.append(message)
                runner.submit(message)
                index += 1
            runner.step(0)
            assert set(acked_before) <= set(acked)
            continue
        while clock.now + 0.1 < at:
            clock.now += 0.1
            runner.step(0)
        clock.now = at
        topic, payload = rpc(watts, ts=at)
        message = Msg(topic, payload, at, mid=index + 1)
        sent.append(message)
        runner.submit(message)
        runner.step(0)
        index += 1
    while clock.now < t0 + end:
        clock.now += 0.25
        runner.step(0)
    events = [store.events[uid] for uid in store.order]
    sessions = {}
    for event in events:
        if event["session_id"]:
            sessions[event["session_id"]] = event["payload"]
    return events, sessions


def test_a_crash_anywhere_ends_in_the_same_sessions():
    _, expected = run_profile()
    assert len(expected) == 1
    (session,) = expected.values()
    assert session["status"] == "completed"
    # 16 s: longer than the stop debounce, so only catch-up keeps the cancelled stop.
    for gap in (8.0, 16.0):
        for crash_after in range(1, len(PROFILE), 3):
            _, got = run_profile(crash_after=crash_after, gap=gap)
            assert got == expected, (gap, crash_after)


# -- last wills ------------------------------------------------------------------------


def will_run(after_will, grace=30.0):
    """A running session, the device's last will, then ``after_will(runner, clock)``."""
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked, offline_grace_s=grace)
    live(runner, clock)
    start = feed_readings(runner, clock, 6, 150.0)
    clock.now += 0.5
    runner.submit(Msg(*online(False), clock.now, mid=100))
    runner.step(0)
    after_will(runner, clock)
    for _ in range(80):
        clock.now += 0.5
        runner.step(0)
    types = [store.events[uid]["event_type"] for uid in store.order]
    return runner, store, acked, types, start


def test_a_will_followed_by_a_message_is_ignored():
    def device_comes_back(runner, clock):
        clock.now += 5
        runner.submit(Msg(*online(True), clock.now, mid=101))
        runner.submit(power_msg(clock.now - T0, 150.0, mid=102))
        runner.step(0)

    runner, _store, acked, types, _start = will_run(device_comes_back)
    assert "session_timeout" not in types and "device_offline" not in types
    assert runner.ingestor.engines[GEN2].session_id is not None
    assert 100 in acked and runner.stats.offline_cancelled == 1


def test_a_will_not_followed_by_anything_ends_the_session_at_the_last_message():
    runner, store, acked, types, start = will_run(lambda runner, clock: None)
    assert types[-2:] == ["session_timeout", "device_offline"]
    (timeout,) = [e for e in store.events.values() if e["event_type"] == "session_timeout"]
    assert timeout["payload"]["end"] == start + 5  # the last reading, not the will
    assert 100 in acked and runner.stats.offline_applied == 1


def test_a_redelivered_copy_of_a_handled_will_is_dropped():
    def will_again(runner, clock):
        clock.now += 2
        runner.submit(power_msg(clock.now - T0, 150.0, mid=103))
        runner.step(0)
        clock.now += 2
        runner.submit(Msg(*online(False), clock.now, mid=100, dup=True))
        runner.step(0)

    runner, _store, acked, types, _start = will_run(will_again)
    assert "session_timeout" not in types
    assert acked.count(100) == 2 and runner.stats.offline_cancelled == 1


def test_a_failover_during_the_hold_keeps_the_will_s_first_receive_time():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    start = feed_readings(runner, clock, 6, 150.0)
    clock.now += 0.5
    will_at = clock.now
    runner.submit(Msg(*online(False), will_at, mid=100))
    runner.step(0)
    clock.now += 1
    runner.step(0)  # the hold is committed with the device's state
    assert store.states[GEN2]["will_at"] == will_at
    # The leader dies 10 s into the hold; the next one gets the will again.
    clock.now = will_at + 10
    runner = make(clock, store, acked)
    runner.connection_changed(True)
    runner.submit(Msg(*online(False), clock.now, mid=100, dup=True))
    while clock.now < will_at + 31:
        clock.now += 0.5
        runner.step(0)
    types = [store.events[uid]["event_type"] for uid in store.order]
    assert types[-2:] == ["session_timeout", "device_offline"]
    (timeout,) = [e for e in store.events.values() if e["event_type"] == "session_timeout"]
    assert timeout["payload"]["end"] == start + 5  # the last reading
    assert runner.ingestor.held_wills() == {}


def test_a_message_that_raises_is_dropped_counted_and_acknowledged():
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    process = runner.ingestor.process

    def process_or_raise(topic, payload, *args):
        if payload == b"poison":
            raise RuntimeError("a bug in the engine")
        return process(topic, payload, *args)

    runner.ingestor.process = process_or_raise
    runner.submit(Msg(f"{GEN2}/status/pm1:0", b"poison", clock.now, mid=1))
    # Also a real one: an integer of 4000 digits (float() overflows).
    big = b'{"apower": ' + b"9" * 4000 + b"}"
    runner.submit(Msg(f"{GEN2}/status/pm1:0", big, clock.now, mid=2))
    runner.submit(power_msg(clock.now - T0, 150.0, mid=3))
    clock.now += 1
    runner.step(0)
    assert acked == [1, 2, 3]
    status = runner.status()
    assert status["errors"] == 1 and status["dropped"]["error"] == 1
    assert status["dropped"]["absurd_power"] == 1
    assert runner.ingestor.engines[GEN2].state == "starting"


class PoisonStore(Store):
    """A database that refuses some events for good (e.g. a value its column cannot hold)."""

    def commit(self, events, states, failed=()):
        self.attempts = getattr(self, "attempts", 0) + 1
        if any(event["event_type"] == "state_changed" for event in events):
            raise ValueError("numeric field overflow")
        return super().commit(events, states, failed)


def test_a_commit_that_fails_for_good_is_split_and_the_bad_events_recorded():
    clock, store, acked = Clock(), PoisonStore(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    base = clock.now - T0
    for i, watts in enumerate([500.0] * 5 + [50.0] * 3):
        runner.submit(power_msg(base + i, watts, mid=i + 1))
    clock.now += 10
    runner.step(0)
    assert acked == list(range(1, 9))
    types = [store.events[uid]["event_type"] for uid in store.order]
    assert types == ["device_online", "session_started"]
    assert len(store.failed) == 1  # the state_changed event, isolated
    assert store.states[GEN2]["state"] == "standby"
    assert runner.status()["failed_events"] == 1 and runner.status()["commit_failures"] == 0
    # The next commit goes through as usual.
    runner.submit(power_msg(base + 20, 50.0, mid=9))
    runner.step(0)
    clock.now += 1
    runner.step(0)
    assert acked[-1] == 9


def test_a_redelivered_batch_whose_commit_succeeded_counts_once():
    # Gen1 readings carry no timestamp: only the broker's dup flag and the
    # fingerprints in the checkpoint tell a redelivered copy from a new reading.
    relay = f"shellies/{GEN1}/relay/0/power"
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked, configs=[gen1_config()])
    live(runner, clock)
    start = clock.now
    sent = []
    for i, watts in enumerate([500, 500, 500, 0]):
        clock.now = start + i * 3
        sent.append(Msg(relay, str(watts).encode(), clock.now, mid=i + 1))
        runner.submit(sent[-1])
        runner.step(0)
    clock.now += 1
    runner.step(0)
    assert acked == [1, 2, 3, 4]
    # The acknowledgements never reached the broker; the leader is replaced.
    clock.now += 3
    runner = make(clock, store, acked, configs=[gen1_config()])
    runner.connection_changed(True)
    for message in sent:
        runner.submit(Msg(message.topic, message.payload, clock.now, mid=message.mid, dup=True))
    while clock.now < start + 60:
        clock.now += 0.5
        runner.step(0)
    assert runner.status()["dropped"] == {"duplicate": 4}
    (stopped,) = [e for e in store.events.values() if e["event_type"] == "session_stopped"]
    assert (stopped["payload"]["start"], stopped["payload"]["end"]) == (start, start + 9)
    assert [store.events[uid]["event_type"] for uid in store.order].count("state_changed") == 1


def test_a_wall_clock_step_changes_no_session():
    from ows_iot.services.clock import StableClock

    for step_s in (-3600, 3600):
        wall, mono = Clock(T0), Clock(1000.0)
        clock = StableClock(wall=wall, monotonic=mono)
        store, acked = Store(), []
        runner = make(clock, store, acked, configs=[gen1_config()])
        runner.connection_changed(True)
        relay = f"shellies/{GEN1}/relay/0/power"

        def advance(seconds, wall=wall, mono=mono, runner=runner):
            for _ in range(int(seconds * 4)):
                wall.now += 0.25
                mono.now += 0.25
                runner.step(0)

        advance(2)
        runner.submit(Msg(relay, b"500", wall.now, mid=1))
        advance(10)
        wall.now += step_s  # the system clock is stepped mid-session
        runner.submit(Msg(relay, b"0", wall.now, mid=2))
        advance(40)
        (stopped,) = [e for e in store.events.values() if e["event_type"] == "session_stopped"]
        payload = stopped["payload"]
        assert payload["end"] - payload["start"] == 10, step_s


def test_after_a_broker_outage_a_device_is_not_timed_until_it_speaks_again():
    # The broker restarts during a cancelled stop. The leader is back first; the
    # device reconnects later and sends what it held back. Its pause (3 s, shorter
    # than the 5 s stop debounce) must not become a stop meanwhile.
    clock, store, acked = Clock(), Store(), []
    config = gen2_config(stop_debounce_s=5)
    runner = make(clock, store, acked, configs=[config])
    live(runner, clock)
    start = feed_readings(runner, clock, 5, 500.0)
    clock.now = start + 5
    runner.submit(power_msg(start - T0 + 5, 0.0, mid=6))  # the pause begins
    runner.step(0)
    runner.connection_changed(False)
    clock.now += 10
    runner.step(0)
    runner.connection_changed(True)
    for _ in range(20):  # the leader is back; the device is not yet
        clock.now += 0.5
        runner.step(0)
    assert not runner.catching_up
    # The device's backlog: on again 3 s into the pause, then off for good.
    for i, watts in ((8, 500.0), (9, 500.0), (10, 0.0)):
        runner.submit(power_msg(start - T0 + i, watts, mid=10 + i))
    runner.step(0)
    runner.submit(power_msg(clock.now - T0, 0.0, mid=30))  # and a live one
    for _ in range(40):
        clock.now += 0.5
        runner.step(0)
    stopped = [e for e in store.events.values() if e["event_type"] == "session_stopped"]
    assert [(e["payload"]["start"], e["payload"]["end"]) for e in stopped] == [(start, start + 10)]
    assert runner.status()["awaiting_devices"] == 0


def test_a_broker_shutdown_will_waits_for_the_device_to_reconnect():
    # Mosquitto publishes every device's will as it stops; the device reconnects
    # only 20 s after the leader (35 s after its will): it was never gone.
    clock, store, acked = Clock(), Store(), []
    runner = make(clock, store, acked)
    live(runner, clock)
    feed_readings(runner, clock, 5, 500.0)
    runner.submit(Msg(*online(False), clock.now, mid=50))
    runner.connection_changed(False)
    clock.now += 15
    runner.step(0)
    runner.connection_changed(True)
    for _ in range(40):
        clock.now += 0.5
        runner.step(0)
    runner.submit(power_msg(clock.now - T0, 500.0, mid=60))
    runner.step(0)
    clock.now += 1
    runner.step(0)
    types = [store.events[uid]["event_type"] for uid in store.order]
    assert "session_timeout" not in types and runner.stats.offline_cancelled == 1
