# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import json
import threading
import time
from unittest.mock import patch

from odoo import api
from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.bus.models.bus import channel_with_db, dispatch, hashable
from odoo.addons.bus.websocket import WebsocketConnectionHandler

from ..runtime.supervisor import DatabaseRuntime, LeaderTerm
from ..services.ingestor import Ingestor
from ..services.leader import NEW_TERM_SQL
from .common import T0, gen2_frame

ROLES = {
    "administrator": "base.group_user,base.group_system",
    "manager": "base.group_user,ows_iot.group_ows_iot_manager",
    "user": "base.group_user,ows_iot.group_ows_iot_user",
}


@tagged("post_install", "-at_install")
class TestManagerTour(HttpCase):
    def test_manager_creates_device_and_prints_billing_report(self):
        """In the browser: create a device, find it in the kanban, open its
        sessions and print the billing report."""
        manager = new_test_user(
            self.env,
            login="iot_tour_manager",
            groups="base.group_user,ows_iot.group_ows_iot_manager",
            tz="Europe/Berlin",
        )
        self.start_tour("/odoo", "ows_iot_manager_tour", login=manager.login, timeout=180)
        device = self.env["mqtt.device"].search([("device_id", "=", "shellyplus1pm-tour01")])
        self.assertEqual(device.name, "Tour Laser Cutter")
        self.assertEqual(device.price_unit, 2.5)
        self.assertEqual(device.session_ids.amount, 75.0)


@tagged("post_install", "-at_install")
class TestMenuTour(HttpCase):
    def _menu_actions(self, user):
        """(menu path, action) of every menu of the app the user sees."""
        root = self.env.ref("ows_iot.ows_iot_menu_root")
        Menu = self.env["ir.ui.menu"].with_user(user)
        # A menu is shown when it and all its parents are visible to the user.
        visible = Menu._visible_menu_ids()
        menus = Menu.search([("id", "child_of", root.id), ("action", "!=", False)])
        return [
            (menu.complete_name, menu.action)
            for menu in menus
            if all(int(part) in visible for part in menu.parent_path.split("/") if part)
        ]

    def _open_every_menu(self, role):
        user = new_test_user(
            self.env, login=f"iot_menu_{role}", groups=ROLES[role], tz="Europe/Berlin"
        )
        opened = []
        for path, action in self._menu_actions(user):
            with self.subTest(role=role, menu=path):
                self.start_tour(f"/odoo/action-{action.id}", "ows_iot_menu_tour", login=user.login)
                opened.append(path)
        return opened

    def test_administrator_opens_every_menu(self):
        opened = self._open_every_menu("administrator")
        self.assertIn("IoT/Configuration/Ingestion Status", opened)
        self.assertIn("IoT/Configuration/Settings", opened)

    def test_manager_opens_every_menu(self):
        opened = self._open_every_menu("manager")
        self.assertIn("IoT/Configuration/Ingestion Status", opened)
        self.assertNotIn("IoT/Configuration/Settings", opened)

    def test_user_opens_every_menu(self):
        opened = self._open_every_menu("user")
        self.assertIn("IoT/Sessions", opened)
        self.assertFalse([path for path in opened if path.startswith("IoT/Configuration")])


def play(device, profile, until=None):
    """Run [(epoch, watts), ...] through the engine and the ingestion, as the leader
    would; ``until`` advances the engine's clock to that epoch afterwards."""
    ingestor = Ingestor([device._ows_engine_config()])
    events = []
    for epoch, watts in profile:
        topic, payload, received = gen2_frame(device.device_id, epoch - T0, watts)
        events += ingestor.process(topic, payload, received)
    if until is not None:
        events += ingestor.advance(until)
    results = device.env["ows.iot.event"].ingest_events([e.to_dict() for e in events])
    assert {r["status"] for r in results} <= {"created"}, results
    return ingestor


def make_device(env, name, device_id, **values):
    return env["mqtt.device"].create(
        {"name": name, "device_id": device_id, "mqtt_topic": device_id, **values}
    )


@tagged("post_install", "-at_install")
class TestBoardTour(HttpCase):
    def test_the_app_opens_on_the_board(self):
        now = time.time()
        customer = self.env["res.partner"].create({"name": "Tour Board Customer"})
        product = self.env["product.product"].create(
            {"name": "Tour Machine Time", "type": "service", "list_price": 12.0}
        )
        saw = make_device(
            self.env, "Tour Board Saw", "shellypmminig3-tourboard001",
            location="Tour Hall A", partner_id=customer.id, product_id=product.id,
            message_timeout_s=3600,
        )  # fmt: skip
        make_device(
            self.env, "Tour Board Laser", "shellypmminig3-tourboard002",
            location="Tour Hall B", out_of_order=True, out_of_order_reason="Lens broken",
        )  # fmt: skip
        make_device(self.env, "Tour Board Drill", "shellypmminig3-tourboard003",
                    location="Tour Hall A")  # fmt: skip
        play(saw, [(now - 600, 150.0), (now - 596, 150.0), (now - 590, 50.0)])
        self.assertEqual(saw.running_session_id.partner_id, customer)
        user = new_test_user(
            self.env, login="iot_board_user", groups=ROLES["user"], tz="Europe/Berlin"
        )
        self.start_tour("/odoo", "ows_iot_board_tour", login=user.login, timeout=120)


@tagged("post_install", "-at_install")
class TestTimelineTour(HttpCase):
    def test_sessions_per_machine_for_the_day_and_the_week(self):
        now = time.time()
        saw = make_device(
            self.env, "Tour Timeline Saw", "shellypmminig3-tourline001", message_timeout_s=3600
        )
        idle = make_device(
            self.env, "Tour Timeline Idle", "shellypmminig3-tourline002", message_timeout_s=3600
        )
        # Today: a session from 40 to 25 minutes ago, another running for 15 minutes.
        play(
            saw,
            [(now - 2400, 500.0), (now - 2396, 500.0), (now - 1500, 0.0),
             (now - 1480, 0.0), (now - 900, 500.0), (now - 896, 500.0)],
        )  # fmt: skip
        # Yesterday, ten minutes.
        yesterday = now - 86400
        play(
            idle,
            [(yesterday - 600, 500.0), (yesterday - 596, 500.0), (yesterday, 0.0)],
            until=yesterday + 60,
        )
        self.assertEqual(sorted(saw.session_ids.mapped("status")), ["completed", "running"])
        self.assertEqual(idle.session_ids.status, "completed")
        user = new_test_user(
            self.env, login="iot_timeline_user", groups=ROLES["user"], tz="Europe/Berlin"
        )
        self.start_tour(
            "/odoo/action-ows_iot.mqtt_session_action_timeline",
            "ows_iot_timeline_tour",
            login=user.login,
            timeout=120,
        )


@tagged("post_install", "-at_install")
class TestLiveTour(HttpCase):
    """A reading fed through the leader's commit while the device kanban is open
    shows on the card, through the bus, without a reload."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Odoo turns the websocket off in test runs; the live views need it.
        cls.startClassPatcher(
            patch.object(WebsocketConnectionHandler, "websocket_allowed", return_value=True)
        )

    def test_a_new_reading_appears_on_the_open_kanban(self):
        self.env.cr.execute("UPDATE mqtt_device SET engine_state = NULL")
        device = make_device(
            self.env, "Tour Live Saw", "shellypmminig3-tourlive001", message_timeout_s=3600
        )
        user = new_test_user(
            self.env, login="iot_live_user", groups=ROLES["user"], tz="Europe/Berlin"
        )
        group = self.env.ref("ows_iot.group_ows_iot_user")
        channel = hashable(channel_with_db(self.env.cr.dbname, group))
        runtime = DatabaseRuntime(self.env.cr.dbname)
        self.addCleanup(runtime.lock.release)
        self.assertTrue(runtime.lock.acquire())
        term = LeaderTerm(runtime, runtime.lock, threading.Event(), time.time())
        term.registry = self.registry
        term.ids = {device.device_id: device.id}
        self.env.cr.execute(NEW_TERM_SQL)
        term.term_number = self.env.cr.fetchone()[0]
        ingestor = Ingestor([device._ows_engine_config()])
        loaded = threading.Event()
        Device = type(self.env["mqtt.device"])
        web_search_read = Device.web_search_read

        @api.model
        def watched_web_search_read(records, *args, **kwargs):
            result = web_search_read(records, *args, **kwargs)
            loaded.set()
            return result

        errors = []

        def leader():
            try:
                # The kanban is loaded and the page listens on the bus.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not (
                    loaded.is_set() and dispatch._channels_to_ws.get(channel)
                ):
                    time.sleep(0.2)
                time.sleep(1.0)
                now = time.time()
                events = []
                for epoch, watts in [(now - 5, 1234.0), (now, 1234.0)]:
                    topic, payload, received = gen2_frame(device.device_id, epoch - T0, watts)
                    events += ingestor.process(topic, payload, received)
                state = json.loads(json.dumps(ingestor.snapshot_device(device.device_id)))
                term._commit([e.to_dict() for e in events], {device.device_id: state})
                # The test cursor runs no post-commit hook: wake the websockets
                # as the bus's NOTIFY would.
                for websocket in list(dispatch._channels_to_ws.get(channel, ())):
                    websocket.trigger_notification_dispatching()
            except Exception as exc:  # reported by the test, not lost in the thread
                errors.append(exc)

        thread = threading.Thread(target=leader, name="ows_iot test leader")
        with patch.object(Device, "web_search_read", watched_web_search_read):
            thread.start()
            self.start_tour(
                "/odoo/action-ows_iot.mqtt_device_action",
                "ows_iot_live_tour",
                login=user.login,
                timeout=120,
            )
            thread.join(30)
        self.assertFalse(errors)
        device.invalidate_recordset()
        self.assertEqual(device.current_power_w, 1234.0)
