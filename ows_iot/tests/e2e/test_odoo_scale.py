"""Many databases on one server: connections follow the databases a process leads,
leadership spreads over the workers, the server's db_filter is respected, and a
SIGKILLed worker's databases are taken over in new terms. Real prefork Odoo
servers, a real PostgreSQL and Mosquitto."""

import math
import os
import re
import signal
import time

import pytest

from ows_iot.services.watch import LOCKS_SQL, WATCHER_PREFIX, WATCHERS_SQL, parse_snapshot

from .harness import OdooServer, copy_database, drop_database, query, unique_name, wait_until
from .scenario import configure_broker

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow]


@pytest.fixture
def databases(odoo_template, request):
    """Copies of the installed template under one unique prefix, dropped afterwards."""
    prefix = unique_name("ows_e2e_scale")
    made = []

    def make(count):
        for i in range(count):
            name = f"{prefix}_{i}"
            copy_database(odoo_template, name)
            made.append(name)
        return list(made)

    make.prefix = prefix
    yield make
    for name in made:
        drop_database(name)


def snapshot():
    return parse_snapshot(
        query("postgres", LOCKS_SQL),
        query("postgres", WATCHERS_SQL, [WATCHER_PREFIX.replace("_", r"\_") + "%"]),
    )


def leaders(dbs):
    """database -> Odoo pid of its leader, for those of ``dbs`` that have one."""
    held = snapshot().held
    return {db: int(held[db].rsplit(" pid ", 1)[1]) for db in dbs if held.get(db)}


def started_workers(server):
    return {int(pid) for pid in re.findall(r"runtime started in HTTP worker (\d+)", server.text())}


def connections(pids):
    """(pid, database, application_name) of every connection the processes hold."""
    rows = query("postgres", "SELECT datname, application_name FROM pg_stat_activity")
    found = []
    for datname, app in rows:
        match = re.search(r"(?:^odoo-| pid )(\d+)", app or "")
        if match and int(match.group(1)) in pids:
            found.append((int(match.group(1)), datname, app))
    return found


def terms(dbs):
    return {db: query(db, "SELECT term FROM ows_iot_leader_term")[0][0] for db in dbs}


def test_connections_follow_the_databases_led_and_a_killed_worker_is_replaced(
    databases, broker, workdir
):
    dbs = databases(6)
    for i, db in enumerate(dbs):
        configure_broker(db, broker, client_id=f"ows-e2e-scale-{i}")
    server = OdooServer(
        dbs[0], workdir / "odoo", workers=3,
        args=("--load=base,web,ows_iot", f"--db-filter=^{databases.prefix}_"),
    ).start()  # fmt: skip
    try:
        wait_until(lambda: len(leaders(dbs)) == len(dbs), 60, "a leader for every database")
        workers = started_workers(server)
        assert len(workers) == 3
        cap = math.ceil(len(dbs) / len(workers)) + 1

        def spread():
            led = leaders(dbs)
            per_worker = {pid: sorted(db for db, p in led.items() if p == pid) for pid in workers}
            if len(led) == len(dbs) and max(len(v) for v in per_worker.values()) <= cap:
                return per_worker
            return None

        # Workers start together: the first round already spreads (a worker over its
        # share would hand one back every few seconds).
        per_worker = wait_until(spread, 20, f"at most {cap} databases per worker")
        time.sleep(2)
        assert spread() == per_worker, "leadership moved without a reason"
        assert set(leaders(dbs).values()) <= workers
        held = connections(workers)
        # One watcher per worker, on the maintenance database.
        watchers = [(pid, db) for pid, db, app in held if app.startswith(WATCHER_PREFIX)]
        assert sorted(pid for pid, _ in watchers) == sorted(workers)
        assert {db for _, db in watchers} == {"postgres"}
        # No connection at all to a database the worker does not lead.
        for pid, db, app in held:
            if db in dbs:
                assert db in per_worker[pid], (pid, db, app, per_worker)
        assert len(held) <= len(workers) + 3 * len(dbs), held

        # SIGKILL of the busiest worker: its databases get new leaders in new terms.
        before = terms(dbs)
        victim = max(per_worker, key=lambda pid: len(per_worker[pid]))
        lost = per_worker[victim]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(
            lambda: all(leaders(dbs).get(db) not in (None, victim) for db in lost),
            30,
            "new leaders for the killed worker's databases",
            interval=0.05,
        )
        takeover_s = time.monotonic() - killed_at
        # Each new leader begins a term of its own: the dead one's commits are fenced.
        wait_until(lambda: all(terms(lost)[db] > before[db] for db in lost), 30, "the new terms")
        after = terms(dbs)
        assert all(after[db] == before[db] for db in dbs if db not in lost)
        print(f"takeover of {len(lost)} databases after SIGKILL: {takeover_s:.2f} s")
    finally:
        server.stop()
    assert not leaders(dbs)
    assert not any(" ERROR " in line for line in server.text().splitlines()), server.tail()


def test_only_the_databases_the_server_serves_get_a_candidate(databases, broker, workdir):
    served, other = databases(2)
    for i, db in enumerate((served, other)):
        configure_broker(db, broker, client_id=f"ows-e2e-filter-{i}")
    # %d: the first label of the request's host; the runtime fills in OWS_IOT_HOSTS.
    server = OdooServer(
        served, workdir / "odoo", workers=2, env={"OWS_IOT_HOSTS": f"www.{served}.example.com"},
        args=("--load=base,web,ows_iot", "--db-filter=^%d$"),
    ).start()  # fmt: skip
    try:
        wait_until(lambda: served in leaders([served]), 60, "the served database's leader")
        time.sleep(3)
        assert other not in leaders([other])
        workers = started_workers(server)
        assert [db for _pid, db, _app in connections(workers) if db == other] == []
    finally:
        server.stop()
