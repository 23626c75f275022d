"""Billing arithmetic for usage sessions (SPEC section 7).

Pure and exact: durations are counted in whole milliseconds and units are derived
with integer arithmetic, so 120 s at 60 s per unit is 2 units, never 2.0000001
rounded up to 3.
"""

from __future__ import annotations

import math

ROUNDING_MODES = ("up", "nearest", "down")


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return float(value)


def billable(
    working_s: float,
    standby_s: float,
    unit_s: float,
    rounding: str = "up",
    min_units: int = 0,
    bill_standby: bool = False,
    standby_rate: float = 1.0,
) -> tuple[float, int]:
    """Return ``(billable_s, units)`` for a session.

    billable_s is the working time plus, when standby is billed, the standby time
    weighted by ``standby_rate`` (the share of the price charged for standby).
    units is billable_s / unit_s rounded per ``rounding`` (``up``, ``nearest`` with
    halves rounded up, ``down``), raised to ``min_units`` whenever something is
    billable. A session with nothing billable costs nothing, whatever the minimum.
    """
    working_s = _number("working_s", working_s)
    standby_s = _number("standby_s", standby_s)
    unit_s = _number("unit_s", unit_s)
    standby_rate = _number("standby_rate", standby_rate)
    unit_ms = round(unit_s * 1000)
    if unit_ms <= 0:
        raise ValueError("unit_s must be at least one millisecond")
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDING_MODES)}")
    if isinstance(min_units, bool) or not isinstance(min_units, int) or min_units < 0:
        raise ValueError("min_units must be a non-negative integer")

    # Whole milliseconds: the engine's own resolution, and exact integers below.
    billable_ms = round(working_s * 1000)
    if bill_standby:
        billable_ms += round(standby_s * 1000 * standby_rate)
    if billable_ms <= 0:
        return 0.0, 0
    if rounding == "up":
        units = -(-billable_ms // unit_ms)
    elif rounding == "down":
        units = billable_ms // unit_ms
    else:
        units = (2 * billable_ms + unit_ms) // (2 * unit_ms)
    return billable_ms / 1000, max(units, min_units)
