"""Route raw MQTT messages to their device's parser and engine.

The ingestor owns one :class:`DeviceEngine` per configured device and a single
clock. ``process()`` first advances the clock to the message's receive time, so
debounces, heartbeats and timeouts fire in time order, then applies the message.
Bad input is dropped and counted by reason in ``dropped``; nothing raises.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable

from . import badge
from .badge_topics import BadgeTopics
from .config import DeviceConfig
from .engine import NEVER, DeviceEngine
from .events import Event
from .parsers import (
    MAX_PAYLOAD_BYTES,
    MAX_TIMESTAMP,
    Drop,
    check_timestamp,
    compile_path,
    parse_json_path,
    parse_online,
    parse_shelly_gen1,
    parse_shelly_gen2,
)

ROUTE_CACHE_SIZE = 10_000
SNAPSHOT_VERSION = 1


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


class Ingestor:
    def __init__(self, devices: Iterable[DeviceConfig] = ()):
        self.engines: dict[str, DeviceEngine] = {}
        self.clock_ms: int | None = None
        self.messages = 0
        # How long the last message took from its device to us, when its own
        # timestamp told (seconds, on the device's learnt clock offset).
        self.last_lag_s: float | None = None
        self.dropped: Counter = Counter()
        self._prefixes: dict[str, DeviceEngine] = {}
        self._routes: dict[str, tuple] = {}
        self._paths: dict[str, tuple] = {}
        self._badge_topics = BadgeTopics()
        self._badge_paths: dict[str, tuple | None] = {}
        self._badges: dict[str, dict | None] = {}
        self._next_deadline = NEVER
        self.set_devices(devices)

    # -- configuration -----------------------------------------------------------

    def set_devices(self, devices: Iterable[DeviceConfig]) -> None:
        """Apply a new device list; engines of devices that stay keep their state."""
        engines = {}
        for config in devices:
            engine = self.engines.get(config.device_id)
            if engine is None:
                engine = DeviceEngine(config)
            else:
                engine.configure(config)
            engines[config.device_id] = engine
        self.engines = engines
        self._prefixes = {e.config.mqtt_topic.strip("/"): e for e in engines.values()}
        self._paths = {
            e.device_id: compile_path(e.config.power_path)
            for e in engines.values()
            if e.config.parser_type == "json_path"
        }
        self._routes = {}
        self._set_badges(engines.values())
        self._refresh_deadline()

    def _set_badges(self, engines) -> None:
        configs = [e.config for e in engines]
        self._badge_topics = BadgeTopics(configs)
        self._badge_paths = {
            c.device_id: badge.compile_badge_path(c.badge_path) for c in configs if c.badge_topic
        }
        # Devices of one company share their badges: one mapping per distinct tuple.
        mappings: dict[int, dict] = {}
        self._badges = {}
        for c in configs:
            if c.badges is not None:
                mapping = mappings.get(id(c.badges))
                if mapping is None:
                    mapping = mappings[id(c.badges)] = dict(c.badges)
                self._badges[c.device_id] = mapping
            else:
                self._badges[c.device_id] = None

    def topic_filters(self) -> set[str]:
        """MQTT subscriptions covering every configured device."""
        return {f"{prefix}/#" for prefix in self._prefixes} | self._badge_topics.filters()

    def route(self, topic: str):
        """(engine, subtopic, topic checksum) for a topic, or None when no device owns it."""
        route = self._routes.get(topic)
        if route is not None:
            return route or None
        route = ()
        engine = self._prefixes.get(topic)
        if engine is not None:
            route = (engine, "", zlib.crc32(topic.encode()))
        else:
            parts = topic.split("/")
            for cut in range(len(parts) - 1, 0, -1):
                engine = self._prefixes.get("/".join(parts[:cut]))
                if engine is not None:
                    route = (engine, "/".join(parts[cut:]), zlib.crc32(topic.encode()))
                    break
        if len(self._routes) >= ROUTE_CACHE_SIZE:
            self._routes.clear()
        self._routes[topic] = route
        return route or None

    def member_device(self, topic) -> str | None:
        """The device a badge read or a check-in command on ``topic`` is for, else None.

        Such a message is not the meter speaking: it neither cancels a held last
        will nor tells whether the meter's backlog is read."""
        device_id = self._badge_topics.device_of(topic)
        if device_id is not None:
            return device_id
        route = self.route(topic) if topic.__class__ is str else None
        if route is not None and route[1] == badge.CHECKIN_SUBTOPIC:
            return route[0].device_id
        return None

    def offline_notice(self, topic: str, payload: bytes) -> str | None:
        """The device whose last will ("online" false) this message is, else None."""
        route = self.route(topic) if topic.__class__ is str else None
        if route is None or route[1] != "online":
            return None
        engine = route[0]
        if engine.config.parser_type not in ("shelly_gen2", "shelly_gen1"):
            return None
        try:
            parsed = parse_online(bytes(payload))
        except (Drop, TypeError, ValueError):
            return None
        return engine.device_id if parsed.online is False else None

    # -- last wills --------------------------------------------------------------
    # A will is held (``engine.will_at``, checkpointed with the device) until the
    # caller applies or cancels it; the hold survives a failover.

    def hold_will(self, topic: str, payload: bytes, receive_ts: float, redelivered=False) -> bool:
        """Hold the last will in this message; False when it is a redelivered copy."""
        engine, _subtopic, topic_crc = self.route(topic)
        fingerprint = zlib.crc32(bytes(payload), topic_crc)
        if redelivered and fingerprint in engine.recent:
            self.dropped["duplicate"] += 1
            return False
        engine.remember(fingerprint)
        if engine.will_at is None:
            engine.will_at = receive_ts
        return True

    def held_wills(self) -> dict[str, float]:
        """device id -> receive time of its held last will."""
        return {d: e.will_at for d, e in self.engines.items() if e.will_at is not None}

    def cancel_will(self, device_id: str) -> None:
        self.engines[device_id].will_at = None

    def apply_will(self, device_id: str) -> list[Event]:
        """The held will takes effect now: the device is offline since its last message."""
        engine = self.engines[device_id]
        receive_ms = to_ms(engine.will_at)
        engine.will_at = None
        events: list[Event] = []
        self._notice(engine, False, engine.device_time(receive_ms), False, events.append)
        self._refresh_deadline()
        return events

    # -- time and messages -------------------------------------------------------

    def advance(self, now: float, skip: set[str] | frozenset = frozenset()) -> list[Event]:
        """Move the clock to ``now`` (epoch seconds) and return what fired; the
        devices in ``skip`` are left where their own messages put them."""
        events: list[Event] = []
        self._advance_ms(to_ms(now), events.append, skip)
        return events

    def _advance_ms(self, now_ms: int, emit, skip=frozenset(), own=None) -> None:
        if self.clock_ms is None or now_ms > self.clock_ms:
            self.clock_ms = now_ms
        if now_ms < self._next_deadline:
            return
        for engine in self.engines.values():
            if engine is not own and engine.device_id not in skip:
                engine.advance(engine.device_time(now_ms), emit)
        self._refresh_deadline()

    def _refresh_deadline(self) -> None:
        self._next_deadline = min(
            (e.receive_time(e.next_deadline()) for e in self.engines.values()), default=NEVER
        )

    def process(
        self,
        topic: str,
        payload: bytes,
        receive_ts: float,
        catch_up: bool = False,
        redelivered: bool = False,
        skip: set[str] | dict | frozenset = frozenset(),
    ) -> list[Event]:
        """Apply one MQTT message received at ``receive_ts`` (epoch seconds).

        ``catch_up`` is for a backlog delivered late, e.g. by the broker after a
        failover: the clock is not moved to the receive time, which would fire
        debounces and timeouts that the backlog itself cancels; only the message's
        own device is advanced, to the message's own timestamp, before it applies.

        ``redelivered`` is the broker's word that it may have sent this message
        before: a copy of one of the device's recently applied messages is dropped.

        The clock moves every device but the message's own (which moves to the
        message's own time, which may lie before the receive time) and those in
        ``skip`` (devices whose messages are known to be late).
        """
        events: list[Event] = []
        self.messages += 1
        self.last_lag_s = None
        try:
            if not (receive_ts.__class__ is float and 0 <= receive_ts < MAX_TIMESTAMP):
                receive_ts = check_timestamp(receive_ts)
            receive_ms = round(receive_ts * 1000)
            if not catch_up:
                route = self.route(topic) if topic.__class__ is str else None
                self._advance_ms(receive_ms, events.append, skip, route and route[0])
            self._apply(topic, payload, receive_ms, events.append, catch_up, redelivered)
        except Drop as drop:
            self.dropped[drop.reason] += 1
        return events

    def _apply(
        self, topic: str, payload: bytes, receive_ms: int, emit, catch_up=False, redelivered=False
    ) -> None:
        if payload.__class__ is not bytes:
            if isinstance(payload, str):
                payload = payload.encode()
            elif isinstance(payload, bytearray | memoryview):
                payload = bytes(payload)
            else:
                raise Drop("wrong_type")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise Drop("oversized")
        reader_of = self._badge_topics.device_of(topic)
        if reader_of is not None:
            self._apply_member(
                self.engines[reader_of], topic, payload, receive_ms, emit, redelivered
            )
            return
        route = self.route(topic) if topic.__class__ is str else None
        if route is None:
            raise Drop("unknown_topic")
        engine, subtopic, topic_crc = route
        if subtopic == badge.CHECKIN_SUBTOPIC:
            self._apply_member(engine, topic, payload, receive_ms, emit, redelivered, True)
            return
        fingerprint = zlib.crc32(payload, topic_crc)
        if redelivered and fingerprint in engine.recent:
            raise Drop("duplicate")
        # Whatever becomes of it (applied, dropped as stale), a copy changes nothing.
        engine.remember(fingerprint)
        config = engine.config
        parser_type = config.parser_type
        if parser_type == "shelly_gen2":
            parsed = parse_shelly_gen2(subtopic, payload, config.channel or engine.component)
        elif parser_type == "shelly_gen1":
            parsed = parse_shelly_gen1(subtopic, payload, config.channel or engine.component)
        else:
            parsed = parse_json_path(payload, self._paths[engine.device_id])

        ts_ms, stamped = self._timestamp(engine, parsed.device_ts, receive_ms, catch_up)
        if parsed.online is not None:
            self._notice(engine, parsed.online, ts_ms, catch_up, emit)
        elif parsed.power_w is None:
            # Liveness only: an older one proves nothing new, but is no stale reading.
            engine.advance(ts_ms, emit)
            engine.seen(ts_ms, emit)
        else:
            last_reading_ms = engine.last_reading_ms
            if last_reading_ms is not None:
                if ts_ms < last_reading_ms and not stamped:
                    # Our receive time only trails the device's own clock (ahead by
                    # less than the skew): the reading is current, not stale.
                    ts_ms = last_reading_ms
                if ts_ms < last_reading_ms:
                    raise Drop("out_of_order")
                if ts_ms == last_reading_ms and fingerprint == engine.last_fingerprint:
                    raise Drop("duplicate")
            # The device's own clock may run ahead of ours: its debounces run on it.
            engine.advance(ts_ms, emit)
            engine.seen(ts_ms, emit)
            if engine.component is None and config.channel is None:
                engine.component = parsed.component
            engine.last_reading_ms = ts_ms
            engine.last_fingerprint = fingerprint
            engine.reading(ts_ms, parsed.power_w, emit)
        if (
            (catch_up or redelivered)
            and not stamped
            and engine.clock_offset_ms is None
            and engine.state != "idle"
        ):
            # Its receive time is a delivery time: it waited in the broker's queue.
            engine.delayed = True
        deadline = engine.receive_time(engine.next_deadline())
        if deadline < self._next_deadline:
            self._next_deadline = deadline

    def _apply_member(
        self, engine, topic, payload, receive_ms, emit, redelivered, command=False
    ) -> None:
        """A badge read or a check-in command for ``engine``'s device (services.badge).

        Readers and commands have no clock: the check-in happens at the receive
        time, on the device's clock. They prove nothing about the meter.
        """
        fingerprint = zlib.crc32(payload, zlib.crc32(topic.encode()))
        if redelivered and fingerprint in engine.recent:
            raise Drop("duplicate")
        engine.remember(fingerprint)
        if command:
            action, member = badge.parse_command(payload)
            reason = "command"
        else:
            card = badge.parse_badge(payload, self._badge_paths.get(engine.device_id))
            member = badge.member_of_badge(card, self._badges.get(engine.device_id))
            action, reason = "badge", "badge"
        ts_ms = engine.device_time(receive_ms)
        engine.advance(ts_ms, emit)
        decision = badge.decide(action, member, engine.member)
        if decision == "check_in":
            engine.check_in(ts_ms, member, reason, emit)
        elif decision == "check_out":
            engine.check_out(ts_ms, reason, emit)
        else:
            self.dropped["checkin_ignored"] += 1
        deadline = engine.receive_time(engine.next_deadline())
        if deadline < self._next_deadline:
            self._next_deadline = deadline

    def _timestamp(self, engine, device_ts, receive_ms: int, catch_up: bool) -> tuple[int, bool]:
        """The message's time on the device's clock, and whether the device stamped it.

        A device timestamp is used when it lies within the clock skew of the receive
        time (on the device's learnt offset), or when it lies behind it but not more
        than the skew before the device's latest one: a message that waited in a
        broker queue keeps its own time, however long it waited. Live messages
        teach the offset.
        """
        expected_ms = engine.device_time(receive_ms)
        if device_ts is not None:
            device_ms = to_ms(device_ts)
            skew_ms = engine.config.max_clock_skew_s * 1000
            live = abs(device_ms - expected_ms) <= skew_ms
            last_device_ms = engine.last_device_ms
            queued = (
                engine.clock_offset_ms is not None
                and last_device_ms is not None
                and last_device_ms - skew_ms <= device_ms < expected_ms
            )
            if live or queued:
                if live and not catch_up:
                    self._learn_offset(engine, receive_ms - device_ms)
                if last_device_ms is None or device_ms > last_device_ms:
                    engine.last_device_ms = device_ms
                self.last_lag_s = (engine.device_time(receive_ms) - device_ms) / 1000
                return device_ms, True
        if catch_up and engine.clock_offset_ms is not None and engine.last_msg_ms is not None:
            # A device with a clock, a message without a timestamp, read from a
            # backlog: its receive time says nothing; it belongs with the latest.
            return engine.last_msg_ms, False
        return expected_ms, False

    @staticmethod
    def _learn_offset(engine, sample_ms: int) -> None:
        # Transport only ever adds delay: the smallest lag seen is the truest, and
        # the estimate rises slowly, so that a device clock set back is followed.
        offset = engine.clock_offset_ms
        if offset is None or sample_ms < offset:
            engine.clock_offset_ms = sample_ms
        elif sample_ms > offset:
            engine.clock_offset_ms = offset + ((sample_ms - offset + 15) >> 4)

    def _notice(self, engine, online: bool, ts_ms: int, catch_up: bool, emit) -> None:
        # Online notices have no time of their own (the last will is the broker's):
        # they take effect at the device's latest time, never earlier.
        last_ms = engine.last_msg_ms
        if last_ms is not None and (catch_up or ts_ms < last_ms):
            ts_ms = last_ms
        engine.advance(ts_ms, emit)
        if online:
            engine.seen(ts_ms, emit)
        else:
            engine.offline(ts_ms, emit)

    # -- state -------------------------------------------------------------------

    def running_sessions(self) -> list[dict]:
        """Open sessions with their totals up to the clock, the current level held."""
        sessions = []
        for engine in self.engines.values():
            if engine.session_id is not None:
                held_ms = (
                    engine.held_until(engine.device_time(self.clock_ms))
                    if self.clock_ms is not None
                    else 0
                )
                totals = engine.session_totals(held_ms=held_ms)
                totals.update(device_id=engine.device_id, session_id=engine.session_id)
                sessions.append(totals)
        return sessions

    def snapshot(self) -> dict:
        """JSON-serialisable state; restore() on a fresh ingestor continues exactly."""
        return {
            "version": SNAPSHOT_VERSION,
            "clock_ms": self.clock_ms,
            "devices": {device_id: e.snapshot() for device_id, e in self.engines.items()},
        }

    def restore(self, snapshot: dict) -> None:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError("unsupported engine snapshot version")
        self.clock_ms = snapshot.get("clock_ms")
        for device_id, state in snapshot.get("devices", {}).items():
            engine = self.engines.get(device_id)
            if engine is not None:
                engine.restore(state)
        self._refresh_deadline()

    def snapshot_device(self, device_id: str) -> dict | None:
        engine = self.engines.get(device_id)
        return engine.snapshot() if engine else None

    def restore_device(self, device_id: str, state: dict) -> None:
        engine = self.engines.get(device_id)
        if engine is not None:
            engine.restore(state)
            self._refresh_deadline()
