"""The leader's checkpoint loop: message → engine → buffer → commit → acknowledge.

MQTT messages arrive on paho's network thread and are only queued there; one
thread (the leader's) runs :meth:`Runner.step`, which feeds them through the
:class:`~.ingestor.Ingestor`, keeps the resulting events and the messages still
to acknowledge, and every ``flush_interval_s`` (or when ``max_pending`` messages
wait, below the broker's in-flight window) hands the events and the engine
snapshots of the devices they touched to the ``commit`` callback. Only once
``commit`` returned (the transaction is committed) are those messages
acknowledged, so a crash at any point loses nothing: the broker redelivers what
was not acknowledged and the engine, restored from the last commit, drops what
it had already seen (uids are deterministic, so re-emitted events are known).

While commits fail (database unreachable) the buffer keeps growing, commits are
retried with capped exponential backoff and nothing is acknowledged, which also
stops the broker from sending more than its in-flight window. Past
``max_buffer`` entries the buffer is discarded and counted
(:class:`BufferOverflow`): the caller then restores the engine from the database
and reconnects, and the broker redelivers every unacknowledged message.

A message that cannot be handled (whatever the parser or the engine raises) is
dropped, counted under ``error`` and acknowledged: no message stops ingestion.
A commit that fails for a reason other than the database being unreachable or
busy (``is_transient``) is split until the failing events are isolated; the rest
is written, the failing ones are handed to ``commit`` as ``failed`` (recorded,
not applied) and their messages acknowledged.

The broker marks messages it may have delivered before (``dup``): the ingestor
drops such a copy of a recently applied message, so a redelivery after a lost
acknowledgement counts once, also without a device timestamp.

A device's last will (``online`` false) is held for ``offline_grace_s`` before it
is applied, and forgotten when the device speaks again meanwhile: a broker that
shuts down publishes the last will of every connected device (mosquitto does),
and a broker restart must not end every running session. Applied late, the will
ends the session exactly where it would have: at the device's last message. The
hold is part of the device's checkpointed state, so it survives a failover.

Scheduling runs on the monotonic clock; receive times come from a
:class:`~.clock.StableClock`, so a step of the system clock changes nothing.

After a (re)connect the broker first delivers what it queued meanwhile. Until
that backlog is read the engine is fed in catch-up mode (each device advanced to
its message's own time) and the clock is not ticked, so late messages do not
fire debounces or timeouts they would have cancelled. After the broker itself was
gone, the devices were cut off too and reconnect on their own schedule, some with
what they held back; and any device may deliver late what it held back: the
clock does not move such a device, nor apply its last will, until it has spoken
live again (a message stamped within ``fresh_lag_s``, or any message of a device
without a clock) or ``reconnect_grace_s`` passed. Its own messages move it.

Pure Python; nothing here imports Odoo.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .clock import StableClock
from .config import DeviceConfig
from .ingestor import Ingestor

_logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
TICK_S = 1.0
MAX_PENDING = 500
MAX_BUFFER = 20_000
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
# A message whose own timestamp is this close to its receive time is live:
# the backlog is read.
FRESH_LAG_S = 2.0
# No message for this long after a connect: there was no backlog.
QUIET_S = 1.0
# Device timestamps are trusted within the clock skew (60 s by default); past
# that a backlog cannot be replayed at its own times anyway, so the clock runs.
CATCH_UP_LIMIT_S = 60.0
# Messages taken from the inbox in one go before the flush conditions are checked.
DRAIN_BATCH = 256
ERROR_LOG_EVERY_S = 30.0
# Devices reconnect within seconds of a broker restart.
OFFLINE_GRACE_S = 30.0
# After the broker was gone: how long a device may take to reconnect (MQTT clients
# back off, doubling their delay) before the clock moves it again.
RECONNECT_GRACE_S = 60.0
LATENCY_SAMPLES = 4096


def connection_trouble(exc: BaseException) -> bool:
    """The default ``is_transient``: the database was out of reach."""
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


class LeadershipLost(Exception):
    """Raised by ``commit`` when this leader may no longer write."""


class BufferOverflow(Exception):
    """The buffer was discarded; restore from the database and reconnect."""


@dataclass
class _Connection:
    connected: bool
    session_present: bool


@dataclass
class RunnerStats:
    started_at: float
    messages: int = 0
    retained: int = 0
    redelivered: int = 0
    offline_cancelled: int = 0
    offline_applied: int = 0
    errors: int = 0
    failed_events: int = 0
    events: int = 0
    commits: int = 0
    commit_failures: int = 0
    last_commit_at: float | None = None
    last_commit_error: str | None = None
    last_message_at: float | None = None
    acks: int = 0
    stale_acks: int = 0
    overflows: int = 0
    overflow_messages: int = 0
    overflow_events: int = 0
    catch_ups: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    commit_durations: deque = field(default_factory=lambda: deque(maxlen=256))


class Runner:
    def __init__(
        self,
        ingestor: Ingestor,
        commit: Callable[..., None],
        ack: Callable[[object], bool],
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_pending: int = MAX_PENDING,
        max_buffer: int = MAX_BUFFER,
        tick_s: float = TICK_S,
        fresh_lag_s: float = FRESH_LAG_S,
        quiet_s: float = QUIET_S,
        catch_up_limit_s: float = CATCH_UP_LIMIT_S,
        offline_grace_s: float = OFFLINE_GRACE_S,
        reconnect_grace_s: float = RECONNECT_GRACE_S,
        clock: Callable[[], float] | None = None,
        monotonic: Callable[[], float] | None = None,
        is_transient: Callable[[BaseException], bool] = connection_trouble,
        logger: logging.Logger = _logger,
    ):
        """``commit(events, states, failed)`` writes the events (dicts), the device
        snapshots and the events that could not be written (``(event, reason)``)
        in one transaction; ``ack(message)`` acknowledges a message at the broker."""
        self.ingestor = ingestor
        self._commit = commit
        self._ack = ack
        self.flush_interval_s = flush_interval_s
        self.max_pending = max(1, max_pending)
        self.max_buffer = max(self.max_pending, max_buffer)
        self.tick_s = tick_s
        self.fresh_lag_s = fresh_lag_s
        self.quiet_s = quiet_s
        self.catch_up_limit_s = catch_up_limit_s
        self.offline_grace_s = offline_grace_s
        self.reconnect_grace_s = reconnect_grace_s
        self._clock = clock = clock or StableClock()
        self._monotonic = monotonic or getattr(clock, "monotonic", time.monotonic)
        self._is_transient = is_transient
        self._logger = logger
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()

        self.stats = RunnerStats(started_at=clock())
        now = self._monotonic()
        self._events: list[dict] = []
        self._pending: list = []
        self._touched: set[str] = set()
        self._oldest: float | None = None  # when the oldest unflushed change happened
        # device id -> receive time of its last will, waiting for the grace period
        self._held: dict[str, float] = ingestor.held_wills()
        self._retry_at = 0.0
        self._failures_in_a_row = 0
        self._last_error_log = -math.inf
        self._last_drop_log = -math.inf
        self._next_tick = now
        self._rate_samples: deque = deque(maxlen=61)
        self.connected = False
        self._connected_at = now
        self._last_received = None
        self.catching_up = True
        self._catch_up_since = now
        self._fresh_seen = False
        # Devices whose messages come late (after a lost broker connection: every
        # device) -> until when the clock leaves them to their own messages.
        self._broker_gap = False
        self._awaiting: dict[str, float] = {}

    # -- entry points for other threads ------------------------------------------

    def submit(self, message) -> None:
        """Queue a message (any object with topic, payload, retain, receive_ts
        taken from the system clock, and optionally dup and qos)."""
        from_wall = getattr(self._clock, "from_wall", None)
        if from_wall is not None:
            message.receive_ts = from_wall(message.receive_ts)
        self.inbox.put(message)

    def connection_changed(self, connected: bool, session_present: bool = False) -> None:
        self.inbox.put(_Connection(connected, session_present))

    # -- the loop ----------------------------------------------------------------

    def step(self, max_wait: float) -> None:
        """Work for up to ``max_wait`` seconds: read messages, tick, flush.

        Raises LeadershipLost (from ``commit``) and BufferOverflow.
        """
        deadline = self._monotonic() + max_wait
        while True:
            now = self._monotonic()
            wake = min(deadline, self._next_flush_at(), self._next_tick_at())
            item = self._get(wake - now)
            if item is not None:
                self._handle(item)
                for _ in range(DRAIN_BATCH - 1):
                    try:
                        item = self.inbox.get_nowait()
                    except queue.Empty:
                        break
                    self._handle(item)
                    if len(self._pending) >= self.max_pending:
                        self.flush()
            now = self._monotonic()
            self._update_catch_up(now)
            if self._held and not self.catching_up:
                self._apply_held(self._clock())
            if not self.catching_up and now >= self._next_tick:
                self.tick()
            if self._flush_due(now):
                self.flush()
            if now >= deadline:
                return

    def _get(self, timeout: float):
        try:
            if timeout > 0:
                return self.inbox.get(timeout=timeout)
            return self.inbox.get_nowait()
        except queue.Empty:
            return None

    def _handle(self, item) -> None:
        if isinstance(item, _Connection):
            self._connection(item)
            return
        stats = self.stats
        stats.messages += 1
        stats.last_message_at = item.receive_ts
        redelivered = bool(getattr(item, "dup", False))
        if redelivered:
            stats.redelivered += 1
        self._last_received = self._monotonic()
        if self._oldest is None:  # the change happened when the message came
            self._oldest = self._last_received - max(0.0, self._clock() - item.receive_ts)
        self._pending.append(item)
        if item.retain:
            # A retained copy replays the past (e.g. an "online" from hours ago):
            # not a proof of life, nor a reading. Acknowledged with the others.
            stats.retained += 1
            self._check_overflow()
            return
        try:
            self._apply(item, redelivered)
        except Exception as exc:  # a poison message: dropped, never retried
            self.ingestor.dropped["error"] += 1
            stats.errors += 1
            self._log_drop(item, exc)
        self._check_overflow()

    def _apply(self, item, redelivered: bool) -> None:
        ingestor = self.ingestor
        will_of = ingestor.offline_notice(item.topic, item.payload)
        if will_of is not None:
            if ingestor.hold_will(item.topic, item.payload, item.receive_ts, redelivered):
                self._held[will_of] = ingestor.engines[will_of].will_at
                self._touched.add(will_of)
            return
        member_of = ingestor.member_device(item.topic)
        if member_of is not None:
            # A badge read or a check-in command (services.badge): engine input for
            # the device, checkpointed with it, but no word from its meter.
            events = ingestor.process(
                item.topic, item.payload, item.receive_ts, self.catching_up, redelivered,
                self._awaiting,
            )  # fmt: skip
            self._touched.add(member_of)
            if events:
                self._add_events(events)
            return
        route = ingestor.route(item.topic)
        if route is not None and route[0].device_id in self._held and not redelivered:
            self._cancel_will(route[0].device_id)
        events = ingestor.process(
            item.topic, item.payload, item.receive_ts, self.catching_up, redelivered, self._awaiting
        )
        if route is not None:
            self._touched.add(route[0].device_id)
        if events:
            self._add_events(events)
        lag_s = ingestor.last_lag_s
        fresh = lag_s is not None and lag_s <= self.fresh_lag_s
        if self.catching_up and fresh:
            # A message stamped (nearly) when we got it: the backlog is behind us.
            self._fresh_seen = True
        if route is not None:
            engine = route[0]
            if lag_s is not None and not fresh:
                # Late: what it held back may follow; the clock must not overtake it.
                self._awaiting[engine.device_id] = self._monotonic() + self.reconnect_grace_s
            elif self._awaiting and (
                fresh or (engine.clock_offset_ms is None and not self.catching_up)
            ):
                self._awaiting.pop(engine.device_id, None)

    def _log_drop(self, item, exc: BaseException) -> None:
        now = self._monotonic()
        if now - self._last_drop_log >= ERROR_LOG_EVERY_S:
            self._last_drop_log = now
            self._logger.warning(
                "ows_iot: message on %r dropped, it cannot be handled (%d so far): %s",
                getattr(item, "topic", None),
                self.stats.errors,
                _one_line(exc),
                exc_info=True,
            )

    # -- last wills ---------------------------------------------------------------

    def _cancel_will(self, device_id: str) -> None:
        del self._held[device_id]
        self.ingestor.cancel_will(device_id)
        self.stats.offline_cancelled += 1
        self._logger.info(
            "ows_iot: last will of %s ignored, the device spoke again within %.0fs "
            "(broker restart or network blip)",
            device_id,
            self.offline_grace_s,
        )

    def _apply_held(self, now: float) -> None:
        # A device cut off by a broker outage could not speak: its grace runs anew.
        due = [
            d
            for d, will_at in self._held.items()
            if now - will_at >= self.offline_grace_s and d not in self._awaiting
        ]
        for device_id in due:
            del self._held[device_id]
            self._mark_change()
            self._touched.add(device_id)
            try:
                events = self.ingestor.apply_will(device_id)
            except Exception as exc:
                self.stats.errors += 1
                self._log_drop(None, exc)
                continue
            if events:
                self._add_events(events)
            self.stats.offline_applied += 1
        if due:
            self._check_overflow()

    def _connection(self, item: _Connection) -> None:
        now = self._monotonic()
        self.connected = item.connected
        if item.connected:
            self._connected_at = now
            self._last_received = None
            if self._broker_gap:
                self._broker_gap = False
                until = now + self.reconnect_grace_s
                self._awaiting = dict.fromkeys(self.ingestor.engines, until)
        else:
            self._broker_gap = True
        # A connect may bring a backlog; a disconnect means messages may queue up
        # at the broker: either way, hold the clock until they are read.
        self._start_catch_up(now)

    def _start_catch_up(self, now: float) -> None:
        if not self.catching_up:
            self.stats.catch_ups += 1
        self.catching_up = True
        self._catch_up_since = now
        self._fresh_seen = False

    def _update_catch_up(self, now: float) -> None:
        if not self.catching_up:
            return
        done = False
        if self.connected:
            if self._fresh_seen:
                # Stamped live, but what the broker queued may still be behind it.
                done = self.inbox.empty()
            else:
                quiet_since = max(self._connected_at, self._last_received or 0.0)
                done = (
                    not self._pending and self.inbox.empty() and now - quiet_since >= self.quiet_s
                )
        if now - self._catch_up_since >= self.catch_up_limit_s:
            done = True
        if done:
            self.catching_up = False
            self._next_tick = now

    def tick(self) -> None:
        """Advance the engines to now: debounces, heartbeats and timeouts fire."""
        if self._awaiting:
            now = self._monotonic()
            self._awaiting = {d: until for d, until in self._awaiting.items() if until > now}
        try:
            events = self.ingestor.advance(self._clock(), skip=self._awaiting)
        except Exception as exc:
            self.stats.errors += 1
            self._log_drop(None, exc)
            events = []
        if events:
            self._mark_change()
            self._add_events(events)
            self._check_overflow()
        now = self._monotonic()
        self._next_tick = now + self.tick_s
        self._rate_samples.append((now, self.stats.messages))

    def _add_events(self, events) -> None:
        for event in events:
            self._events.append(event.to_dict())
            self._touched.add(event.device_id)
        self.stats.events += len(events)

    def _mark_change(self) -> None:
        if self._oldest is None:
            self._oldest = self._monotonic()

    # -- flushing ----------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Entries waiting for a commit: events plus unacknowledged messages."""
        return len(self._events) + len(self._pending)

    def _dirty(self) -> bool:
        return bool(self._events or self._pending or self._touched)

    def _next_flush_at(self) -> float:
        if not self._dirty():
            return math.inf
        due = (self._oldest or 0.0) + self.flush_interval_s
        if len(self._pending) >= self.max_pending:
            due = 0.0
        return max(due, self._retry_at)

    def _next_tick_at(self) -> float:
        return math.inf if self.catching_up else self._next_tick

    def _flush_due(self, now: float) -> bool:
        return self._dirty() and now >= self._next_flush_at()

    def flush(self) -> bool:
        """Commit the buffer and acknowledge its messages; False when the commit failed."""
        if not self._dirty():
            return True
        now = self._monotonic()
        if now < self._retry_at:
            return False
        ingestor = self.ingestor
        states = {}
        for device_id in self._touched:
            state = ingestor.snapshot_device(device_id)
            if state is not None:
                states[device_id] = state
        try:
            self._commit_isolating(self._events, states)
        except LeadershipLost:
            raise
        except Exception as exc:
            self._commit_failed(exc, now)
            return False
        committed_at = self._clock()
        stats = self.stats
        stats.commit_durations.append(self._monotonic() - now)
        if self._failures_in_a_row:
            self._logger.info(
                "ows_iot commits resumed after %d failed attempts; %d events, %d messages written",
                self._failures_in_a_row,
                len(self._events),
                len(self._pending),
            )
        self._failures_in_a_row = 0
        self._retry_at = 0.0
        stats.last_commit_error = None
        stats.commits += 1
        stats.last_commit_at = committed_at
        latencies = stats.latencies
        for message in self._pending:
            if self._ack(message):
                stats.acks += 1
            else:
                stats.stale_acks += 1
            latencies.append(committed_at - message.receive_ts)
        self._events = []
        self._pending = []
        self._touched = set()
        self._oldest = None
        return True

    def _commit_isolating(self, events: list[dict], states: dict[str, dict]) -> None:
        """Commit; when that fails deterministically, split the events until the
        failing ones are isolated, write the rest, and record those as failed."""
        error = self._try_commit(events, states)
        if error is None:
            return
        failed: list[tuple[dict, str]] = []
        self._isolate(events, failed)
        self._logger.error(
            "ows_iot: %d of %d events cannot be written (%s); recorded as failed events",
            len(failed),
            len(events),
            _one_line(error),
        )
        if failed:
            error = self._try_commit([], states, failed)
            if error is None:
                self.stats.failed_events += len(failed)
                return
            # Not even the failure record can be written: keep the state moving.
            self._logger.error("ows_iot: failed events not recorded: %s", _one_line(error))
        self._commit([], states, [])

    def _try_commit(self, events, states, failed=()) -> Exception | None:
        """None when committed, the error when it failed for good; raises otherwise."""
        try:
            self._commit(events, states, list(failed))
        except LeadershipLost:
            raise
        except Exception as exc:
            if self._is_transient(exc):
                raise
            return exc
        return None

    def _isolate(self, events: list[dict], failed: list) -> None:
        if not events:
            return
        error = self._try_commit(events, {})
        if error is None:
            return
        if len(events) == 1:
            failed.append((events[0], _one_line(error)))
            return
        middle = len(events) // 2
        self._isolate(events[:middle], failed)
        self._isolate(events[middle:], failed)

    def retry_now(self) -> None:
        """Commit at the next step, whatever the backoff said (the database is back)."""
        self._retry_at = 0.0

    def _commit_failed(self, exc: BaseException, now: float) -> None:
        self._failures_in_a_row += 1
        self.stats.commit_failures += 1
        self.stats.last_commit_error = _one_line(exc)
        delay = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (self._failures_in_a_row - 1))
        self._retry_at = now + delay
        if self._failures_in_a_row == 1 or now - self._last_error_log >= ERROR_LOG_EVERY_S:
            self._last_error_log = now
            self._logger.warning(
                "ows_iot commit failed (%d in a row, %d buffered, next try in %.1fs): %s",
                self._failures_in_a_row,
                self.buffered,
                delay,
                self.stats.last_commit_error,
                exc_info=self._failures_in_a_row == 1,
            )

    def _check_overflow(self) -> None:
        if self.buffered <= self.max_buffer:
            return
        stats = self.stats
        stats.overflows += 1
        stats.overflow_messages += len(self._pending)
        stats.overflow_events += len(self._events)
        self._logger.error(
            "ows_iot buffer overflow: %d unacknowledged messages and %d events discarded "
            "(database unreachable: %s); the broker will redeliver them",
            len(self._pending),
            len(self._events),
            stats.last_commit_error or "unknown",
        )
        self.discard()
        raise BufferOverflow(f"buffer of {self.max_buffer} entries overflowed")

    def discard(self) -> None:
        """Forget the buffer without acknowledging anything (stepping down, overflow)."""
        self._events = []
        self._pending = []
        self._touched = set()
        self._oldest = None

    # -- configuration -----------------------------------------------------------

    def reconfigure(self, configs: Iterable[DeviceConfig], states: dict[str, dict]) -> bool:
        """Apply a new device list; new devices start from ``states`` (their last
        snapshot). Flushes first, so no removed device loses its latest state;
        returns False (nothing changed) when that flush failed."""
        if not self.flush():
            return False
        known = set(self.ingestor.engines)
        self.ingestor.set_devices(configs)
        for device_id, state in states.items():
            if device_id not in known and state:
                self.ingestor.restore_device(device_id, state)
        self._held = self.ingestor.held_wills()
        return True

    # -- observability -----------------------------------------------------------

    def status(self, now: float | None = None) -> dict:
        """Figures for the status panel and the log; JSON-serialisable."""
        now = self._clock() if now is None else now
        stats = self.stats
        dropped = Counter(self.ingestor.dropped)
        if stats.retained:
            dropped["retained"] = stats.retained
        latencies = sorted(stats.latencies)
        return {
            "messages": stats.messages,
            "redelivered": stats.redelivered,
            "messages_per_s": round(self.message_rate(), 2),
            "last_message_at": stats.last_message_at,
            "last_message_age_s": (
                round(now - stats.last_message_at, 1) if stats.last_message_at else None
            ),
            "events": stats.events,
            "dropped": dict(dropped),
            "commits": stats.commits,
            "commit_failures": stats.commit_failures,
            "last_commit_at": stats.last_commit_at,
            "last_commit_error": stats.last_commit_error,
            "buffered_events": len(self._events),
            "pending_acks": len(self._pending),
            "acks": stats.acks,
            "stale_acks": stats.stale_acks,
            "overflows": stats.overflows,
            "overflow_messages": stats.overflow_messages,
            "overflow_events": stats.overflow_events,
            "catching_up": self.catching_up,
            "awaiting_devices": len(self._awaiting),
            "offline_held": len(self._held),
            "errors": stats.errors,
            "failed_events": stats.failed_events,
            "offline_cancelled": stats.offline_cancelled,
            "offline_applied": stats.offline_applied,
            "devices": len(self.ingestor.engines),
            "running_sessions": sum(1 for e in self.ingestor.engines.values() if e.session_id),
            "commit_latency_p50_s": _percentile(latencies, 0.50),
            "commit_latency_p99_s": _percentile(latencies, 0.99),
        }

    def message_rate(self) -> float:
        """Messages per second over the last minute of ticks."""
        samples = self._rate_samples
        if len(samples) < 2:
            return 0.0
        (t0, m0), (t1, m1) = samples[0], samples[-1]
        return (m1 - m0) / (t1 - t0) if t1 > t0 else 0.0


def _percentile(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return round(ordered[index], 4)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0]}" if lines else exc.__class__.__name__
