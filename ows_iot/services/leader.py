"""Leadership of one database through a PostgreSQL session-level advisory lock.

Every Odoo process (threaded server, prefork HTTP worker) runs one candidate per
database. The candidate that holds ``pg_try_advisory_lock(key)`` on its own,
dedicated connection is the leader: the only MQTT consumer of that database.
PostgreSQL releases the lock when that connection ends, so a leader that dies
(worker recycled, process killed, host lost) hands over without any cleanup.

The lock connection is never used for data: the data commits go through the
application's own cursors and are fenced by a term number (``TERM_TABLE_SQL``
below), so a leader that lost its lock cannot commit behind a new one. The lock
says who may lead; the term says whose commits count.

How a process finds what to lead without a connection per database is
:mod:`.watch`: one watcher connection per process reads ``pg_locks`` for the
whole cluster, and a database connection is opened only to try a free lock
(:meth:`LeaderLock.try_once`) and to lead.

Pure Python over psycopg2; nothing here imports Odoo.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
from collections.abc import Callable

import psycopg2

_logger = logging.getLogger(__name__)

KEY_NAMESPACE = "ows_iot.mqtt-leader"
RETRY_S = 3.0

# Detect a dead peer in seconds, not in the two hours of the kernel's defaults:
# client side through libpq, server side through the session's GUCs.
CONNECT_OPTIONS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "options": (
        "-c statement_timeout=5000 -c lock_timeout=5000 "
        "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
    ),
}

HOLDS_LOCK_SQL = """
    SELECT 1 FROM pg_locks
     WHERE locktype = 'advisory'
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND classid = %s AND objid = %s AND objsubid = 1
       AND pid = %s AND granted
"""

HOLDER_SQL = """
    SELECT l.pid, a.application_name, a.client_addr::text, a.backend_start
      FROM pg_locks l
      LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory'
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = %s AND l.objid = %s AND l.objsubid = 1 AND l.granted
"""


# Fencing by term number. A new leader increments the term in the transaction that
# reads the engine snapshots, and every commit re-asserts its term on the same
# row first: the row lock orders a stale leader's last commit strictly before
# its successor's snapshot read, and the stale commit, finding another term,
# writes nothing. No window is left between losing the lock and learning it.
TERM_TABLE_SQL = """
    CREATE TABLE IF NOT EXISTS ows_iot_leader_term (
        id integer PRIMARY KEY CHECK (id = 1),
        term bigint NOT NULL DEFAULT 0
    );
    INSERT INTO ows_iot_leader_term (id, term) VALUES (1, 0) ON CONFLICT (id) DO NOTHING
"""
NEW_TERM_SQL = "UPDATE ows_iot_leader_term SET term = term + 1 WHERE id = 1 RETURNING term"
FENCE_SQL = "UPDATE ows_iot_leader_term SET term = term WHERE id = 1 AND term = %s"


def lock_key(dbname: str) -> int:
    """The advisory lock key of a database: a stable signed 64-bit integer."""
    digest = hashlib.sha256(f"{KEY_NAMESPACE}|{dbname}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_parts(key: int) -> tuple[int, int]:
    """(classid, objid) under which pg_locks shows a bigint advisory key."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def holds_lock_sql(key: int, backend_pid: int) -> tuple[str, tuple]:
    """Query and parameters returning a row iff ``backend_pid`` holds ``key``."""
    classid, objid = lock_parts(key)
    return HOLDS_LOCK_SQL, (classid, objid, backend_pid)


def holder_sql(key: int) -> tuple[str, tuple]:
    """Query and parameters returning (pid, application_name, client, since) of the holder."""
    classid, objid = lock_parts(key)
    return HOLDER_SQL, (classid, objid)


class LeaderLock:
    """A session-level advisory lock held on a dedicated autocommit connection."""

    def __init__(
        self,
        connect_kwargs: dict,
        key: int,
        *,
        application_name: str | None = None,
        connect: Callable[..., object] = psycopg2.connect,
    ):
        self.key = key
        self._kwargs = {**connect_kwargs, **CONNECT_OPTIONS}
        if application_name:
            # PostgreSQL truncates to NAMEDATALEN - 1 bytes.
            self._kwargs["application_name"] = application_name[:63]
        self._connect = connect
        self._conn = None
        self.backend_pid: int | None = None
        self.last_error: str | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and self.backend_pid is not None

    def acquire(self, reclaim: bool = False) -> bool:
        """Try once, without waiting; True when this lock is (now) held.

        After the server was out of reach, the first attempt only reconnects: a
        leader that kept working through the outage takes its lock back first
        (``reclaim``), and its buffer with it.
        """
        if self.held:
            return self.check()
        try:
            if self._conn is None:
                self._conn = self._connect(**self._kwargs)
                self._conn.autocommit = True
                if self.last_error is not None and not reclaim:
                    self.last_error = None
                    return False
            with self._conn.cursor() as cr:
                cr.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (self.key,))
                got, pid = cr.fetchone()
        except psycopg2.Error as exc:
            self._lost(exc)
            return False
        self.last_error = None
        if got:
            self.backend_pid = pid
            return True
        # Keep the connection for the next attempt: connecting is the costly part.
        return False

    def try_once(self, guard_sql: str | None = None) -> bool | None:
        """One attempt on a fresh connection that is kept only if the lock is won.

        ``guard_sql`` (optional) runs first and must return a true first column,
        else no lock is tried (e.g. "ows_iot is installed"). True: the lock is held;
        False: another session holds it; None: the guard said no or the server
        could not be reached (``last_error``). Nothing stays open unless True.
        """
        if self.held:
            return self.check()
        try:
            conn = self._conn = self._connect(**self._kwargs)
            conn.autocommit = True
            with conn.cursor() as cr:
                if guard_sql is not None:
                    cr.execute(guard_sql)
                    row = cr.fetchone()
                    if not (row and row[0]):
                        self.release()
                        self.last_error = None
                        return None
                cr.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (self.key,))
                got, pid = cr.fetchone()
        except psycopg2.Error as exc:
            self._lost(exc)
            return None
        self.last_error = None
        if got:
            self.backend_pid = pid
            return True
        self.release()
        return False

    def check(self) -> bool:
        """Whether the lock is still held; closes everything at the first doubt."""
        if not self.held:
            return False
        sql, params = holds_lock_sql(self.key, self.backend_pid)
        try:
            with self._conn.cursor() as cr:
                cr.execute(sql, params)
                ok = cr.fetchone() is not None
        except psycopg2.Error as exc:
            self._lost(exc)
            return False
        if not ok:
            self._lost(None)
        return ok

    def release(self) -> None:
        """Unlock and close; safe to call at any time, also when the lock was lost."""
        conn, self._conn = self._conn, None
        held, self.backend_pid = self.backend_pid is not None, None
        if conn is None:
            return
        # Closing the connection releases the lock anyway; unlocking first only
        # hands it over before the server notices the closed connection.
        with contextlib.suppress(psycopg2.Error):
            if held and not conn.closed:
                with conn.cursor() as cr:
                    cr.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        with contextlib.suppress(psycopg2.Error):
            conn.close()

    def _lost(self, exc: BaseException | None) -> None:
        self.last_error = _one_line(exc) if exc is not None else "lock no longer held"
        conn, self._conn = self._conn, None
        self.backend_pid = None
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()


class Candidate:
    """One thread competing for the leadership of one database.

    While it holds the lock it calls ``lead(lock, stop)``, which must return
    when ``stop`` is set or ``lock.check()`` fails; the lock is then released
    (also when ``lead`` raised) and the candidate competes again.
    """

    def __init__(
        self,
        name: str,
        lock: LeaderLock,
        lead: Callable[[LeaderLock, threading.Event], None],
        *,
        retry_s: float = RETRY_S,
        logger: logging.Logger = _logger,
    ):
        self.name = name
        self.lock = lock
        self._lead = lead
        self.retry_s = retry_s
        self._logger = logger
        self.stop_event = threading.Event()
        self.leading = threading.Event()
        self.terms = 0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the candidate to stop; True when its thread ended within ``timeout``."""
        self.stop_event.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        return not self.thread.is_alive()

    def _run(self) -> None:
        stop = self.stop_event
        while not stop.is_set():
            try:
                acquired = self.lock.acquire()
            except Exception:  # never let the candidate thread die
                self._logger.exception("%s: lock attempt failed", self.name)
                acquired = False
            if acquired and not stop.is_set():
                self.terms += 1
                self.leading.set()
                try:
                    self._lead(self.lock, stop)
                except Exception:
                    self._logger.exception("%s: leader stopped on an error", self.name)
                finally:
                    self.leading.clear()
                    self.lock.release()
                if stop.is_set():
                    break
                # After an error or a lost lock, give the others the first chance.
                stop.wait(self.retry_s)
                continue
            # Jitter spreads the candidates of all workers over the interval.
            stop.wait(self.retry_s * random.uniform(0.7, 1.3))
        self.lock.release()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
