"""The billing rounding table: unit sizes x rounding modes x minimums x standby rates."""

import math

import pytest

from ows_iot.services.billing import ROUNDING_MODES, billable

# (working_s, unit_s, rounding, min_units) -> units; standby not billed.
TABLE = [
    # exact multiples never round, whatever the mode
    (120, 60, "up", 0, 2),
    (120, 60, "nearest", 0, 2),
    (120, 60, "down", 0, 2),
    # one second past a unit
    (61, 60, "up", 0, 2),
    (61, 60, "nearest", 0, 1),
    (61, 60, "down", 0, 1),
    # exactly half a unit: nearest rounds halves up
    (90, 60, "up", 0, 2),
    (90, 60, "nearest", 0, 2),
    (89.999, 60, "nearest", 0, 1),
    (90, 60, "down", 0, 1),
    # quarter-hour units
    (1, 900, "up", 0, 1),
    (1, 900, "nearest", 0, 0),
    (1, 900, "down", 0, 0),
    (449, 900, "nearest", 0, 0),
    (450, 900, "nearest", 0, 1),
    (3601, 900, "up", 0, 5),
    (3601, 900, "down", 0, 4),
    # minimums lift short sessions, never long ones
    (1, 900, "nearest", 1, 1),
    (1, 900, "down", 2, 2),
    (1, 900, "up", 3, 3),
    (3601, 900, "down", 3, 4),
    # one-second units bill the seconds
    (3599.4, 1, "up", 0, 3600),
    (3599.4, 1, "nearest", 0, 3599),
    (3599.4, 1, "down", 0, 3599),
    # hour units
    (5400, 3600, "nearest", 0, 2),
    (5399, 3600, "nearest", 0, 1),
]


@pytest.mark.parametrize(("working", "unit", "rounding", "minimum", "units"), TABLE)
def test_rounding_table(working, unit, rounding, minimum, units):
    seconds, got = billable(working, 0, unit, rounding, minimum)
    assert got == units
    assert seconds == working


@pytest.mark.parametrize(
    ("standby", "bill_standby", "rate", "seconds"),
    [
        (600, False, 1.0, 1200),  # standby ignored unless billed
        (600, True, 1.0, 1800),
        (600, True, 0.5, 1500),
        (600, True, 0.25, 1350),
        (600, True, 0.0, 1200),
        (0, True, 0.5, 1200),
    ],
)
def test_standby_share(standby, bill_standby, rate, seconds):
    got_seconds, units = billable(1200, standby, 60, "up", 0, bill_standby, rate)
    assert got_seconds == seconds
    assert units == math.ceil(seconds / 60)


def test_standby_share_rounds_with_units():
    # 1000 s working + 301 s standby at a third: 1100.333 s -> 19 units of 60 s up.
    seconds, units = billable(1000, 301, 60, "up", 0, True, 1 / 3)
    assert seconds == 1100.333
    assert units == 19
    assert billable(1000, 301, 60, "down", 0, True, 1 / 3)[1] == 18


def test_only_standby_billed_at_a_share():
    assert billable(0, 900, 900, "up", 0, True, 0.5) == (450.0, 1)
    assert billable(0, 900, 900, "nearest", 0, True, 0.5) == (450.0, 1)
    assert billable(0, 900, 900, "down", 0, True, 0.5) == (450.0, 0)


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_empty_session_costs_nothing_despite_minimum(rounding):
    assert billable(0, 0, 60, rounding, 5) == (0.0, 0)
    # standby only, standby not billed: nothing billable
    assert billable(0, 3600, 60, rounding, 5) == (0.0, 0)


def test_float_noise_does_not_add_a_unit():
    # 0.1 + 0.2 style noise: 7200.000000001 s is 120 units, not 121
    assert billable(7199.9999999999, 0, 60, "up")[1] == 120
    assert billable(7200.0000000001, 0, 60, "up")[1] == 120
    assert billable(0.1 + 0.2, 0, 0.3, "up")[1] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"working_s": -1}, "working_s must not be negative"),
        ({"standby_s": float("nan")}, "standby_s must be a finite number"),
        ({"unit_s": 0}, "unit_s must be at least one millisecond"),
        ({"unit_s": "60"}, "unit_s must be a finite number"),
        ({"rounding": "ceil"}, "rounding must be one of up, nearest, down"),
        ({"min_units": -1}, "min_units must be a non-negative integer"),
        ({"min_units": 1.5}, "min_units must be a non-negative integer"),
        ({"standby_rate": -0.5}, "standby_rate must not be negative"),
        ({"working_s": True}, "working_s must be a finite number"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    args = {"working_s": 60, "standby_s": 0, "unit_s": 60}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        billable(**args)
