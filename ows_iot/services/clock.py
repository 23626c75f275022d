"""A wall clock that steps of the system clock do not move.

Receive times are epoch seconds, because devices and the database speak in them,
but the runtime must not see the system clock stepped back an hour (it would stall
every debounce) or forward (it would time out every session). :class:`StableClock`
counts epoch seconds on the monotonic clock from the moment it was made and follows
the system clock only by slewing, at most ``MAX_SLEW`` of the elapsed time, as NTP
daemons do.

Pure Python; nothing here imports Odoo.
"""

from __future__ import annotations

import threading
import time

MAX_SLEW = 0.0005  # 500 ppm: half a millisecond per second


class StableClock:
    def __init__(self, wall=time.time, monotonic=time.monotonic):
        self._wall = wall
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._last_mono = monotonic()
        self._now = wall()

    def __call__(self) -> float:
        """Epoch seconds, never stepping, never going back."""
        with self._lock:
            mono = self.monotonic()
            elapsed = max(0.0, mono - self._last_mono)
            self._last_mono = mono
            now = self._now + elapsed
            slew = elapsed * MAX_SLEW
            now += max(-slew, min(slew, self._wall() - now))
            self._now = now
            return now

    def from_wall(self, wall_ts: float) -> float:
        """A system-clock time taken a moment ago, on this clock."""
        return wall_ts + (self() - self._wall())
