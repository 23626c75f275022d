"""Which databases this process should try to lead, from one connection per process.

Every Odoo process that runs the ingestion keeps one *watcher* connection (to the
``postgres`` maintenance database, or any it may reach). Twice a second the
watcher reads ``pg_locks`` and ``pg_stat_activity``, which show the advisory
locks and sessions of every database of the cluster: who leads which database
(the lock holder's ``application_name``, ``ows_iot leader <host> pid <pid>``)
and which processes compete (the watchers' ``application_name``,
``ows_iot watcher <host> pid <pid> set <tag>``). No connection to a database
is held while another process leads it: a process opens one only to try a free
lock, and keeps it only while it leads.

The decisions are pure functions of one such snapshot, so that every watcher
that sees the same snapshot decides the same:

- :func:`served_databases` — the databases the Odoo server serves (its
  ``db_filter`` and ``--database`` list, as ``odoo.http.db_filter`` and
  ``odoo.service.db.list_dbs`` decide them);
- :func:`plan` — which free databases to take and whether to hand one back.
  With D databases and P watchers serving the same databases (the same
  ``set`` tag, or still starting), each takes at most ``share(D, P) = ceil(D / P)``: a free
  database goes to the least loaded watcher (ties broken by a hash of the
  database and the watcher, so watchers do not collide); a watcher leading more
  than ``share + 1`` (after others started) hands one back. A database nobody
  takes within ``grace_s`` (watchers that serve other sets, a watcher that fails
  to lead) is taken by any watcher that serves it.

Pure Python over psycopg2; nothing here imports Odoo.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg2

from .leader import CONNECT_OPTIONS, lock_key, lock_parts

WATCHER_PREFIX = "ows_iot watcher "
LEADER_PREFIX = "ows_iot leader "
# The tag of a watcher that has not listed its databases yet: counted as a peer
# of every set, so that processes starting together share from the first round.
STARTING_TAG = "-"
# application_name holds NAMEDATALEN - 1 = 63 bytes: the host is cut to fit.
HOST_CHARS = 24

# The databases Odoo's list_dbs lists (owned by the Odoo user, no templates).
LIST_DATABASES_SQL = """
    SELECT datname FROM pg_database
     WHERE datdba = (SELECT usesysid FROM pg_user WHERE usename = current_user)
       AND NOT datistemplate AND datallowconn AND datname <> ALL(%s)
     ORDER BY datname
"""
ALL_DATABASES_SQL = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
LOCKS_SQL = """
    SELECT d.datname, l.classid::bigint, l.objid::bigint, a.application_name
      FROM pg_locks l
      JOIN pg_database d ON d.oid = l.database
      LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
"""
# What the watcher asks twice a second: the locks alone. pg_stat_activity (the
# holders' and the watchers' names) only when the holders changed, a database is
# free, or every few seconds.
LOCK_PIDS_SQL = """
    SELECT d.datname, l.classid::bigint, l.objid::bigint, l.pid
      FROM pg_locks l
      JOIN pg_database d ON d.oid = l.database
     WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted
"""
NAMES_SQL = "SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE %s"
WATCHERS_SQL = "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s"
OWS_IOT_LIKE = r"ows\_iot %"
INSTALLED_SQL = """
    SELECT CASE WHEN to_regclass('ir_module_module') IS NULL THEN false
                ELSE EXISTS (SELECT 1 FROM ir_module_module WHERE name = 'ows_iot'
                                AND state IN ('installed', 'to upgrade')) END
"""


def process_ident(host: str, pid: int) -> str:
    """How a process names itself in its watcher's and its leaders' connections."""
    return f"{host[:HOST_CHARS]} pid {pid}"


def leader_name(ident: str) -> str:
    return (LEADER_PREFIX + ident)[:63]


def watcher_name(ident: str, tag: str) -> str:
    return f"{WATCHER_PREFIX}{ident} set {tag}"[:63]


def set_tag(databases: Iterable[str]) -> str:
    """A short fingerprint of a set of database names: equal sets, equal tags."""
    text = "\n".join(sorted(databases))
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def parse_watcher(name: str | None) -> tuple[str, str] | None:
    """(ident, tag) of a watcher's application_name, None for anything else."""
    if not name or not name.startswith(WATCHER_PREFIX):
        return None
    ident, sep, tag = name[len(WATCHER_PREFIX) :].rpartition(" set ")
    return (ident, tag) if sep else None


def parse_leader(name: str | None) -> str | None:
    if not name or not name.startswith(LEADER_PREFIX):
        return None
    return name[len(LEADER_PREFIX) :]


# -- which databases the server serves ----------------------------------------------------


def served_databases(
    names: Iterable[str],
    *,
    dbfilter: str | None,
    db_name: str | None,
    hosts: Iterable[str] | None = None,
) -> list[str]:
    """The databases among ``names`` that the server serves, as Odoo decides it.

    ``names`` are the databases Odoo would list (``list_dbs``). Without a
    ``dbfilter`` a ``db_name`` list (``--database a,b``) is the served set; with
    one, ``db_name`` plays no part, as in ``odoo.http.db_filter``. ``%h`` and
    ``%d`` stand for a request's host and its first label: they are filled in
    with each of ``hosts`` when given; without hosts, with any host (``%h`` as
    ``[^:]*``, ``%d`` as ``[^.:]*``), that is every database some request could
    reach.
    """
    names = list(names)
    if not dbfilter:
        if db_name:
            exposed = {name.strip() for name in db_name.split(",") if name.strip()}
            return sorted(exposed.intersection(names))
        return sorted(names)
    if "%h" not in dbfilter and "%d" not in dbfilter:
        pattern = re.compile(dbfilter)
        return sorted(name for name in names if pattern.match(name))
    hosts = [host for host in (hosts or ()) if host is not None]
    if not hosts:
        pattern = re.compile(dbfilter.replace("%h", "[^:]*").replace("%d", "[^.:]*"))
        return sorted(name for name in names if pattern.match(name))
    served = set()
    for host in hosts:
        host = host.partition(":")[0]
        if host.startswith("www."):
            host = host[4:]
        domain = host.partition(".")[0]
        pattern = re.compile(
            dbfilter.replace("%h", re.escape(host)).replace("%d", re.escape(domain))
        )
        served.update(name for name in names if pattern.match(name))
    return sorted(served)


# -- one snapshot of the cluster -------------------------------------------------------------


@dataclass
class Snapshot:
    """Who leads which database, and which watchers compete, at one instant."""

    held: dict[str, str | None] = field(default_factory=dict)  # database -> leader ident
    watchers: dict[str, str] = field(default_factory=dict)  # ident -> set tag


def parse_snapshot(lock_rows, watcher_rows) -> Snapshot:
    """A :class:`Snapshot` from the rows of ``LOCKS_SQL`` and ``WATCHERS_SQL``.

    Only the advisory locks whose key is the leader key of their own database
    count: other advisory locks of the same databases are someone else's.
    """
    held = {}
    for datname, classid, objid, application_name in lock_rows:
        if lock_parts(lock_key(datname)) == (classid, objid):
            held[datname] = parse_leader(application_name)
    watchers = {}
    for (application_name,) in watcher_rows:
        parsed = parse_watcher(application_name)
        if parsed is not None:
            watchers[parsed[0]] = parsed[1]
    return Snapshot(held, watchers)


def share(databases: int, watchers: int) -> int:
    """The most databases one of ``watchers`` processes should lead: ceil(D / P)."""
    return math.ceil(databases / max(1, watchers)) if databases else 0


def _rank(dbname: str, ident: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{dbname}|{ident}".encode()).digest()[:8], "big")


@dataclass
class Plan:
    take: list[str]
    hand_back: str | None
    share: int
    watchers: int


def plan(
    me: str,
    tag: str,
    databases: Iterable[str],
    snapshot: Snapshot,
    leading: Iterable[str],
    *,
    free_for: dict[str, float] | None = None,
    grace_s: float = 3.0,
    hold_off: Iterable[str] = (),
) -> Plan:
    """What this watcher (``me``, serving ``databases`` with set ``tag``) does now.

    ``leading``: the databases this process leads or is trying to lead;
    ``free_for``: how long each free database has been seen free (seconds);
    ``hold_off``: databases this process must not take now, not even after the
    grace (it just handed them back, or its leader just ended).
    """
    databases = sorted(set(databases))
    leading = set(leading)
    hold_off = set(hold_off)
    free_for = free_for or {}
    peers = {
        ident for ident, other in snapshot.watchers.items() if other in (tag, STARTING_TAG)
    } | {me}
    limit = share(len(databases), len(peers))
    loads = dict.fromkeys(peers, 0)
    for holder in snapshot.held.values():
        if holder in loads:
            loads[holder] += 1
    loads[me] = max(loads[me], len(leading))
    take = []
    for dbname in databases:
        if dbname in snapshot.held or dbname in leading:
            continue
        under = [ident for ident in sorted(peers) if loads[ident] < limit]
        chosen = min(under, key=lambda ident: (loads[ident], _rank(dbname, ident)), default=None)
        if chosen is not None:
            loads[chosen] += 1
        if dbname in hold_off:
            continue
        if chosen == me or free_for.get(dbname, 0.0) >= grace_s:
            take.append(dbname)
    hand_back = None
    mine = sorted(leading & set(databases))
    if len(leading) > limit + 1 and mine:
        hand_back = max(mine, key=lambda dbname: _rank(dbname, me))
    return Plan(take, hand_back, limit, len(peers))


# -- the watcher's connection ----------------------------------------------------------------


class Watcher:
    """The one connection of a process that watches the locks of the whole cluster."""

    def __init__(
        self,
        connect_kwargs: dict,
        ident: str,
        *,
        connect: Callable[..., object] = psycopg2.connect,
    ):
        self.ident = ident
        self.tag = STARTING_TAG
        self._kwargs = {**connect_kwargs, **CONNECT_OPTIONS}
        self._connect = connect
        self._conn = None
        self._names = None  # backend pid -> application_name, of ows_iot's sessions
        self._pids = set()
        self.name_queries = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def _cursor(self):
        if not self.connected:
            self._conn = self._connect(
                **self._kwargs, application_name=watcher_name(self.ident, self.tag)
            )
            self._conn.autocommit = True
        return self._conn.cursor()

    def set_databases(self, databases: Iterable[str]) -> None:
        """Publish the set served (its tag), so that peers are those serving the same."""
        tag = set_tag(databases)
        if tag == self.tag:
            return
        self.tag = tag
        if self.connected:
            with self._cursor() as cr:
                cr.execute("SELECT set_config('application_name', %s, false)",
                           (watcher_name(self.ident, tag),))  # fmt: skip

    def list_databases(self, *, owned_only: bool = True, exclude=("postgres",)) -> list[str]:
        with self._cursor() as cr:
            if owned_only:
                cr.execute(LIST_DATABASES_SQL, (list(exclude),))
            else:
                cr.execute(ALL_DATABASES_SQL)
            return [name for (name,) in cr.fetchall()]

    def snapshot(self, refresh: bool = False) -> Snapshot:
        """The cluster's leader locks and watchers; the names of the sessions are read
        again when ``refresh``, or when the lock holders are not those of last time."""
        with self._cursor() as cr:
            cr.execute(LOCK_PIDS_SQL)
            locks = cr.fetchall()
            pids = {pid for *_rest, pid in locks}
            if refresh or self._names is None or pids != self._pids:
                cr.execute(NAMES_SQL, (OWS_IOT_LIKE,))
                self._names = dict(cr.fetchall())
                self.name_queries += 1
            self._pids = pids
        names = self._names
        lock_rows = [(db, classid, objid, names.get(pid)) for db, classid, objid, pid in locks]
        return parse_snapshot(lock_rows, [(name,) for name in names.values()])

    def close(self) -> None:
        self._names, self._pids = None, set()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()


def check_installed(
    connect_kwargs: dict, connect: Callable[..., object] = psycopg2.connect
) -> bool | None:
    """Whether ows_iot is installed in a database (one short connection); None when
    it cannot be told (the database is out of reach)."""
    try:
        conn = connect(**{**connect_kwargs, **CONNECT_OPTIONS})
    except psycopg2.Error:
        return None
    try:
        with conn.cursor() as cr:
            cr.execute(INSTALLED_SQL)
            return bool(cr.fetchone()[0])
    except psycopg2.Error:
        return None
    finally:
        with contextlib.suppress(psycopg2.Error):
            conn.close()
