# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import time
from unittest.mock import patch

from odoo.tests import HttpCase, new_test_user, tagged

from ..services.badge import parse_command
from ..services.ingestor import Ingestor

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


@tagged("post_install", "-at_install")
class TestCheckinTour(HttpCase):
    def test_user_checks_a_member_in_from_the_device_card(self):
        """In the browser, as an IoT User: Check In on the device's card, choose the
        member; the command the backend publishes runs through the engine as the
        leader would run it, and the device shows the member checked in."""
        device = self.env["mqtt.device"].create(
            {
                "name": "Tour Check-in Router",
                "device_id": "shellyplus1pm-tour02",
                "mqtt_topic": "shellyplus1pm-tour02",
            }
        )
        member = self.env["res.partner"].create({"name": "Tour Member Ada"})
        user = new_test_user(
            self.env, login="iot_tour_user", groups=ROLES["user"], tz="Europe/Berlin"
        )
        published = []
        env = self.env

        def leader(records, topic, payload):
            # The leader's engine applies the command as it comes off the broker.
            published.append((topic, payload))
            ingestor = Ingestor([device._ows_engine_config()])
            events = ingestor.process(topic, payload, time.time())
            env["ows.iot.event"].ingest_events([event.to_dict() for event in events])

        with patch.object(type(self.env["mqtt.device"]), "_ows_publish", leader):
            self.start_tour(
                "/odoo/action-ows_iot.mqtt_device_action",
                "ows_iot_checkin_tour",
                login=user.login,
                timeout=120,
            )
        [(topic, payload)] = published
        self.assertEqual(topic, "shellyplus1pm-tour02/ows_iot/checkin")
        self.assertEqual(parse_command(payload), ("check_in", str(member.id)))
        self.assertEqual(device.checked_in_partner_id, member)
