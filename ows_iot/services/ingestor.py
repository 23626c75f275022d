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

from .config import DeviceConfig
from .engine import NEVER, DeviceEngine
from .events import Event
from .parsers import (
    MAX_PAYLOAD_BYTES,
    MAX_TIMESTAMP,
    Drop,
    check_timestamp,
    discover,
    discovery_filters,
    family,
    is_announcement,
)
from .phases import hold_phases

ROUTE_CACHE_SIZE = 10_000
# Announcements list whole networks (Zigbee2MQTT's bridge/devices): larger than readings.
MAX_ANNOUNCEMENT_BYTES = 1024 * 1024
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
        # topic prefix -> (engine, the lead its family puts before the subtopic)
        self._prefixes: dict[str, tuple] = {}
        self._routes: dict[str, tuple] = {}
        self._next_deadline = NEVER
        # Meters that introduced themselves (switchable): key -> what they said,
        # kept until taken by the leader's next commit.
        self.discovery = False
        self.discovered: dict[str, dict] = {}
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
        self._prefixes = {
            prefix: (e, lead)
            for e in engines.values()
            for prefix, lead in family(e.config.parser_type).routes(e.config).items()
        }
        self._routes = {}
        self._refresh_deadline()

    def topic_filters(self) -> set[str]:
        """MQTT subscriptions covering every configured device (and the
        announcements of meters, when discovery is on)."""
        filters = {
            f
            for e in self.engines.values()
            for f in family(e.config.parser_type).topic_filters(e.config)
        }
        return filters | discovery_filters() if self.discovery else filters

    def route(self, topic: str):
        """(engine, subtopic, topic checksum) for a topic, or None when no device owns it."""
        route = self._routes.get(topic)
        if route is not None:
            return route or None
        route = ()
        owner = self._prefixes.get(topic)
        if owner is not None:
            route = (owner[0], owner[1], zlib.crc32(topic.encode()))
        else:
            parts = topic.split("/")
            for cut in range(len(parts) - 1, 0, -1):
                owner = self._prefixes.get("/".join(parts[:cut]))
                if owner is not None:
                    rest = "/".join(parts[cut:])
                    subtopic = f"{owner[1]}/{rest}" if owner[1] else rest
                    route = (owner[0], subtopic, zlib.crc32(topic.encode()))
                    break
        if len(self._routes) >= ROUTE_CACHE_SIZE:
            self._routes.clear()
        self._routes[topic] = route
        return route or None

    def offline_notice(self, topic: str, payload: bytes) -> str | None:
        """The device whose last will (offline notice) this message is, else None."""
        route = self.route(topic) if topic.__class__ is str else None
        if route is None:
            return None
        engine, subtopic = route[0], route[1]
        parser = family(engine.config.parser_type)
        if not parser.will(subtopic, engine.config):
            return None
        try:
            parsed = parser.parse(subtopic, bytes(payload), engine.config, engine.component)
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
        route = self.route(topic) if topic.__class__ is str else None
        if route is None:
            raise Drop("unknown_topic")
        engine, subtopic, topic_crc = route
        fingerprint = zlib.crc32(payload, topic_crc)
        if redelivered and fingerprint in engine.recent:
            raise Drop("duplicate")
        # Whatever becomes of it (applied, dropped as stale), a copy changes nothing.
        engine.remember(fingerprint)
        config = engine.config
        parsed = family(config.parser_type).parse(subtopic, payload, config, engine.component)

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
            power_w = parsed.power_w
            if parsed.phases is not None:
                power_w = hold_phases(engine.phases, parsed.phases)
            engine.reading(ts_ms, power_w, emit)
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

    # -- meters that introduce themselves ----------------------------------------

    def discover(self, topic: str, payload: bytes, receive_ts: float) -> bool:
        """Keep what an announcement on a topic no device owns says; True when
        the message was one (it is then no unknown topic)."""
        if not self.discovery or topic.__class__ is not str or self.route(topic) is not None:
            return False
        try:
            payload = bytes(payload)
            if len(payload) > MAX_ANNOUNCEMENT_BYTES:
                return False
            found = discover(topic, payload)
        except (TypeError, ValueError, RecursionError):
            return False
        for meter in found:
            entry = self.discovered.setdefault(meter.key, {"key": meter.key})
            for name, value in meter.to_dict().items():
                if value:  # a partial announcement (Tasmota's sensors) adds to it
                    entry[name] = value
            entry["last_seen"] = receive_ts
        return bool(found) or is_announcement(topic)

    def take_discovered(self) -> list[dict]:
        """The discoveries since the last take (for the leader's next commit)."""
        found, self.discovered = list(self.discovered.values()), {}
        return found

    def return_discovered(self, found: list[dict]) -> None:
        """A commit failed: keep its discoveries for the next one."""
        for entry in found:
            self.discovered.setdefault(entry["key"], entry)

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
