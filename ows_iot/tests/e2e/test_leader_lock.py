"""Advisory-lock leadership against a real PostgreSQL server."""

import os
import threading
import time

import pytest

psycopg2 = pytest.importorskip("psycopg2")

from ows_iot.services.leader import (  # noqa: E402
    Candidate,
    LeaderLock,
    holder_sql,
    holds_lock_sql,
    lock_key,
    lock_parts,
)

DB = {
    "host": os.environ.get("OWS_IOT_DB_HOST", "127.0.0.1"),
    "port": int(os.environ.get("OWS_IOT_DB_PORT", "5432")),
    "dbname": "postgres",
}
if os.environ.get("OWS_IOT_DB_USER"):
    DB["user"] = os.environ["OWS_IOT_DB_USER"]


@pytest.fixture(scope="module")
def admin():
    try:
        conn = psycopg2.connect(connect_timeout=3, **DB)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {DB['host']}:{DB['port']}: {str(exc).strip()}")
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def key(request):
    return lock_key(f"test-{request.node.name}-{time.time()}")


def test_lock_key_is_stable_and_signed_64_bit():
    assert lock_key("odoo") == lock_key("odoo")
    assert lock_key("odoo") != lock_key("odoo2")
    for name in ("a", "b", "ows", "x" * 63):
        assert -(2**63) <= lock_key(name) < 2**63
    classid, objid = lock_parts(-1)
    assert (classid, objid) == (0xFFFFFFFF, 0xFFFFFFFF)


def test_one_holder_at_a_time_and_takeover_when_the_connection_ends(admin, key):
    first = LeaderLock(DB, key, application_name="ows test first")
    second = LeaderLock(DB, key, application_name="ows test second")
    try:
        assert first.acquire()
        assert not second.acquire()
        assert first.check()
        with admin.cursor() as cr:
            cr.execute(*holder_sql(key))
            pid, app, _client, _since = cr.fetchone()
        assert pid == first.backend_pid and app == "ows test first"
        # The holder's connection dies (process killed, node lost): the lock goes with it.
        with admin.cursor() as cr:
            cr.execute("SELECT pg_terminate_backend(%s)", (first.backend_pid,))
        assert not first.check()
        assert not first.held and first.last_error
        deadline = time.monotonic() + 5
        while not second.acquire():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert second.check()
    finally:
        first.release()
        second.release()


def test_fencing_query_proves_the_holder_from_another_connection(admin, key):
    lock = LeaderLock(DB, key)
    try:
        assert lock.acquire()
        with admin.cursor() as cr:
            cr.execute(*holds_lock_sql(key, lock.backend_pid))
            assert cr.fetchone() is not None
            cr.execute(*holds_lock_sql(key, lock.backend_pid + 1))
            assert cr.fetchone() is None
        lock.release()
        with admin.cursor() as cr:
            cr.execute(*holder_sql(key))
            assert cr.fetchone() is None
    finally:
        lock.release()


def test_transaction_lock_of_another_session_excludes_the_leader(admin, key):
    # The cron takes pg_try_advisory_xact_lock to act only when no leader runs.
    lock = LeaderLock(DB, key)
    try:
        with admin.cursor() as cr:
            cr.execute("BEGIN")
            cr.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,))
            assert cr.fetchone()[0]
            assert not lock.acquire()
            cr.execute("COMMIT")
        assert lock.acquire()
        with admin.cursor() as cr:
            cr.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,))
            assert not cr.fetchone()[0]
    finally:
        lock.release()


def test_unreachable_server_is_a_failed_attempt_not_an_error(key):
    lock = LeaderLock({**DB, "port": 1}, key)
    assert not lock.acquire()
    assert lock.last_error
    assert not lock.check()
    lock.release()


def test_candidates_elect_exactly_one_and_fail_over(admin, key):
    leading = []
    lock_events = threading.Event()

    def lead(name):
        def run(lock, stop):
            leading.append(name)
            lock_events.set()
            while not stop.is_set() and lock.check():
                stop.wait(0.05)

        return run

    candidates = [
        Candidate(f"c{i}", LeaderLock(DB, key), lead(f"c{i}"), retry_s=0.2) for i in range(3)
    ]
    try:
        for candidate in candidates:
            candidate.start()
        assert lock_events.wait(5)
        time.sleep(0.6)
        assert len(leading) == 1
        assert sum(c.leading.is_set() for c in candidates) == 1
        (leader,) = [c for c in candidates if c.leading.is_set()]
        # Kill the leader's connection: another candidate takes over within the retry time.
        started = time.monotonic()
        with admin.cursor() as cr:
            cr.execute("SELECT pg_terminate_backend(%s)", (leader.lock.backend_pid,))
        while len(leading) < 2:
            assert time.monotonic() - started < 5
            time.sleep(0.02)
        time.sleep(0.3)
        assert sum(c.leading.is_set() for c in candidates) == 1
        # A clean stop releases the lock at once.
        (current,) = [c for c in candidates if c.leading.is_set()]
        assert current.stop(5)
        with admin.cursor() as cr:
            deadline = time.monotonic() + 5
            while True:
                cr.execute(*holder_sql(key))
                row = cr.fetchone()
                if row is not None and row[0] != current.lock.backend_pid:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        for candidate in candidates:
            candidate.stop(5)
    with admin.cursor() as cr:
        cr.execute(*holder_sql(key))
        assert cr.fetchone() is None


def test_after_an_outage_the_leader_takes_its_lock_back_first(key):
    from .harness import ThrowawayPostgres

    cluster = ThrowawayPostgres().init()
    try:
        cluster.start()
        db = {"host": "127.0.0.1", "dbname": "postgres", **cluster.connect()}
        leader = LeaderLock(db, key, application_name="ows test leader")
        candidate = LeaderLock(db, key, application_name="ows test candidate")
        assert leader.acquire()
        assert not candidate.acquire()
        cluster.stop("fast")
        assert not leader.check() and not candidate.acquire()
        cluster.start()
        # The candidate's first attempt after the outage only reconnects; the leader,
        # which kept working meanwhile, takes the lock back at once.
        assert not candidate.acquire()
        assert leader.acquire(reclaim=True)
        assert not candidate.acquire()
        leader.release()
        assert candidate.acquire()
        candidate.release()
    finally:
        cluster.destroy()


def test_a_failed_attempt_keeps_no_connection(admin, key):
    holder = LeaderLock(DB, key, application_name="ows test holder")
    other = LeaderLock(DB, key, application_name="ows test other")
    try:
        assert holder.try_once() is True
        assert other.try_once() is False
        assert not other.held and other._conn is None
        with admin.cursor() as cr:
            cr.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                       ("ows test other",))  # fmt: skip
            assert cr.fetchone()[0] == 0
        # A guard that says no: no lock is tried, nothing stays open.
        holder.release()
        assert other.try_once("SELECT false") is None and other.last_error is None
        assert other._conn is None
        assert other.try_once("SELECT true") is True
    finally:
        holder.release()
        other.release()


def test_the_watcher_sees_the_locks_of_every_database_from_one_connection(admin):
    from ows_iot.services.watch import Watcher, leader_name, set_tag

    # The leader key of the database "postgres", held there by a fake leader.
    lock = LeaderLock(DB, lock_key("postgres"), application_name=leader_name("test pid 4242"))
    watcher = Watcher(DB, "test pid 1")
    peer = Watcher(DB, "test pid 2")
    try:
        assert "postgres" not in watcher.snapshot().held
        assert lock.try_once() is True
        snapshot = watcher.snapshot()
        assert snapshot.held["postgres"] == "test pid 4242"
        # While nothing changes, only pg_locks is read.
        queries = watcher.name_queries
        watcher.snapshot()
        assert watcher.name_queries == queries
        peer.set_databases(["a", "b"])
        peer.snapshot()
        watcher.set_databases(["b", "a"])
        watchers = watcher.snapshot(refresh=True).watchers
        assert watchers["test pid 1"] == watchers["test pid 2"] == set_tag(["a", "b"])
        assert "postgres" in watcher.list_databases(owned_only=False)
        lock.release()
        # A holder gone is noticed at once (its pid left pg_locks).
        assert "postgres" not in watcher.snapshot().held
        assert watcher.name_queries == queries + 2
    finally:
        lock.release()
        watcher.close()
        peer.close()
