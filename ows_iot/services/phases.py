"""Multi-phase meters: the power of all phases from readings of single phases.

A three-phase meter (Shelly 3EM ``emeter/0..2``, Pro 3EM ``em1:0..2``) reports
each phase on its own, at its own time. The machine's power is the sum of the
latest value of each phase, each held until that phase's next reading: a phase
that reports twice replaces its value, it is never counted twice.
"""

from __future__ import annotations

from .parsers.base import check_power


def hold_phases(held: dict[str, float], update: dict[str, float]) -> float:
    """Apply this message's phase values to ``held`` (in place); the held sum."""
    held.update(update)
    return check_power(sum(held.values()))
