"""The fault suite, short version: every runtime guarantee of SPEC section 9 that a
fault can break, checked against the broker's own traffic (see fault_scenario.py;
``python bench/faults.py`` runs the long version)."""

import pytest

# Odoo's PostgreSQL driver: these tests start Odoo servers (skipped without Odoo).
pytest.importorskip("psycopg2")

from .fault_scenario import SHORT, run_fault_suite

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow]


@pytest.mark.timeout(600)
def test_faults_lose_duplicate_and_miscount_no_session(odoo_template, workdir):
    # Bounded waits: a fault that stops ingestion costs 30 s, not the test's timeout.
    result = run_fault_suite(
        odoo_template,
        workdir / "faults",
        SHORT,
        progress=print,
        recovery_timeout_s=30,
        settle_timeout_s=30,
    )
    report = "\n".join([*result.lines(), *result.notes()])
    print(report)
    # Every fault hit running sessions of the devices with a clock.
    for run in result.runs:
        assert result.clocked[run.fault.name].E > 0, (run.fault.name, report)
    # The rule: every session of a device with a clock (Gen2 and newer stamp every
    # frame) must come out as in an uninterrupted run: none lost, duplicated, extra or
    # with other seconds. Gen1 devices send no timestamp: while no consumer runs at
    # all, the broker queues their readings and they can only be applied at their
    # delivery time, so those sessions may be inexact, but then the database says so:
    # each such session is marked as of delayed timing (SPEC section 9).
    gen2 = result.total(result.clocked)
    gen1 = result.total(result.unclocked)
    problems = "\n".join(
        f"{name}: {problem}"
        for tallies in (result.clocked, result.unclocked)
        for name, tally in tallies.items()
        for problem in tally.problems()
    )
    assert gen2.clean, f"{report}\n{problems}"
    assert gen1.admitted, f"{report}\n{problems}"
