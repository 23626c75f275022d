"""How the fault suite scores the database's sessions against the replayed recording.

Pure functions (no Odoo, no processes): the fault suite (fault_scenario.py) hands in
the sessions of the database and those the replay tool computed from the broker's
traffic; ``compare`` pairs them and ``tally`` counts, per fault:

- ``E`` expected sessions (the replay's),
- ``M`` matched: a database session of the same device whose start agrees within
  ``start_s`` and whose end, working and standby seconds agree within their tolerances,
- ``W`` wrong seconds: paired by device and start, but end, working or standby differ,
- ``L`` lost: expected sessions no database session pairs with,
- ``D`` duplicated: database sessions left unpaired that overlap, on the same device,
  an expected session that was paired (the same usage written twice),
- ``X`` extra: the other unpaired database sessions (usage the replay does not know).

Only ``M + W + L == E`` holds by construction; D and X count database sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MATCHED, WRONG, LOST, DUPLICATED, EXTRA = "M", "W", "L", "D", "X"


@dataclass(frozen=True)
class Tolerance:
    """How far a database session may be from the expected one and still match.

    The database stores start and end times in whole seconds, hence ``start_s`` and
    ``end_s`` of one second; working and standby seconds are floats computed from
    the readings' own times, hence ``seconds_s``.
    """

    start_s: float = 1.0
    end_s: float = 1.0
    seconds_s: float = 0.01


# Devices with a clock (Shelly Gen2 and newer stamp every frame): the database must
# agree with the replay to the hundredth of a second.
CLOCKED = Tolerance()
# Gen1 devices send no timestamp: both sides use their own receive time, which differ
# by the few milliseconds between two subscribers, more around reconnects.
UNCLOCKED = Tolerance(start_s=1.5, end_s=1.5, seconds_s=0.5)


@dataclass
class Outcome:
    """One line of the comparison: an expected session, a database one, or both."""

    kind: str
    device_id: str
    expected: dict | None = None
    actual: dict | None = None
    # The database marks the session as of delayed timing (a meter without a clock
    # read from a backlog): an inexactness it admits, see mark_delayed().
    delayed: bool = False

    @property
    def session(self) -> dict:
        return self.expected if self.expected is not None else self.actual

    def describe(self) -> str:
        def span(row):
            if row is None:
                return "-"
            end = "running" if row.get("end") is None else f"{row['end']:.2f}"
            return (
                f"{row['start']:.2f}..{end} working={row['working_s']:.2f}"
                f" standby={row['standby_s']:.2f}"
            )

        return (
            f"{self.kind} {self.device_id} expected {span(self.expected)}"
            f" database {span(self.actual)}{' (delayed)' if self.delayed else ''}"
        )


@dataclass
class Tally:
    E: int = 0
    M: int = 0
    L: int = 0
    D: int = 0
    W: int = 0
    X: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.expected is not None:
            self.E += 1
        setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)

    @property
    def clean(self) -> bool:
        """No session lost, duplicated, wrong or extra."""
        return self.L == self.D == self.W == self.X == 0

    @property
    def delayed(self) -> int:
        """Mismatches the database marks as of delayed timing."""
        return sum(1 for o in self.outcomes if o.kind != MATCHED and o.delayed)

    @property
    def admitted(self) -> bool:
        """Every mismatch is one the database marks as of delayed timing."""
        return all(o.delayed for o in self.outcomes if o.kind != MATCHED)

    def figures(self) -> str:
        figures = f"E={self.E} M={self.M} L={self.L} D={self.D} W={self.W} X={self.X}"
        return f"{figures} delayed={self.delayed}" if self.delayed else figures

    def problems(self) -> list[str]:
        return [o.describe() for o in self.outcomes if o.kind != MATCHED]


def _end(row: dict, default: float) -> float:
    return default if row.get("end") is None else row["end"]


def _close(a, b, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tolerance


def same_seconds(expected: dict, actual: dict, tolerance: Tolerance) -> bool:
    if expected.get("end") is None and actual.get("end") is None:
        # Running in both: the database holds the totals of its last flush (the cron
        # runs every minute), the replay its level held to the end of the recording.
        return True
    return (
        _close(expected.get("end"), actual.get("end"), tolerance.end_s)
        and _close(expected["working_s"], actual["working_s"], tolerance.seconds_s)
        and _close(expected["standby_s"], actual["standby_s"], tolerance.seconds_s)
    )


def overlaps(a: dict, b: dict, until: float) -> bool:
    return a["start"] < _end(b, until) and b["start"] < _end(a, until)


def compare(
    expected: Iterable[dict],
    actual: Iterable[dict],
    tolerance_of: Callable[[str], Tolerance] = lambda device_id: CLOCKED,
    until: float = float("inf"),
) -> list[Outcome]:
    """Pair every expected session with at most one database session.

    Sessions are mappings with ``device_id``, ``start``, ``end`` (None while running),
    ``working_s`` and ``standby_s`` (as harness.sessions() and the replay tool give
    them). An expected session pairs with the unpaired database session of its device
    whose start is nearest, within the device's start tolerance; among equally near
    ones, one with the same seconds wins. ``until`` closes running sessions when
    looking for overlaps.
    """
    expected = sorted(expected, key=lambda r: (r["device_id"], r["start"]))
    actual = sorted(actual, key=lambda r: (r["device_id"], r["start"]))
    unpaired = list(range(len(actual)))
    outcomes: list[Outcome] = []
    paired: list[dict] = []
    for want in expected:
        tolerance = tolerance_of(want["device_id"])
        candidates = [
            i
            for i in unpaired
            if actual[i]["device_id"] == want["device_id"]
            and abs(actual[i]["start"] - want["start"]) <= tolerance.start_s
        ]
        if not candidates:
            outcomes.append(Outcome(LOST, want["device_id"], expected=want))
            continue
        best = min(
            candidates,
            key=lambda i: (
                not same_seconds(want, actual[i], tolerance),
                abs(actual[i]["start"] - want["start"]),
            ),
        )
        unpaired.remove(best)
        got = actual[best]
        kind = MATCHED if same_seconds(want, got, tolerance) else WRONG
        outcomes.append(Outcome(kind, want["device_id"], expected=want, actual=got))
        paired.append(want)
    for i in unpaired:
        got = actual[i]
        twin = any(
            want["device_id"] == got["device_id"] and overlaps(want, got, until) for want in paired
        )
        outcomes.append(Outcome(DUPLICATED if twin else EXTRA, got["device_id"], actual=got))
    return outcomes


def mark_delayed(outcomes: Iterable[Outcome], actual: Iterable[dict], until: float) -> None:
    """Mark the mismatches the database admits: its session is of delayed timing, or,
    for a lost one, a delayed session of the same device covers it."""
    delayed = [row for row in actual if row.get("timing") == "delayed"]
    for outcome in outcomes:
        if outcome.kind == MATCHED:
            continue
        if outcome.actual is not None:
            outcome.delayed = outcome.actual.get("timing") == "delayed"
        else:
            want = outcome.expected
            outcome.delayed = any(
                row["device_id"] == want["device_id"] and overlaps(row, want, until)
                for row in delayed
            )


@dataclass(frozen=True)
class Window:
    """The stretch of time a fault is held responsible for: from its injection until
    the runtime recovered, plus ``tail_s`` for what a recovery settles late."""

    name: str
    start: float
    end: float


def attribute(
    outcomes: Iterable[Outcome],
    windows: list[Window],
    until: float,
    baseline: str = "none",
    confirm_s: float = 0.0,
) -> dict[str, list[Outcome]]:
    """Group outcomes by the first fault window their session overlaps (in the order
    the faults ran); outcomes overlapping no window go to ``baseline``. A session
    lasts until ``confirm_s`` after its end: the stop debounce, after which the stop
    is written."""
    groups: dict[str, list[Outcome]] = {window.name: [] for window in windows}
    groups[baseline] = []
    for outcome in outcomes:
        row = outcome.session
        start, end = row["start"], _end(row, until) + confirm_s
        for window in windows:
            if start <= window.end and window.start <= end:
                groups[window.name].append(outcome)
                break
        else:
            groups[baseline].append(outcome)
    return groups


def tally(outcomes: Iterable[Outcome]) -> Tally:
    result = Tally()
    for outcome in outcomes:
        result.add(outcome)
    return result


def fault_line(name: str, clocked: Tally, unclocked: Tally) -> str:
    """``fault=<name> E=.. M=.. L=.. D=.. W=.. X=..`` for the devices with a clock,
    then the same figures of the Gen1 devices (reported apart, see Tolerance)."""
    return f"fault={name} {clocked.figures()} gen1: {unclocked.figures()}"
