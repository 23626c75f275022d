# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The Odoo side of the ingestion runtime: the leader's commit, the minute cron,
the status panel, the broker settings and when the runtime starts at all."""

import json
import os
import threading
import time
from unittest.mock import PropertyMock, patch

from odoo import http
from odoo.modules.neutralize import get_neutralization_queries
from odoo.sql_db import Cursor, connection_info_for, db_connect
from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from ..runtime import server as runtime_server
from ..runtime.supervisor import (
    DatabaseRuntime,
    LeaderTerm,
    LockPending,
    broker_settings,
    configured_hosts,
    make_settings,
    thread_stack,
    warn_shared_client_ids,
)
from ..services.ingestor import Ingestor
from ..services.leader import NEW_TERM_SQL, LeaderLock, lock_key
from ..services.mqtt_client import SettingsError
from ..services.runner import LeadershipLost
from ..services.watch import served_databases
from .common import T0, gen2_frame, utc

RUNTIME_LOGGER = "odoo.addons.ows_iot.models.ows_iot_runtime"
LASER = "shellypmminig3-rt0000000001"
ROUTER = "shellypmminig3-rt0000000002"


def run_engine(device, profile, until=None):
    """(events as dicts, the device's engine snapshot) after a power profile."""
    ingestor = Ingestor([device._ows_engine_config()])
    events = []
    for offset, watts in profile:
        topic, payload, received = gen2_frame(device.device_id, offset, watts)
        events += ingestor.process(topic, payload, received)
    if until is not None:
        events += ingestor.advance(T0 + until)
    state = json.loads(json.dumps(ingestor.snapshot_device(device.device_id)))
    return [event.to_dict() for event in events], state


class RuntimeCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Device = cls.env["mqtt.device"]
        cls.Event = cls.env["ows.iot.event"]
        cls.Session = cls.env["mqtt.session"]
        cls.Runtime = cls.env["ows.iot.runtime"]
        # Demo machines keep engine snapshots (one has a running session): out of scope.
        cls.env.cr.execute("UPDATE mqtt_device SET engine_state = NULL")

    def make_device(self, device_id, **values):
        return self.Device.create(
            {
                "name": device_id,
                "device_id": device_id,
                "mqtt_topic": device_id,
                "message_timeout_s": 60,
                **values,
            }
        )

    def running(self, device, profile=((0, 150.0), (4, 150.0), (10, 50.0))):
        """A device with a running session and its checkpointed engine state."""
        events, state = run_engine(device, profile)
        results = self.Event.ingest_events(events)
        self.assertEqual({r["status"] for r in results}, {"created"})
        self.env.cr.execute(
            "UPDATE mqtt_device SET engine_state = %s::jsonb WHERE id = %s",
            [json.dumps(state), device.id],
        )
        device.invalidate_recordset(["engine_state"])
        session = self.Session.search([("device_id", "=", device.id)])
        self.assertEqual(session.status, "running")
        return session, state

    def age(self, session, seconds=3600):
        """Make a session look written long ago (the flush leaves fresh ones alone)."""
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE mqtt_session SET write_date = write_date - make_interval(secs => %s) "
            "WHERE id = %s",
            [seconds, session.id],
        )
        session.invalidate_recordset()

    def engine_state(self, device):
        self.env.cr.execute("SELECT engine_state FROM mqtt_device WHERE id = %s", [device.id])
        return self.env.cr.fetchone()[0]


@tagged("post_install", "-at_install")
class TestCronWithoutLeader(RuntimeCase):
    def test_flush_holds_the_level_to_now_and_recomputes_hours(self):
        device = self.make_device(LASER, message_timeout_s=10_000)
        session, _state = self.running(device)
        self.age(session)
        flushed = self.Runtime._ows_flush_running(T0 + 70)
        self.assertEqual(flushed, 1)
        session.invalidate_recordset()
        self.assertEqual(session.working_duration_s, 10)
        self.assertEqual(session.standby_duration_s, 60)
        self.assertEqual(session.total_duration_s, 70)
        self.assertAlmostEqual(session.total_duration_h, 70 / 3600)
        self.assertEqual(session.current_state, "standby")
        self.assertAlmostEqual(session.energy_wh, (150 * 10 + 50 * 60) / 3600, places=6)
        self.assertEqual(session.status, "running")

    def test_flush_leaves_recently_written_sessions_alone(self):
        device = self.make_device(LASER, message_timeout_s=10_000)
        self.running(device)
        self.assertEqual(self.Runtime._ows_flush_running(T0 + 70), 0)

    def test_silent_device_times_out_without_a_leader(self):
        device = self.make_device(LASER)
        session, _state = self.running(device)
        # T0 lies in the past: the device has been silent far longer than 60 s.
        with self.assertLogs(RUNTIME_LOGGER, "WARNING") as logs:
            self.Runtime._cron_flush()
        self.assertIn("no Odoo process consumes MQTT", logs.output[0])
        session.invalidate_recordset()
        self.assertEqual(session.status, "timeout")
        self.assertEqual(session.working_duration_s, 10)
        self.assertEqual(session.standby_duration_s, 0)
        types = self.Event.search([("device_id", "=", device.id)]).mapped("event_type")
        self.assertIn("session_timeout", types)
        self.assertIn("device_offline", types)
        state = self.engine_state(device)
        self.assertEqual(state["state"], "idle")
        self.assertFalse(state["online"])
        # Nothing left to do: a second run writes nothing.
        count = self.Event.search_count([])
        with self.assertLogs(RUNTIME_LOGGER, "WARNING"):
            self.Runtime._cron_flush()
        self.assertEqual(self.Event.search_count([]), count)

    def test_not_yet_silent_device_is_left_to_the_leader(self):
        device = self.make_device(LASER)
        session, state = self.running(device)
        self.Runtime._ows_advance_silent(T0 + 30, leaderless=True)
        session.invalidate_recordset()
        self.assertEqual(session.status, "running")
        self.assertEqual(self.engine_state(device), state)


@tagged("post_install", "-at_install")
class TestCronWithLeader(RuntimeCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Another session holds the leader lock, as a live leader would.
        _name, info = connection_info_for(cls.env.cr.dbname)
        cls.lock = LeaderLock(dict(info), lock_key(cls.env.cr.dbname))
        assert cls.lock.acquire()
        cls.addClassCleanup(cls.lock.release)

    def test_a_recent_leader_report_silences_the_leaderless_warning(self):
        self.make_device(LASER)
        self.Runtime._ows_report({"state": "leading", "pid": 1})
        with self.assertNoLogs(RUNTIME_LOGGER, "WARNING"):
            self.Runtime._ows_warn_leaderless()

    def test_only_archived_devices_are_advanced(self):
        listened = self.make_device(LASER)
        archived = self.make_device(ROUTER)
        listened_session, _s = self.running(listened)
        archived_session, _s = self.running(archived)
        archived.active = False
        self.Runtime._cron_flush()
        (listened_session | archived_session).invalidate_recordset()
        self.assertEqual(listened_session.status, "running")
        self.assertEqual(archived_session.status, "timeout")

    def test_status_panel_shows_the_live_leader(self):
        status = self.Runtime._ows_get()
        status.invalidate_recordset()
        self.Runtime._ows_report(
            {
                "state": "leading",
                "host": "node1",
                "pid": 4242,
                "since": time.time() - 60,
                "connected": True,
                "broker": "mqtt://broker:1883",
                "client_id": "ows-iot-test",
                "messages": 10,
                "qos0_messages": 3,
                "dropped": {"unknown_topic": 2},
                "filters": ["a/#", "b/#"],
                "last_message_at": time.time() - 1,
                "commit_latency_p50_s": 0.5,
            }
        )
        status.invalidate_recordset()
        self.assertEqual(status.state, "leading")
        self.assertIn(f"backend {self.lock.backend_pid}", status.lock_holder)
        self.assertEqual(status.subscriptions, 2)
        self.assertEqual(status.commit_latency_p50_ms, 500)
        self.assertEqual(status.dropped_text, "unknown_topic: 2")
        self.assertEqual(status.qos0_messages, 3)
        self.assertEqual(self.Runtime._ows_recorded_filters(), {"a/#", "b/#"})
        health = self.Runtime._ows_health()
        self.assertTrue(health["leader"]["active"])
        self.assertTrue(health["broker"]["connected"])
        self.assertEqual(health["counters"]["dropped"], {"unknown_topic": 2})
        self.assertEqual(health["counters"]["qos0_messages"], 3)
        # A report that stops coming: the leader hangs.
        self.env.cr.execute(
            "UPDATE ows_iot_runtime SET reported_at = reported_at - interval '5 minutes'"
        )
        status.invalidate_recordset()
        self.assertEqual(status.state, "stale")
        self.assertFalse(self.Runtime._ows_health()["broker"]["connected"])


@tagged("post_install", "-at_install")
class TestDeployment(RuntimeCase):
    def test_the_lock_holder_is_read_on_the_primary_even_from_a_readonly_request(self):
        lock = LeaderLock(connection_info_for(self.env.cr.dbname)[1], lock_key(self.env.cr.dbname))
        self.assertTrue(lock.acquire())
        self.addCleanup(lock.release)
        opened = []

        def primary_connection(dbname, *args, **kwargs):
            opened.append((dbname, kwargs.get("readonly", False)))
            return db_connect(dbname, *args, **kwargs)

        status = self.Runtime._ows_get()
        # A request served from a replica (--db_replica_host) has a readonly cursor.
        with (
            patch.object(Cursor, "readonly", PropertyMock(return_value=True)),
            patch("odoo.addons.ows_iot.models.ows_iot_runtime.db_connect", primary_connection),
        ):
            status.invalidate_recordset()
            holder = status.lock_holder
        self.assertEqual(opened, [(self.env.cr.dbname, False)])
        self.assertIn(f"backend {lock.backend_pid}", holder)
        # On the primary already: no other connection.
        status.invalidate_recordset()
        self.assertIn(f"backend {lock.backend_pid}", status.lock_holder)

    def test_databases_sharing_a_client_id_are_warned_about_once(self):
        warned = set()
        client_ids = {"prod": "ows-iot-site", "copy": "ows-iot-site", "other": "x", "off": None}
        with self.assertLogs("odoo.addons.ows_iot.runtime.supervisor", "WARNING") as logs:
            warn_shared_client_ids(client_ids, warned)
        self.assertEqual(len(logs.output), 1)
        self.assertIn(
            "databases copy, prod use the same MQTT client id ows-iot-site", logs.output[0]
        )
        with self.assertNoLogs("odoo.addons.ows_iot.runtime.supervisor", "WARNING"):
            warn_shared_client_ids(client_ids, warned)
            warn_shared_client_ids({"prod": "ows-iot-site", "off": None}, warned)

    def test_neutralizing_a_copy_keeps_the_leader_off_the_broker(self):
        self.env["ir.config_parameter"].sudo().set_param("ows_iot.mqtt_host", "broker.example")
        self.env["ir.config_parameter"].sudo().set_param("ows_iot.mqtt_client_id", "ows-prod")
        self.assertEqual(make_settings(broker_settings(self.env)).client_id, "ows-prod")
        queries = list(get_neutralization_queries(["ows_iot"]))
        self.assertEqual(len(queries), 1)
        self.env.flush_all()
        for query in queries:
            self.env.cr.execute(query)
        self.env.registry.clear_cache()
        self.env.invalidate_all()
        with self.assertRaisesRegex(SettingsError, "no MQTT broker configured"):
            make_settings(broker_settings(self.env))
        self.assertNotEqual(broker_settings(self.env)["client_id"], "ows-prod")


@tagged("post_install", "-at_install")
class TestLeaderCommit(RuntimeCase):
    def setUp(self):
        super().setUp()
        dbname = self.env.cr.dbname
        self.runtime = DatabaseRuntime(dbname)
        self.addCleanup(self.runtime.lock.release)
        self.term = LeaderTerm(self.runtime, self.runtime.lock, threading.Event(), time.time())
        self.term.registry = self.registry
        # The leader's cursors come from the registry: in test mode they share the
        # test transaction, so nothing is committed for real.
        self.registry.enter_test_mode(self.env.cr)
        self.addCleanup(self.registry.leave_test_mode)

    def begin_term(self):
        self.env.cr.execute(NEW_TERM_SQL)
        return self.env.cr.fetchone()[0]

    def test_commit_writes_events_and_snapshots_in_its_term(self):
        device = self.make_device(LASER)
        events, state = run_engine(device, [(0, 150.0), (4, 150.0)])
        self.assertTrue(self.runtime.lock.acquire())
        self.term.ids = {LASER: device.id}
        self.term.term_number = self.begin_term()
        self.term._commit(events, {LASER: state})
        self.assertEqual(
            sorted(self.Event.search([("device_id", "=", device.id)]).mapped("event_uid")),
            sorted(e["event_uid"] for e in events),
        )
        self.assertEqual(self.engine_state(device), state)
        # Redelivered messages re-emit the same uids: nothing is written twice.
        self.term._commit(events, {LASER: state})
        self.assertEqual(self.Event.search_count([("device_id", "=", device.id)]), len(events))

    def test_last_seen_is_the_last_message_written_once_per_commit(self):
        """A steady load sends readings that change nothing in the session: no
        event, yet "Last seen" must follow them, written with the commit."""
        device = self.make_device(LASER)
        steady = [(offset, 150.0) for offset in range(0, 600, 5)]
        events, state = run_engine(device, steady)
        self.assertLess(len(events), 5)  # a start and a heartbeat or so, not 120
        self.assertTrue(self.runtime.lock.acquire())
        self.term.ids = {LASER: device.id}
        self.term.term_number = self.begin_term()
        queries_before = self.env.cr.sql_log_count
        self.term._commit(events, {LASER: state})
        queries = self.env.cr.sql_log_count - queries_before
        device.invalidate_recordset(["last_seen"])
        self.assertEqual(device.last_seen, utc(T0 + 595))
        # Ten times the messages cost the same commit: the snapshot, not the messages.
        _events, longer_state = run_engine(device, [(o, 150.0) for o in range(0, 6000, 5)])
        queries_before = self.env.cr.sql_log_count
        self.term._commit([], {LASER: longer_state})
        self.assertLessEqual(self.env.cr.sql_log_count - queries_before, queries)
        device.invalidate_recordset(["last_seen"])
        self.assertEqual(device.last_seen, utc(T0 + 5995))
        # An older snapshot (a redelivery) never moves it back.
        self.term._commit([], {LASER: state})
        device.invalidate_recordset()
        self.assertEqual(device.last_seen, utc(T0 + 5995))
        self.assertTrue(device.online)

    def test_a_commit_after_another_term_began_writes_nothing(self):
        device = self.make_device(LASER)
        events, state = run_engine(device, [(0, 150.0), (4, 150.0)])
        self.term.ids = {LASER: device.id}
        # Without the lock (lost in a database outage) nothing is tried: a retry later.
        with self.assertRaises(LockPending):
            self.term._commit(events, {LASER: state})
        self.assertTrue(self.runtime.lock.acquire())
        self.term.term_number = self.begin_term()
        # A successor began its term (it restores the snapshots next): this leader,
        # lock or not, is fenced off inside its own transaction.
        self.begin_term()
        with self.assertRaises(LeadershipLost):
            self.term._commit(events, {LASER: state})
        self.assertFalse(self.Event.search_count([("device_id", "=", device.id)]))
        self.assertFalse(self.engine_state(device))

    def test_failed_events_are_recorded_not_applied(self):
        device = self.make_device(LASER)
        events, state = run_engine(device, [(0, 150.0), (4, 150.0)])
        self.assertTrue(self.runtime.lock.acquire())
        self.term.ids = {LASER: device.id}
        self.term.term_number = self.begin_term()
        bad = dict(events[-1], payload={**events[-1]["payload"], "working_s": 10**30})
        self.term._commit(events[:-1], {LASER: state}, [(bad, "DataError: numeric overflow")])
        row = self.Event.search([("event_uid", "=", bad["event_uid"])])
        self.assertFalse(row.processed)
        self.assertIn("numeric overflow", row.processing_error)
        self.assertFalse(row.session_id)
        self.assertEqual(self.engine_state(device), state)

    def test_devices_are_read_as_the_engine_takes_them(self):
        # Only this test's devices: the demo data may hold others.
        self.env["mqtt.device"].search([]).write({"active": False})
        laser = self.make_device(LASER)
        router = self.make_device(ROUTER)
        # Same prefix (refused by the device constraint, but an older database may
        # hold it): skipped.
        self.env.cr.execute(
            "UPDATE mqtt_device SET mqtt_topic = %s WHERE id = %s", [LASER + "/", router.id]
        )
        router.invalidate_recordset(["mqtt_topic"])
        self.make_device("archived-1", active=False)
        with self.assertLogs("odoo.addons.ows_iot.runtime.supervisor", "WARNING") as logs:
            configs, ids = self.term._read_devices(self.env)
        self.assertIn("is taken by another active device", logs.output[0])
        self.assertEqual([c.device_id for c in configs], [LASER])
        self.assertEqual(ids, {LASER: laser.id})


@tagged("post_install", "-at_install")
class TestSettings(TransactionCase):
    def set_params(self, **values):
        params = self.env["ir.config_parameter"].sudo()
        for key, value in values.items():
            params.set_param(f"ows_iot.{key}", value)

    def test_no_broker_configured(self):
        self.set_params(mqtt_host="")
        with self.assertRaisesRegex(SettingsError, "no MQTT broker configured"):
            make_settings(broker_settings(self.env))

    def test_broker_settings_become_client_settings(self):
        self.set_params(
            mqtt_host="broker.example",
            mqtt_port="8883",
            mqtt_tls="True",
            mqtt_username="odoo",
            mqtt_password="secret",
            mqtt_client_id="ows-iot-site1",
            mqtt_qos="1",
            mqtt_protocol="3.1.1",
            mqtt_receive_maximum="200",
        )
        settings = make_settings(broker_settings(self.env))
        self.assertEqual(settings.address, "mqtts://broker.example:8883")
        self.assertEqual((settings.username, settings.password), ("odoo", "secret"))
        self.assertEqual(settings.client_id, "ows-iot-site1")
        self.assertEqual(settings.protocol, "3.1.1")
        self.assertEqual(settings.inflight_window, 20)
        self.assertEqual(settings.receive_maximum, 200)

    def test_missing_certificate_files_are_named(self):
        self.set_params(mqtt_host="broker", mqtt_ca_file="/nonexistent/ca.pem")
        with self.assertRaisesRegex(SettingsError, "/nonexistent/ca.pem does not exist"):
            make_settings(broker_settings(self.env))

    def test_the_runtime_never_starts_in_test_runs_unless_forced(self):
        with patch.dict(os.environ, {runtime_server.ENV_SWITCH: ""}):
            self.assertFalse(runtime_server.runtime_wanted())
        with patch.dict(os.environ, {runtime_server.ENV_SWITCH: "force"}):
            self.assertTrue(runtime_server.runtime_wanted())
        with patch.dict(os.environ, {runtime_server.ENV_SWITCH: "0"}):
            self.assertFalse(runtime_server.runtime_wanted())


@tagged("post_install", "-at_install")
class TestServedDatabases(TransactionCase):
    """The watcher serves exactly the databases Odoo's own filter lets through."""

    NAMES = ["acme", "acme_test", "beta", "shop.example", "www_shop"]

    def test_the_served_set_is_odoos_for_every_host(self):
        cases = [
            ("", "beta,acme", ["x"]),
            ("^acme", "", ["x"]),
            ("^acme", "beta", ["x"]),
            ("^%d$", "", ["acme.example.com", "www.beta.example.com:8069", "localhost"]),
            ("^%h$", "", ["shop.example", "www.shop.example"]),
            ("^%d_test$", "acme", ["acme.example.com"]),
        ]
        for dbfilter, db_name, hosts in cases:
            with (
                self.subTest(dbfilter=dbfilter, db_name=db_name),
                patch.dict(config.options, {"dbfilter": dbfilter, "db_name": db_name}),
            ):
                for host in hosts:
                    self.assertEqual(
                        served_databases(
                            self.NAMES, dbfilter=dbfilter, db_name=db_name, hosts=[host]
                        ),
                        sorted(http.db_filter(self.NAMES, host=host)),
                        host,
                    )

    def test_configured_hosts(self):
        with patch.dict(os.environ, {"OWS_IOT_HOSTS": " a.example.com, b.example.com ,"}):
            self.assertEqual(configured_hosts(), ["a.example.com", "b.example.com"])
        with patch.dict(os.environ, {"OWS_IOT_HOSTS": ""}):
            self.assertIsNone(configured_hosts())

    def test_small_stacks_only_in_prefork_workers(self):
        sizes = []
        with patch.dict(config.options, {"workers": 0}), thread_stack():
            sizes.append(threading.stack_size())
        with patch.dict(config.options, {"workers": 2}), thread_stack():
            sizes.append(threading.stack_size())
        self.assertEqual(sizes, [0, 1024 * 1024])
        self.assertEqual(threading.stack_size(), 0)  # reset for everything else
