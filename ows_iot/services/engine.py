"""Per-device session state machine (SPEC section 5) and its accounting.

Time is an input in integer milliseconds: the engine never reads the wall clock,
so the same input always yields the same events, uids and seconds. Between
readings the last power level holds (sample and hold). Every millisecond between
a session's start and end is counted once, as working or as standby.
"""

from __future__ import annotations

from . import badge
from .config import DeviceConfig
from .events import Event, event_uuid, session_uuid

OFF, STANDBY, WORKING = 0, 1, 2
LEVEL_STATE = ("idle", "standby", "working")
RUNNING_STATES = ("standby", "working", "stopping")
NEVER = float("inf")

# Fields that make up a device's state; snapshot() and restore() use exactly these.
STATE_FIELDS = (
    "state",
    "online",
    "last_msg_ms",
    "last_reading_ms",
    "last_fingerprint",
    "level",
    "power",
    "component",
    "seq",
    "session_id",
    "start_ms",
    "start_power",
    "end_power",
    "peak_power",
    "acc_ms",
    "working_ms",
    "standby_ms",
    "energy_wms",
    "off_ms",
    "pending_wms",
    "hb_next_ms",
    "hb_working_ms",
    "hb_standby_ms",
    "delayed",
    "clock_offset_ms",
    "last_device_ms",
    "recent",
    "will_at",
    "member",
    "member_since_ms",
    "session_member",
)
# Fingerprints of the device's latest applied messages, to know a redelivered one.
RECENT_FINGERPRINTS = 256


def seconds(ms: int) -> float:
    return ms / 1000


class DeviceEngine:
    """The state machine of one device. ``emit`` receives each Event."""

    def __init__(self, config: DeviceConfig):
        self.configure(config)
        self.state = "idle"
        self.online = None  # unknown until the first message
        self.last_msg_ms = None
        self.last_reading_ms = None
        self.last_fingerprint = None
        self.level = OFF
        self.power = 0.0
        self.component = None
        self.seq = 0
        # Receive time minus device time, as learnt from live messages (None: the
        # device has shown no clock). The engine runs on the device's own clock.
        self.clock_offset_ms = None
        self.last_device_ms = None
        self.recent = []
        # Receive time (epoch s) of a last will held for the grace period, else None.
        self.will_at = None
        # The member checked in on the device (see services.badge), and since when.
        self.member = None
        self.member_since_ms = None
        self._clear_session()

    def configure(self, config: DeviceConfig) -> None:
        self.config = config
        self.device_id = config.device_id
        self.standby_w = config.standby_threshold_w
        self.working_w = config.working_threshold_w
        self.start_debounce_ms = round(config.start_debounce_s * 1000)
        self.stop_debounce_ms = round(config.stop_debounce_s * 1000)
        self.timeout_ms = round(config.message_timeout_s * 1000)
        self.heartbeat_ms = max(1, round(config.heartbeat_interval_s * 1000))

    def _clear_session(self) -> None:
        self.session_id = None
        self.start_ms = None
        self.start_power = 0.0
        self.end_power = 0.0
        self.peak_power = 0.0
        self.acc_ms = None
        self.working_ms = 0
        self.standby_ms = 0
        self.energy_wms = 0.0
        self.off_ms = None
        self.pending_wms = 0.0
        self.hb_next_ms = None
        self.hb_working_ms = 0
        self.hb_standby_ms = 0
        # Fed a reading of a device without a clock that waited in a broker queue:
        # its times are delivery times, not the device's.
        self.delayed = False
        # The member checked in when the session started: its customer.
        self.session_member = None

    # -- persistence -------------------------------------------------------------

    def snapshot(self) -> dict:
        state = {name: getattr(self, name) for name in STATE_FIELDS}
        state["recent"] = list(self.recent)
        return state

    def restore(self, data: dict) -> None:
        for name in STATE_FIELDS:
            if name in data:
                setattr(self, name, data[name])
        self.recent = list(self.recent or ())

    # -- time --------------------------------------------------------------------

    def device_time(self, receive_ms: int) -> int:
        """A receive time on the device's own clock."""
        offset = self.clock_offset_ms
        return receive_ms if offset is None else receive_ms - offset

    def receive_time(self, device_ms: float) -> float:
        """A device time on the receiver's clock (inverse of device_time)."""
        offset = self.clock_offset_ms
        return device_ms if offset is None else device_ms + offset

    def remember(self, fingerprint: int) -> None:
        recent = self.recent
        recent.append(fingerprint)
        if len(recent) > RECENT_FINGERPRINTS:
            del recent[: len(recent) - RECENT_FINGERPRINTS]

    def next_deadline(self) -> float:
        """The earliest clock time at which advance() has something to do."""
        state = self.state
        if state == "idle":
            if self.online and self.last_msg_ms is not None:
                return self.last_msg_ms + self.timeout_ms
            return NEVER
        timeout = self.last_msg_ms + self.timeout_ms
        if state == "starting":
            return min(self.start_ms + self.start_debounce_ms, timeout)
        deadline = min(self.hb_next_ms, timeout)
        if state == "stopping":
            deadline = min(deadline, self.off_ms + self.stop_debounce_ms)
        return deadline

    def advance(self, now_ms: int, emit) -> None:
        """Fire, in time order, every debounce, heartbeat and timeout due by now."""
        if now_ms < self.next_deadline():
            return
        while True:
            state = self.state
            if state == "idle":
                if (
                    self.online
                    and self.last_msg_ms is not None
                    and now_ms >= self.last_msg_ms + self.timeout_ms
                ):
                    self.online = False
                    self._device_event("device_offline", self.last_msg_ms, "silence", emit)
                return
            timeout_at = self.last_msg_ms + self.timeout_ms
            if state == "starting":
                confirm_at = self.start_ms + self.start_debounce_ms
                if confirm_at <= timeout_at and now_ms >= confirm_at:
                    self._confirm_start(emit)
                    continue
                if now_ms >= timeout_at:
                    # Silent before the start was confirmed: no session.
                    self._to_idle()
                    self.online = False
                    self._device_event("device_offline", self.last_msg_ms, "silence", emit)
                    continue
                return
            due = [(self.hb_next_ms, 1), (timeout_at, 2)]
            if state == "stopping":
                due.append((self.off_ms + self.stop_debounce_ms, 0))
            at, kind = min(due)
            if now_ms < at:
                return
            if kind == 0:
                self._end_session("session_stopped", "completed", self.off_ms, emit)
            elif kind == 1:
                self._heartbeat(emit)
            else:
                self._end_session("session_timeout", "timeout", self._last_proven_ms(), emit)
                self.online = False
                self._device_event("device_offline", self.last_msg_ms, "silence", emit)

    # -- messages ----------------------------------------------------------------

    def seen(self, ts_ms: int, emit) -> None:
        """Any message from the device: it is alive at ts_ms."""
        if self.last_msg_ms is None or ts_ms > self.last_msg_ms:
            self.last_msg_ms = ts_ms
        if not self.online:
            self.online = True
            self._device_event("device_online", ts_ms, "message", emit)

    def offline(self, ts_ms: int, emit) -> None:
        """The device's last will: it is gone since its last message."""
        if self.state != "idle":
            if self.state == "starting":
                self._to_idle()
            else:
                self._end_session("session_timeout", "timeout", self._last_proven_ms(), emit)
        if self.online is not False:
            self.online = False
            self._device_event("device_offline", ts_ms, "offline", emit)

    def reading(self, ts_ms: int, power: float, emit) -> None:
        """A power reading at ts_ms (after seen() for the same message)."""
        if self.acc_ms is not None and ts_ms < self.acc_ms:
            # A device clock slightly behind ours: time already accounted stays so,
            # and the reading counts as the device's latest message.
            ts_ms = self.acc_ms
            self.last_msg_ms = max(self.last_msg_ms, ts_ms)
        magnitude = -power if power < 0 else power
        level = (
            WORKING
            if magnitude >= self.working_w
            else STANDBY
            if magnitude >= self.standby_w
            else OFF
        )
        state = self.state
        if state == "idle":
            if level:
                self.state = "starting"
                self.start_ms = self.acc_ms = ts_ms
                self.start_power = self.peak_power = magnitude
        elif state == "starting":
            self._accumulate(ts_ms)
            if not level:
                self._to_idle()
        elif state == "stopping":
            if self.acc_ms < ts_ms:
                self.pending_wms += self.power * (ts_ms - self.acc_ms)
                self.acc_ms = ts_ms
            if level:
                # Stop cancelled: the pause counts as standby, its energy as used.
                self.standby_ms += ts_ms - self.off_ms
                self.energy_wms += self.pending_wms
                self.off_ms = None
                self.pending_wms = 0.0
                self._change_state(LEVEL_STATE[level], ts_ms, magnitude, emit)
        else:
            self._accumulate(ts_ms)
            if not level:
                self.off_ms = ts_ms
                self.pending_wms = 0.0
                self.end_power = self.power
                self._change_state("stopping", ts_ms, magnitude, emit)
            elif LEVEL_STATE[level] != state:
                self._change_state(LEVEL_STATE[level], ts_ms, magnitude, emit)
        self.level = level
        self.power = magnitude
        if self.state != "idle" and magnitude > self.peak_power:
            self.peak_power = magnitude

    # -- transitions -------------------------------------------------------------

    def held_until(self, now_ms: int) -> int:
        """How far past the accounted time the current level holds at ``now_ms``."""
        if self.state in ("standby", "working") and now_ms > self.acc_ms:
            return now_ms - self.acc_ms
        return 0

    def _accumulate(self, until_ms: int) -> None:
        dt = until_ms - self.acc_ms
        if dt <= 0:
            return
        if self.level == WORKING:
            self.working_ms += dt
        else:
            self.standby_ms += dt
        self.energy_wms += self.power * dt
        self.acc_ms = until_ms

    def _last_proven_ms(self) -> int:
        """Where a session cut short by silence or last will ends."""
        if self.state == "stopping":
            return self.off_ms
        return max(self.last_msg_ms, self.start_ms)

    def _to_idle(self) -> None:
        self.state = "idle"
        self._clear_session()

    def _confirm_start(self, emit) -> None:
        self.session_id = session_uuid(self.device_id, self.start_ms)
        self.session_member = self.member
        self.state = LEVEL_STATE[self.level]
        self.hb_next_ms = self.start_ms + self.heartbeat_ms
        self._session_event("session_started", self.start_ms, emit)

    def _change_state(self, new_state: str, ts_ms: int, power: float, emit) -> None:
        old_state = self.state
        self.state = new_state
        self._session_event(
            "state_changed",
            ts_ms,
            emit,
            from_state=old_state,
            to_state=new_state,
            power_w=power,
        )

    def _heartbeat(self, emit) -> None:
        at = self.hb_next_ms
        if self.state != "stopping":
            self._accumulate(at)
        self.hb_next_ms = at + self.heartbeat_ms
        interval_working = self.working_ms - self.hb_working_ms
        interval_standby = self.standby_ms - self.hb_standby_ms
        self.hb_working_ms = self.working_ms
        self.hb_standby_ms = self.standby_ms
        self._session_event(
            "session_heartbeat",
            at,
            emit,
            interval_working_s=seconds(interval_working),
            interval_standby_s=seconds(interval_standby),
        )

    def _end_session(
        self, event_type: str, status: str, end_ms: int, emit, check_out=True, **extra
    ) -> None:
        if self.state != "stopping":
            if end_ms >= self.acc_ms:
                self._accumulate(end_ms)
            else:
                # Heartbeats held the level past the device's last message; a
                # session cut short by silence ends at that message, so take it back.
                held_ms = self.acc_ms - end_ms
                if self.level == WORKING:
                    self.working_ms -= held_ms
                else:
                    self.standby_ms -= held_ms
                self.energy_wms -= self.power * held_ms
                self.acc_ms = end_ms
            self.end_power = self.power
        self.state = "idle"
        self._session_event(event_type, end_ms, emit, status=status, end_ms=end_ms, **extra)
        self._clear_session()
        if self.member is not None and check_out:
            # Checked out automatically when the session ends.
            self._member_event("member_checked_out", end_ms, self.member, "session_end", emit)
            self.member = self.member_since_ms = None

    # -- members -----------------------------------------------------------------

    def check_in(self, ts_ms: int, member: str, reason: str, emit) -> None:
        """``member`` checks in at ts_ms (after advance() to ts_ms); a takeover when
        another member's session runs: it ends at ts_ms and the next starts there."""
        if self.acc_ms is not None and ts_ms < self.acc_ms:
            ts_ms = self.acc_ms  # time already accounted stays with its session
        previous = self.member
        if previous is not None:
            self._member_event("member_checked_out", ts_ms, previous, "takeover", emit)
        self.member, self.member_since_ms = member, ts_ms
        self._member_event("member_checked_in", ts_ms, member, reason, emit)
        if badge.takeover(self.state, self.session_member, member):
            self._takeover(ts_ms, member, emit)

    def check_out(self, ts_ms: int, reason: str, emit) -> None:
        """The member checked in leaves; a running session keeps its member."""
        if self.member is None:
            return
        if self.acc_ms is not None and ts_ms < self.acc_ms:
            ts_ms = self.acc_ms
        self._member_event("member_checked_out", ts_ms, self.member, reason, emit)
        self.member = self.member_since_ms = None

    def _takeover(self, ts_ms: int, member: str, emit) -> None:
        if self.state == "stopping":
            # Off since off_ms: the session ends there, as its stop would have; the
            # new member's session starts when the machine is switched on again.
            self._end_session(
                "session_stopped", "completed", self.off_ms, emit, check_out=False,
                end_reason="takeover",
            )  # fmt: skip
            return
        if ts_ms <= self.start_ms:
            # Checked in at the very start: the session is the new member's.
            self.session_member = member
            return
        level, power, component = self.level, self.power, self.component
        delayed = self.delayed
        self._end_session(
            "session_stopped", "completed", ts_ms, emit, check_out=False, end_reason="takeover"
        )
        # The next session goes on at the level held, from the same instant.
        self.level, self.power, self.component = level, power, component
        self.start_ms = self.acc_ms = ts_ms
        self.start_power = self.peak_power = power
        self.delayed = delayed
        self._confirm_start(emit)

    def _member_event(self, event_type, ts_ms, member, reason, emit):
        uid = self._next_uid(None)
        payload = {"member": member, "reason": reason, "seq": self.seq}
        emit(Event(event_type, uid, self.device_id, None, seconds(ts_ms), payload))

    # -- events ------------------------------------------------------------------

    def session_totals(
        self, end_ms: int | None = None, status: str = "running", held_ms: int = 0
    ) -> dict:
        """Totals so far; ``held_ms`` extends the current level that far (a preview)."""
        working, standby = self.working_ms, self.standby_ms
        if self.level == WORKING:
            working += held_ms
        else:
            standby += held_ms
        total_ms = working + standby
        energy_wh = (self.energy_wms + self.power * held_ms) / 3_600_000
        totals = {
            "start": seconds(self.start_ms),
            "end": None if end_ms is None else seconds(end_ms),
            "status": status,
            "state": self.state,
            "power_w": self.power,
            "working_s": seconds(working),
            "standby_s": seconds(standby),
            "total_s": seconds(total_ms),
            "energy_wh": round(energy_wh, 6),
            "start_power_w": self.start_power,
            "end_power_w": self.end_power if end_ms is not None else None,
            "avg_power_w": round(energy_wh * 3_600_000 / total_ms, 3) if total_ms else 0.0,
            "peak_power_w": self.peak_power,
        }
        if self.delayed:
            totals["timing"] = "delayed"
        if self.session_member is not None:
            totals["member"] = self.session_member
        return totals

    def _next_uid(self, session_id):
        self.seq += 1
        return event_uuid(self.device_id, session_id, self.seq)

    def _session_event(self, event_type, ts_ms, emit, status="running", end_ms=None, **extra):
        payload = self.session_totals(end_ms, status)
        payload.update(extra)
        uid = self._next_uid(self.session_id)
        payload["seq"] = self.seq
        emit(Event(event_type, uid, self.device_id, self.session_id, seconds(ts_ms), payload))

    def _device_event(self, event_type, ts_ms, reason, emit):
        uid = self._next_uid(None)
        payload = {"reason": reason, "seq": self.seq}
        emit(Event(event_type, uid, self.device_id, None, seconds(ts_ms), payload))
