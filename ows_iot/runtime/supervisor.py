# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The ingestion threads of one Odoo process.

:class:`Supervisor` (one per process) is the process's *watcher*: one thread and
one PostgreSQL connection (to ``postgres``), whatever the number of databases.
Every ``WATCH_S`` (0.5 s) it reads ``pg_locks`` and ``pg_stat_activity`` of the
whole cluster (:mod:`..services.watch`): which databases have a leader, which
processes lead them, which other watchers compete. Every ``LIST_S`` (5 s) it
lists the databases this server serves (``db_filter``, ``--database``, as Odoo
decides; ``%h``/``%d`` are filled with ``ows_iot_hosts`` or stand for any host)
and looks into new ones once, on a connection it closes, for ``ows_iot``
(those without it again every ``RECHECK_S``). No connection to a database is
held while another process leads it.

When a served database has no leader, the watchers that serve the same
databases agree without talking on who takes it: the least loaded, ties broken
by a hash, none beyond ``ceil(D/P)`` of D databases among P processes; one that
leads more than that plus one (another node started) hands one back cleanly,
one at a time. A database nobody took within ``GRACE_S`` is taken by anyone
who serves it. Taking is a :class:`DatabaseRuntime`: a thread that tries the
lock once on a fresh connection (ows_iot still installed?) and, if it wins,
runs :class:`LeaderTerm` after term: restore the engines from the devices'
``engine_state``, connect to the broker, and feed every message through the
checkpointing :class:`~..services.runner.Runner`, whose commits go through the
registry's own cursors (never a request's), the single ingestion method
``ows.iot.event.ingest_events`` and the engine snapshots, in one transaction.
A term ends when the broker settings change (a new term reconnects), when
another process leads (step down at once, MQTT client first), or when the
process stops (flush, ack, disconnect, unlock). The thread ends with the
leadership: a process runs one thread (and one MQTT network thread) per
database it leads, none for the others; in prefork workers with small stacks
(``thread_stack``).

Fencing is by term number (``ows_iot_leader_term``): each term increments it in
the transaction that reads the snapshots, and every commit first re-asserts it,
so a leader that lost the lock can never commit behind its successor.

When PostgreSQL goes away the leader keeps its broker connection and keeps
processing into the runner's bounded buffer with true receive times (nothing is
acknowledged). It tries to take its lock back every step; once it holds it
again its term tells whether anyone led meanwhile: if not, it commits the buffer
at once; if so, the commit fails, it steps down and the broker redelivers.
The watchers, back on PostgreSQL, take nothing for ``RECLAIM_S``, so the
leaders get their locks back first; a database that cannot be looked into
keeps what was known of it.
"""

import logging
import os
import socket
import threading
import time
from contextlib import closing, contextmanager

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2.extras import Json

import odoo
from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tools import config

from ..services.config import ConfigError
from ..services.ingestor import Ingestor
from ..services.leader import FENCE_SQL, NEW_TERM_SQL, LeaderLock, lock_key
from ..services.mqtt_client import MqttClient, MqttSettings, SettingsError
from ..services.runner import FLUSH_INTERVAL_S, BufferOverflow, LeadershipLost, Runner
from ..services.watch import (
    INSTALLED_SQL,
    Watcher,
    check_installed,
    leader_name,
    plan,
    process_ident,
    served_databases,
)

_logger = logging.getLogger(__name__)

# The watcher reads the cluster's locks this often: it bounds the failover time.
WATCH_S = 0.5
# The served databases are listed this often; new ones are looked into once.
LIST_S = 5.0
# A served database without ows_iot is looked into again after this long.
RECHECK_S = 300.0
FIRST_SCAN_DELAY_S = 1.0
# A free database nobody else took within this long is taken by any watcher.
GRACE_S = 3.0
# After its leader ended (an error, a lost lock), a database is left to the
# others for this long; one handed back for longer, and one at a time.
HOLD_OFF_S = 2.0
HAND_BACK_S = 5.0
HAND_BACK_HOLD_S = 60.0
# After the watcher lost PostgreSQL, leaders take their locks back first.
RECLAIM_S = 2.0
THREAD_STACK_KB = 1024
STEP_S = 0.25
LOCK_CHECK_S = 1.0
DEVICE_POLL_S = 2.0
SETTINGS_POLL_S = 5.0
STATUS_WRITE_S = 5.0
STATUS_LOG_S = 60.0
CONFLICT_RETRIES = 3
CONFLICTS = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
)
ERROR_LOG_EVERY_S = 60.0


class LockPending(ConnectionError):
    """No commit until the leader holds its lock again (after a database outage)."""


def transient(exc):
    """A commit failure worth retrying: the database is unreachable or busy."""
    return isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError | ConnectionError)


class Supervisor:
    """The watcher of one process and the leaders it runs (see the module's opening)."""

    def __init__(self):
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.ident = process_ident(self.host, self.pid)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._runtimes = {}
        self._installed = {}  # database -> (installed, monotonic time of the check)
        self._served = []
        self._free_since = {}
        self._hold_off = {}  # database -> monotonic time until which not to take it
        self._next_list = 0.0
        self._next_hand_back = 0.0
        self._reclaim_until = 0.0
        self._warned_client_ids = set()
        self._checked_client_ids = ()
        self.watcher = Watcher(_connection_info("postgres"), self.ident)
        self._thread = threading.Thread(target=self._run, name="ows_iot.watcher", daemon=True)

    def start(self):
        with thread_stack():
            self._thread.start()

    def stop(self, timeout):
        deadline = time.monotonic() + timeout
        self._stop.set()
        with self._lock:
            runtimes = list(self._runtimes.values())
            self._runtimes = {}
        for runtime in runtimes:
            runtime.stop_event.set()  # all leaders flush in parallel
        for runtime in runtimes:
            if not runtime.stop(max(0.1, deadline - time.monotonic())):
                _logger.warning("ows_iot: %s did not stop in time", runtime.dbname)
        self._thread.join(max(0.1, deadline - time.monotonic()))
        self.watcher.close()

    @property
    def runtimes(self):
        return dict(self._runtimes)

    @property
    def leading(self):
        """The databases this process leads right now."""
        return sorted(db for db, runtime in self._runtimes.items() if runtime.leading.is_set())

    def _run(self):
        if self._stop.wait(FIRST_SCAN_DELAY_S):
            return
        while not self._stop.is_set():
            try:
                self._tick()
            except psycopg2.Error as exc:
                # Leaders take their own locks back first after an outage.
                if self.watcher.connected or not self._reclaim_until:
                    _logger.warning("ows_iot watcher lost PostgreSQL: %s", _one_line(exc))
                self.watcher.close()
                self._reclaim_until = time.monotonic() + RECLAIM_S
            except Exception:
                _logger.exception("ows_iot: watching the leader locks failed")
            self._stop.wait(WATCH_S)
        self.watcher.close()

    def _tick(self):
        now = time.monotonic()
        refresh = bool(self._free_since)
        if now >= self._next_list:
            self._served = self._databases(now)
            self.watcher.set_databases(self._served)
            self._next_list = now + LIST_S
            self._warn_client_ids()
            refresh = True
        snapshot = self.watcher.snapshot(refresh=refresh)
        with self._lock:
            if self._stop.is_set():
                return
            for dbname, runtime in list(self._runtimes.items()):
                if not runtime.thread.is_alive():
                    del self._runtimes[dbname]
                    if runtime.not_installed:
                        self._installed[dbname] = (False, now)
                    else:
                        # After an error, a lost lock or an unreachable database, the
                        # others have the first chance.
                        self._hold_off[dbname] = max(
                            self._hold_off.get(dbname, 0.0), now + HOLD_OFF_S
                        )
            for dbname in [db for db, until in self._hold_off.items() if until <= now]:
                del self._hold_off[dbname]
            free = [db for db in self._served if db not in snapshot.held]
            self._free_since = {db: self._free_since.get(db, now) for db in free}
            if now < self._reclaim_until:
                return
            decision = plan(
                self.ident,
                self.watcher.tag,
                self._served,
                snapshot,
                self._runtimes,
                free_for={db: now - since for db, since in self._free_since.items()},
                grace_s=GRACE_S,
                hold_off=self._hold_off,
            )
            for dbname in decision.take:
                runtime = DatabaseRuntime(dbname)
                self._runtimes[dbname] = runtime
                runtime.start()
            if decision.hand_back and now >= self._next_hand_back:
                runtime = self._runtimes.get(decision.hand_back)
                if runtime is not None and runtime.leading.is_set():
                    _logger.info(
                        "ows_iot: this process leads %d databases, more than its share "
                        "of %d among %d processes: handing %s back",
                        len(self._runtimes), decision.share, decision.watchers, runtime.dbname,
                    )  # fmt: skip
                    runtime.stop_event.set()
                    self._hold_off[runtime.dbname] = now + HAND_BACK_HOLD_S
                    self._next_hand_back = now + HAND_BACK_S
        # Databases no longer served (filtered out, dropped, ows_iot uninstalled).
        for dbname, runtime in list(self._runtimes.items()):
            if dbname not in self._served and runtime.thread.is_alive():
                runtime.stop_event.set()

    def _databases(self, now):
        """The served databases with ows_iot installed; only new ones (and, rarely,
        those without ows_iot) are looked into."""
        dbfilter = config["dbfilter"]
        if not dbfilter and config["db_name"]:
            names = self.watcher.list_databases(owned_only=False)
        else:
            templates = list({"postgres", config["db_template"]})
            names = self.watcher.list_databases(exclude=templates)
        served = served_databases(
            names, dbfilter=dbfilter, db_name=config["db_name"], hosts=configured_hosts()
        )
        for dbname in list(self._installed):
            if dbname not in served:
                del self._installed[dbname]
        wanted = []
        for dbname in served:
            known = self._installed.get(dbname)
            if known is None or (not known[0] and now - known[1] >= RECHECK_S):
                installed = check_installed(_connection_info(dbname))
                if installed is None:
                    # Out of reach (an outage): as it was, a leader keeps its buffer.
                    installed = known[0] if known else False
                    checked = known[1] if known else now - RECHECK_S + LIST_S
                else:
                    checked = now
                self._installed[dbname] = (installed, checked)
            if self._installed[dbname][0]:
                wanted.append(dbname)
        return wanted

    def _warn_client_ids(self):
        leading = self.leading
        if len(leading) > 1 and leading != self._checked_client_ids:
            self._checked_client_ids = leading
            warn_shared_client_ids(
                {dbname: _configured_client_id(dbname) for dbname in leading},
                self._warned_client_ids,
            )


def configured_hosts():
    """The hosts to fill ``%h``/``%d`` of ``db_filter`` with: ``OWS_IOT_HOSTS`` or
    ``ows_iot_hosts`` (comma-separated); None: any host."""
    value = os.environ.get("OWS_IOT_HOSTS") or config.get("ows_iot_hosts")
    if not value:
        return None
    return [host.strip() for host in str(value).split(",") if host.strip()] or None


def _connection_info(dbname):
    _name, info = odoo.sql_db.connection_info_for(dbname)
    info = dict(info)
    info.pop("application_name", None)
    return info


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


@contextmanager
def thread_stack():
    """Threads started inside get a small stack (``THREAD_STACK_KB``) in prefork
    workers; elsewhere, and when ``OWS_IOT_THREAD_STACK_KB`` is 0, the default.

    ``threading.stack_size`` is process-wide: it is set and reset under a lock
    around the start of the runtime's own threads, and only where no other
    thread starts threads meanwhile (a prefork worker serves requests in its
    main thread; the threaded server starts one per request).
    """
    size = thread_stack_kb() * 1024 if _in_prefork_worker() else 0
    if not size:
        yield
        return
    with _stack_lock:
        previous = threading.stack_size(size)
        try:
            yield
        finally:
            threading.stack_size(previous)


_stack_lock = threading.Lock()


def thread_stack_kb():
    value = os.environ.get("OWS_IOT_THREAD_STACK_KB") or config.get("ows_iot_thread_stack_kb")
    try:
        kb = int(value) if value not in (None, "") else THREAD_STACK_KB
    except ValueError:
        kb = THREAD_STACK_KB
    return 0 if kb <= 0 else max(kb, 256)


def _in_prefork_worker():
    return bool(config["workers"]) and not odoo.evented


def _configured_client_id(dbname):
    """The MQTT client id a database's leader would connect with; None without a broker.

    Read with plain SQL, like res.config.settings._ows_iot_broker_settings derives it.
    """
    try:
        with closing(odoo.sql_db.db_connect(dbname).cursor()) as cr:
            cr.execute(
                "SELECT key, value FROM ir_config_parameter WHERE key IN "
                "('ows_iot.mqtt_host', 'ows_iot.mqtt_client_id', 'database.uuid')"
            )
            params = dict(cr.fetchall())
    except psycopg2.Error:
        return None
    if not (params.get("ows_iot.mqtt_host") or "").strip():
        return None
    uuid = params.get("database.uuid") or dbname
    return params.get("ows_iot.mqtt_client_id") or f"ows-iot-{uuid[:12]}"


def warn_shared_client_ids(client_ids, warned):
    """Warn once when databases of this process would share one MQTT client id.

    ``client_ids`` maps database names to client ids (None: no broker). Two leaders
    with one client id throw each other off the broker and take each other's
    queued messages: typically a restored copy of a database that was not
    neutralized.
    """
    databases = {}
    for dbname, client_id in client_ids.items():
        if client_id:
            databases.setdefault(client_id, []).append(dbname)
    for client_id, dbnames in sorted(databases.items()):
        key = (client_id, tuple(sorted(dbnames)))
        if len(dbnames) > 1 and key not in warned:
            warned.add(key)
            _logger.warning(
                "ows_iot: databases %s use the same MQTT client id %s: their leaders would "
                "take over each other's broker session; give each its own client id "
                "(Settings → IoT) or neutralize copies (odoo-bin neutralize)",
                ", ".join(key[1]),
                client_id,
            )


class DatabaseRuntime:
    """One attempt at the lock of one database in this process, and its terms as leader.

    Its thread tries the lock once on a fresh connection (which must also find
    ows_iot installed); on success it leads until it stops or loses the lock, and
    ends either way: the watcher decides when to try again.
    """

    def __init__(self, dbname):
        self.dbname = dbname
        self.key = lock_key(dbname)
        self.host = socket.gethostname()
        # The name shows in pg_stat_activity: the watchers and the status panel
        # tell from it who leads.
        self.lock = LeaderLock(
            _connection_info(dbname),
            self.key,
            application_name=leader_name(process_ident(self.host, os.getpid())),
        )
        self.stop_event = threading.Event()
        self.leading = threading.Event()
        self.led = False
        self.not_installed = False
        self.term = None
        self.warned = set()
        self._last_error_log = {}
        self.thread = threading.Thread(
            target=self._run, name=f"ows_iot.leader.{dbname}", daemon=True
        )

    def start(self):
        with thread_stack():
            self.thread.start()

    def stop(self, timeout):
        """Ask the leader to stop; True when its thread ended within ``timeout``."""
        self.stop_event.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        return not self.thread.is_alive()

    def _run(self):
        try:
            got = self.lock.try_once(INSTALLED_SQL)
            if got is None and self.lock.last_error is None:
                self.not_installed = True
            if not got or self.stop_event.is_set():
                return
            self.led = True
            self.leading.set()
            try:
                self._lead(self.lock, self.stop_event)
            except Exception:  # never let the thread die with the lock held
                _logger.exception("ows_iot leader of %s stopped on an error", self.dbname)
            finally:
                self.leading.clear()
        finally:
            self.lock.release()

    def log_error(self, key, message, *args):
        """Log an error at most once a minute per kind."""
        now = time.monotonic()
        if now - self._last_error_log.get(key, -ERROR_LOG_EVERY_S) >= ERROR_LOG_EVERY_S:
            self._last_error_log[key] = now
            _logger.warning(message, *args)

    def _lead(self, lock, stop):
        threading.current_thread().dbname = self.dbname
        since = time.time()
        _logger.info(
            "ows_iot leader elected: db=%s host=%s pid=%s lock_backend=%s",
            self.dbname,
            self.host,
            os.getpid(),
            lock.backend_pid,
        )
        failures = 0
        try:
            while not stop.is_set():
                term = LeaderTerm(self, lock, stop, since)
                self.term = term
                try:
                    again = term.run()
                    failures = 0
                except LeadershipLost as exc:
                    _logger.warning(
                        "ows_iot leader lost the lock of %s (%s): stepping down", self.dbname, exc
                    )
                    return
                except BufferOverflow:
                    # Logged by the runner; start over from the last commit.
                    stop.wait(1.0)
                    continue
                except psycopg2.Error as exc:
                    failures += 1
                    self.log_error(
                        "term", "ows_iot leader of %s cannot reach the database: %s",
                        self.dbname, str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                    )  # fmt: skip
                    stop.wait(min(30.0, 2.0**failures))
                    if not lock.check():
                        return
                    continue
                finally:
                    self.term = None
                if not again:
                    return
        finally:
            _logger.info(
                "ows_iot leader stepped down: db=%s pid=%s after %.0fs",
                self.dbname,
                os.getpid(),
                time.time() - since,
            )


class LeaderTerm:
    """One broker connection's lifetime of a leader; ``run()`` tells whether to start
    another (True: the settings changed) or to stop (False)."""

    def __init__(self, runtime, lock, stop, since):
        self.runtime = runtime
        self.dbname = runtime.dbname
        self.key = runtime.key
        self.lock = lock
        self.stop = stop
        self.since = since
        self.registry = None
        self.client = None
        self.runner = None
        self.settings = None
        self.settings_error = None
        self.broker = None
        self.configs = []
        self.ids = {}
        self.term_number = None
        self.lockless_since = None
        self.lockless_disconnects = 0

    # -- the term --------------------------------------------------------------------

    def run(self):
        self.registry = Registry(self.dbname).check_signaling()
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                with self.registry.cursor() as cr:
                    # First, so that a stale leader's last commit is ordered before
                    # the snapshots are read (see services.leader).
                    cr.execute(NEW_TERM_SQL)
                    self.term_number = cr.fetchone()[0]
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    self.broker = broker_settings(env)
                    self.configs, self.ids = self._read_devices(env)
                    states = self._read_states(cr, self.ids)
                    recorded = env["ows.iot.runtime"]._ows_recorded_filters()
                break
            except CONFLICTS:
                if attempt == CONFLICT_RETRIES:
                    raise
                time.sleep(0.05 * attempt)
        ingestor = Ingestor(self.configs)
        for device_id, state in states.items():
            ingestor.restore_device(device_id, state)
        try:
            self.settings = make_settings(self.broker)
        except SettingsError as exc:
            self.settings_error = str(exc)
        window = self.settings.inflight_window if self.settings else 1000
        self.runner = Runner(
            ingestor,
            self._commit,
            self._ack,
            max_pending=max(1, window // 2),
            flush_interval_s=flush_interval(),
            is_transient=transient,
        )
        if self.settings is not None:
            try:
                self.client = MqttClient(
                    self.settings, self.runner.submit, on_connection=self.runner.connection_changed
                )
            except SettingsError as exc:
                self.settings, self.settings_error = None, str(exc)
        if self.client is not None:
            filters = ingestor.topic_filters()
            self.client.set_filters(filters, stale=set(recorded) - filters)
            with thread_stack():
                self.client.start()
            _logger.info(
                "ows_iot leader of %s: %d devices, %d running sessions restored, broker %s as %s",
                self.dbname,
                len(self.configs),
                sum(1 for e in ingestor.engines.values() if e.session_id),
                self.settings.address,
                self.settings.client_id,
            )
        else:
            _logger.warning(
                "ows_iot leader of %s: not connecting to a broker: %s",
                self.dbname,
                self.settings_error,
            )
        clean = False
        try:
            again = self._loop()
            clean = True
            return again
        finally:
            if not clean:
                # Lost lock or overflow: nothing more is acknowledged; the broker
                # redelivers the rest to whoever leads next.
                self.runner.discard()
            if self.client is not None:
                self.client.stop()
            if clean:
                self._write_status(final=self.stop.is_set())

    def _loop(self):
        now = time.monotonic()
        next_lock = now + LOCK_CHECK_S
        next_poll = now + DEVICE_POLL_S
        next_settings = now + SETTINGS_POLL_S
        next_status = now
        next_log = now + STATUS_LOG_S
        reported_connected = None
        while True:
            if self.stop.is_set():
                self.runner.flush()
                return False
            self.runner.step(STEP_S)
            now = time.monotonic()
            # Without its lock (a database outage) the leader retries every step, so
            # that it takes the lock back before any candidate (see LeaderLock.acquire).
            if now >= next_lock or not self.lock.held:
                self._keep_lock()
                next_lock = now + LOCK_CHECK_S
            if self.client is not None and not self.client.alive():
                _logger.warning(
                    "ows_iot MQTT network thread of %s ended; reconnecting", self.dbname
                )
                return True
            if now >= next_poll:
                check_settings = now >= next_settings
                next_poll = now + DEVICE_POLL_S
                if check_settings:
                    next_settings = now + SETTINGS_POLL_S
                if self._poll(check_settings):
                    _logger.info("ows_iot broker settings of %s changed; reconnecting", self.dbname)
                    self.runner.flush()
                    return True
            connected = self.client is not None and self.client.connected
            if now >= next_status or connected != reported_connected:
                next_status = now + STATUS_WRITE_S
                reported_connected = connected
                self._write_status()
            if now >= next_log:
                next_log = now + STATUS_LOG_S
                self._log_status()

    def _keep_lock(self):
        """Check the lock; after losing it to an outage, take it back or step down."""
        if self.lock.held:
            if self.lock.check():
                return
            self.lockless_since = time.monotonic()
            self.lockless_disconnects = self._disconnects()
            _logger.warning(
                "ows_iot leader of %s lost its lock connection (%s): buffering, "
                "taking it back as soon as the database answers",
                self.dbname,
                self.lock.last_error,
            )
        if self._disconnects() != self.lockless_disconnects:
            # Perhaps another leader took the broker session: never fight over it.
            raise LeadershipLost("the broker connection dropped while the lock was lost")
        if self.lock.acquire(reclaim=True):
            _logger.info(
                "ows_iot leader of %s holds its lock again after %.1fs; committing",
                self.dbname,
                time.monotonic() - self.lockless_since,
            )
            self.runner.retry_now()
        elif self.lock.last_error is None:
            raise LeadershipLost("another process holds the lock")

    def _disconnects(self):
        return self.client.stats.disconnects if self.client is not None else 0

    # -- configuration ---------------------------------------------------------------

    def _poll(self, check_settings):
        """Apply device changes; True when the broker settings changed."""
        try:
            self.registry = self.registry.check_signaling()
            with self.registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                configs, ids = self._read_devices(env)
                states = {}
                if configs != self.configs:
                    states = self._read_states(
                        cr, {d: i for d, i in ids.items() if d not in self.ids}
                    )
                broker = broker_settings(env) if check_settings else self.broker
        except psycopg2.Error as exc:
            self.runtime.log_error("poll", "ows_iot cannot read the configuration: %s", exc)
            return False
        if configs != self.configs and self.runner.reconfigure(configs, states):
            added = set(ids) - set(self.ids)
            removed = set(self.ids) - set(ids)
            self.configs, self.ids = configs, ids
            if self.client is not None:
                self.client.set_filters(self.runner.ingestor.topic_filters())
            self._write_status()
            _logger.info(
                "ows_iot devices of %s changed: %d listened to (added %s, removed %s)",
                self.dbname,
                len(configs),
                sorted(added) or "-",
                sorted(removed) or "-",
            )
        return broker != self.broker

    def _read_devices(self, env):
        """(configs, device_id -> record id) of the active devices the engine can run."""
        configs, ids, prefixes = [], {}, {}
        devices = env["mqtt.device"].with_context(active_test=True).search([], order="id")
        for device in devices:
            try:
                device_config = device._ows_engine_config()
            except ConfigError as exc:
                self._warn_once(
                    ("config", device.id, str(exc)), "device %s skipped: %s", device.id, exc
                )
                continue
            prefix = device_config.mqtt_topic.strip("/")
            if device_config.device_id in ids or prefix in prefixes:
                self._warn_once(
                    ("duplicate", device.id),
                    "device %s (%s) skipped: its device id or topic prefix %r is taken "
                    "by another active device",
                    device.id, device_config.device_id, prefix,
                )  # fmt: skip
                continue
            configs.append(device_config)
            ids[device_config.device_id] = device.id
            prefixes[prefix] = device.id
        return configs, ids

    def _warn_once(self, key, message, *args):
        if key not in self.runtime.warned:
            self.runtime.warned.add(key)
            _logger.warning("ows_iot %s: " + message, self.dbname, *args)

    def _read_states(self, cr, ids):
        if not ids:
            return {}
        by_id = {record_id: device_id for device_id, record_id in ids.items()}
        cr.execute(
            "SELECT id, engine_state FROM mqtt_device WHERE id = ANY(%s) AND engine_state IS NOT NULL",
            [list(by_id)],
        )
        states = {}
        for record_id, state in cr.fetchall():
            if isinstance(state, dict):
                states[by_id[record_id]] = state
        return states

    # -- commits ---------------------------------------------------------------------

    def _commit(self, events, states, failed=()):
        if not self.lock.held:
            raise LockPending("the leader lock is not held")
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                with self.registry.cursor() as cr:
                    # Fencing: still our term, seen from this very transaction.
                    cr.execute(FENCE_SQL, [self.term_number])
                    if not cr.rowcount:
                        raise LeadershipLost(
                            f"term {self.term_number} is over: another leader began"
                        )
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    if events:
                        self._check_results(
                            env["ows.iot.event"].ingest_events(events, device_ids=self.ids),
                            events,
                        )
                    if failed:
                        env["ows.iot.event"]._ows_record_failed(failed, self.ids)
                    if states:
                        env.flush_all()  # the ORM's last_seen first, then the newer one
                        self._save_states(cr, states)
                return
            except CONFLICTS:
                self.registry.reset_changes()
                if attempt == CONFLICT_RETRIES:
                    raise
                time.sleep(0.05 * attempt)
            except Exception:
                self.registry.reset_changes()
                raise

    def _check_results(self, results, events):
        failed = [(r, e) for r, e in zip(results, events) if r["status"] == "error"]
        if failed:
            result, event = failed[0]
            self.runtime.log_error(
                "ingest",
                "ows_iot: %d of %d events not applied in %s, e.g. %s %s: %s",
                len(failed), len(events), self.dbname,
                event.get("event_type"), event.get("event_uid"), result.get("message"),
            )  # fmt: skip

    def _save_states(self, cr, states):
        # A checkpoint, not a user change: plain SQL, no write_date, no ORM cache.
        # "Last seen" rides along: the engine's last message of the device, one
        # write per device and commit however many messages it sent.
        rows = [(self.ids[d], Json(s)) for d, s in states.items() if d in self.ids]
        if not rows:
            return
        values = ", ".join(["(%s, %s::jsonb)"] * len(rows))
        cr.execute(
            f"UPDATE mqtt_device AS d SET engine_state = v.state, last_seen = GREATEST("
            f"d.last_seen, date_trunc('second', to_timestamp("
            f"(v.state->>'last_msg_ms')::float8 / 1000) AT TIME ZONE 'UTC')) "
            f"FROM (VALUES {values}) AS v(id, state) WHERE d.id = v.id",
            [value for row in rows for value in row],
        )

    def _ack(self, message):
        return self.client.ack(message) if self.client is not None else True

    # -- observability ---------------------------------------------------------------

    def status(self):
        runner_status = self.runner.status() if self.runner else {}
        client = self.client
        stats = client.stats if client is not None else None
        last_error = (
            self.settings_error
            or (stats.last_error if stats and not stats.connected else None)
            or runner_status.get("last_commit_error")
        )
        return {
            **runner_status,
            "host": self.runtime.host,
            "pid": os.getpid(),
            "since": self.since,
            "lock_backend_pid": self.lock.backend_pid,
            "broker": self.settings.address if self.settings else None,
            "client_id": self.settings.client_id if self.settings else None,
            "connected": bool(stats and stats.connected),
            "connected_since": stats.connected_since if stats else None,
            "reconnects": stats.reconnects if stats else 0,
            "qos0_messages": stats.qos0_messages if stats else 0,
            "session_present": bool(stats and stats.session_present),
            "filters": sorted(client.filters) if client is not None else [],
            "last_error": last_error,
        }

    def _write_status(self, final=False):
        if self.runner is None or self.lock.backend_pid is None:
            return
        values = self.status()
        values["state"] = "stopped" if final else "leading"
        try:
            with self.registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                env["ows.iot.runtime"]._ows_report(values)
        except psycopg2.Error as exc:
            self.runtime.log_error("status", "ows_iot cannot write its status: %s", exc)

    def _log_status(self):
        s = self.status()
        _logger.info(
            "ows_iot status db=%s leader=%s:%s connected=%s messages=%d rate=%.2f/s "
            "last_message_age=%ss events=%d commits=%d buffered=%d pending_acks=%d "
            "dropped=%s redelivered=%d wills_ignored=%d reconnects=%d overflows=%d "
            "catching_up=%s latency_p50=%ss p99=%ss",
            self.dbname, s["host"], s["pid"], s["connected"], s.get("messages", 0),
            s.get("messages_per_s", 0.0), s.get("last_message_age_s"), s.get("events", 0),
            s.get("commits", 0), s.get("buffered_events", 0), s.get("pending_acks", 0),
            s.get("dropped", {}), s.get("redelivered", 0), s.get("offline_cancelled", 0),
            s["reconnects"], s.get("overflows", 0),
            s.get("catching_up"), s.get("commit_latency_p50_s"), s.get("commit_latency_p99_s"),
        )  # fmt: skip


# -- settings ------------------------------------------------------------------------------


def flush_interval():
    """Seconds between commits: ``OWS_IOT_FLUSH_INTERVAL_S`` or ``ows_iot_flush_interval``
    in the Odoo configuration file; shorter means fresher data and more transactions."""
    value = os.environ.get("OWS_IOT_FLUSH_INTERVAL_S") or config.get("ows_iot_flush_interval")
    try:
        seconds = float(value) if value else FLUSH_INTERVAL_S
    except ValueError:
        seconds = FLUSH_INTERVAL_S
    return min(max(seconds, 0.05), 60.0)


def broker_settings(env):
    """The broker settings of the database, as plain values (compared between polls)."""
    values = dict(env["res.config.settings"]._ows_iot_broker_settings())
    params = env["ir.config_parameter"].sudo()
    values["protocol"] = (params.get_param("ows_iot.mqtt_protocol") or "5").strip()
    values["session_expiry_s"] = params.get_param("ows_iot.mqtt_session_expiry") or "86400"
    values["receive_maximum"] = params.get_param("ows_iot.mqtt_receive_maximum") or "1000"
    values["tls_insecure"] = params.get_param("ows_iot.mqtt_tls_insecure") in ("1", "True", "true")
    return values


def make_settings(values):
    """MqttSettings from :func:`broker_settings`; SettingsError with one line otherwise."""
    if not values.get("host"):
        raise SettingsError("no MQTT broker configured (Settings → IoT → broker host)")
    for key, label in (
        ("ca_file", "CA certificate file"),
        ("cert_file", "client certificate file"),
        ("key_file", "client key file"),
    ):
        path = values.get(key)
        if path and not os.path.isfile(path):
            raise SettingsError(f"{label} {path} does not exist on this server")
    try:
        session_expiry_s = int(values["session_expiry_s"])
        receive_maximum = int(values["receive_maximum"])
    except (TypeError, ValueError):
        raise SettingsError("MQTT session expiry and receive maximum must be integers") from None
    return MqttSettings(
        host=values["host"],
        port=values.get("port") or None,
        username=values.get("username") or None,
        password=values.get("password") or None,
        tls=bool(values.get("tls")),
        ca_file=values.get("ca_file") or None,
        certfile=values.get("cert_file") or None,
        keyfile=values.get("key_file") or None,
        tls_insecure=bool(values.get("tls_insecure")),
        client_id=values["client_id"],
        keepalive=values.get("keepalive") or 60,
        qos=values.get("qos", 1),
        protocol=values.get("protocol") or "5",
        session_expiry_s=session_expiry_s,
        receive_maximum=receive_maximum,
    )
