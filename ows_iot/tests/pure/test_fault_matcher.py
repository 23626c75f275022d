"""The fault suite's matcher: how database sessions are scored against the replay."""

from ows_iot.tests.e2e.faults import (
    CLOCKED,
    UNCLOCKED,
    Window,
    attribute,
    compare,
    fault_line,
    mark_delayed,
    tally,
)

LASER = "shellypmminig3-aa"
PLUG = "shellyplug-s-BB"


def session(device_id=LASER, start=100.0, end=130.0, working_s=25.0, standby_s=5.0):
    return {
        "device_id": device_id,
        "start": start,
        "end": end,
        "working_s": working_s,
        "standby_s": standby_s,
    }


def kinds(outcomes):
    return sorted(o.kind for o in outcomes)


def test_identical_sessions_match():
    expected = [session(), session(start=200.0, end=220.0, working_s=20.0, standby_s=0.0)]
    result = tally(compare(expected, [dict(s) for s in expected]))
    assert (result.E, result.M, result.L, result.D, result.W, result.X) == (2, 2, 0, 0, 0, 0)
    assert result.clean


def test_database_times_in_whole_seconds_still_match():
    # The database truncates start and end times to the second.
    expected = [session(start=100.62, end=130.97)]
    actual = [session(start=100.0, end=130.0)]
    assert kinds(compare(expected, actual)) == ["M"]


def test_seconds_beyond_the_tolerance_are_wrong():
    expected = [session(working_s=25.0)]
    assert kinds(compare(expected, [session(working_s=25.009)])) == ["M"]
    assert kinds(compare(expected, [session(working_s=25.02)])) == ["W"]
    assert kinds(compare(expected, [session(standby_s=4.0)])) == ["W"]
    assert kinds(compare(expected, [session(end=None)])) == ["W"]  # still running
    # Running in both: only the start is compared (the totals are flushed lazily).
    running = session(end=None)
    assert kinds(compare([running], [dict(running, working_s=1.0)])) == ["M"]
    assert kinds(compare(expected, [session(end=133.0)])) == ["W"]


def test_missing_sessions_are_lost():
    expected = [session(), session(start=200.0, end=220.0)]
    result = tally(compare(expected, [session()]))
    assert (result.E, result.M, result.L) == (2, 1, 1)
    assert not result.clean


def test_a_start_too_far_off_is_lost_and_extra():
    # A session that started late (its first readings were lost) is not the expected one.
    result = tally(compare([session()], [session(start=104.0)]))
    assert (result.L, result.M, result.X, result.D) == (1, 0, 1, 0)


def test_the_same_session_twice_is_one_match_and_one_duplicate():
    expected = [session()]
    result = tally(compare(expected, [session(), session(start=100.4)]))
    assert (result.E, result.M, result.D, result.X) == (1, 1, 1, 0)


def test_a_split_session_is_wrong_and_duplicated():
    # A stop confirmed during an outage cuts one job into two sessions.
    expected = [session(start=100.0, end=130.0, working_s=25.0, standby_s=5.0)]
    actual = [
        session(start=100.0, end=112.0, working_s=12.0, standby_s=0.0),
        session(start=118.0, end=130.0, working_s=7.0, standby_s=5.0),
    ]
    result = tally(compare(expected, actual))
    assert (result.M, result.W, result.D, result.X) == (0, 1, 1, 0)


def test_the_pairing_prefers_the_session_with_the_same_seconds():
    expected = [session()]
    actual = [session(start=100.3, working_s=1.0), session(start=100.6)]
    assert kinds(compare(expected, actual)) == ["D", "M"]


def test_sessions_of_other_devices_never_pair():
    result = tally(compare([session(device_id=LASER)], [session(device_id=PLUG)]))
    assert (result.L, result.X) == (1, 1)


def test_gen1_devices_have_their_own_tolerance():
    def tolerance_of(device_id):
        return UNCLOCKED if device_id == PLUG else CLOCKED

    expected = [session(device_id=PLUG), session(device_id=LASER)]
    actual = [
        session(device_id=PLUG, start=100.9, working_s=25.3),
        session(device_id=LASER, start=100.0, working_s=25.3),
    ]
    outcomes = compare(expected, actual, tolerance_of)
    assert {(o.device_id, o.kind) for o in outcomes} == {(PLUG, "M"), (LASER, "W")}


def test_running_sessions_overlap_until_the_end_of_the_run():
    expected = [session(end=None)]
    actual = [session(end=None), session(start=150.0, end=None)]
    assert kinds(compare(expected, actual, until=200.0)) == ["D", "M"]
    # Without ``until`` a running session reaches forever: still a duplicate.
    assert kinds(compare(expected, actual)) == ["D", "M"]


def test_outcomes_go_to_the_first_fault_they_overlap():
    windows = [Window("kill", 110.0, 115.0), Window("broker", 205.0, 230.0)]
    expected = [
        session(start=100.0, end=130.0),  # running through the kill
        session(start=140.0, end=150.0),  # between the faults
        session(start=200.0, end=260.0),  # through the broker outage
        session(start=300.0, end=None),  # still running at the end
    ]
    groups = attribute(compare(expected, expected), windows, until=400.0)
    assert {name: len(items) for name, items in groups.items()} == {
        "kill": 1,
        "broker": 1,
        "none": 2,
    }


def test_the_fault_line_lists_the_figures():
    clocked = tally(compare([session()], []))
    unclocked = tally(compare([], []))
    assert fault_line("leader-kill", clocked, unclocked) == (
        "fault=leader-kill E=1 M=0 L=1 D=0 W=0 X=0 gen1: E=0 M=0 L=0 D=0 W=0 X=0"
    )
    assert clocked.problems() == [
        f"L {LASER} expected 100.00..130.00 working=25.00 standby=5.00 database -"
    ]


def test_a_session_lasts_until_its_stop_is_confirmed():
    windows = [Window("poison", 133.0, 140.0)]
    outcomes = compare([session(end=130.0)], [])
    assert list(attribute(outcomes, windows, until=400.0)["poison"]) == []
    assert len(attribute(outcomes, windows, until=400.0, confirm_s=5.0)["poison"]) == 1


def test_mismatches_the_database_marks_as_delayed_are_admitted():
    expected = [session(start=100.0, end=130.0), session(start=140.0, end=170.0)]
    merged = dict(session(start=100.0, end=170.0, working_s=60.0, standby_s=10.0))
    outcomes = compare(expected, [dict(merged, timing="exact")])
    mark_delayed(outcomes, [dict(merged, timing="exact")], until=200.0)
    assert not tally(outcomes).admitted
    delayed = dict(merged, timing="delayed")
    outcomes = compare(expected, [delayed])
    mark_delayed(outcomes, [delayed], until=200.0)
    assert sorted(kinds(outcomes)) == ["L", "W"]
    assert tally(outcomes).admitted and tally(outcomes).delayed == 2
