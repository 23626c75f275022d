# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.exceptions import AccessError
from odoo.tests import tagged

from .common import OwsIotCase, session_event


@tagged("post_install", "-at_install")
class TestSecurity(OwsIotCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The demo data may hold other devices: the rules are checked on this test's own.
        cls.others = cls.Device.with_context(active_test=False).search(
            [("id", "not in", (cls.device | cls.device_b).ids)]
        )
        events = [
            session_event(cls.device.device_id, "session_stopped", 1, 600, working=600, end=600),
            session_event(cls.device_b.device_id, "session_stopped", 1, 600, working=600, end=600),
        ]
        results = cls.env["ows.iot.event"].ingest_events(events)
        assert {r["status"] for r in results} == {"created"}, results
        cls.session = cls.env["mqtt.session"].search([("device_id", "=", cls.device.id)])
        cls.session_b = cls.env["mqtt.session"].search([("device_id", "=", cls.device_b.id)])

    def visible(self, user, model, **context):
        field = "id" if model == "mqtt.device" else "device_id"
        records = self.env[model].with_user(user).with_context(**context)
        return records.search([(field, "not in", self.others.ids)])

    def test_iot_user_reads_own_company_only(self):
        self.assertEqual(self.visible(self.iot_user, "mqtt.device"), self.device)
        self.assertEqual(self.visible(self.iot_user, "mqtt.session"), self.session)
        self.assertEqual(
            self.visible(self.iot_user, "ows.iot.event"),
            self.Event.search([("device_id", "=", self.device.id)]),
        )
        self.assertEqual(self.session.with_user(self.iot_user).working_duration_s, 600.0)
        with self.assertRaises(AccessError):
            self.session_b.with_user(self.iot_user).read(["name"])
        with self.assertRaises(AccessError):
            self.device_b.with_user(self.iot_user).read(["name"])

    def test_iot_user_cannot_change_anything(self):
        device = self.device.with_user(self.iot_user)
        with self.assertRaises(AccessError):
            device.name = "Renamed"
        with self.assertRaises(AccessError):
            device.create({"name": "New", "device_id": "new", "mqtt_topic": "new"})
        with self.assertRaises(AccessError):
            device.unlink()
        with self.assertRaises(AccessError):
            self.session.with_user(self.iot_user).action_mark_billed()
        with self.assertRaises(AccessError):
            self.session.with_user(self.iot_user).action_mark_free()
        with self.assertRaises(AccessError):
            self.session.with_user(self.iot_user).action_reset_to_bill()
        # Their one right on sessions: the customer of those not billed yet.
        self.session.with_user(self.iot_user).partner_id = self.customer
        self.assertEqual(self.session.billing_state, "to_bill")

    def test_manager_configures_and_bills_in_own_company(self):
        Device = self.Device.with_user(self.iot_manager)
        device = Device.create({"name": "CNC", "device_id": "cnc-1", "mqtt_topic": "cnc-1"})
        self.assertEqual(device.company_id, self.company)
        device.working_threshold_w = 250
        device.unlink()
        self.session.with_user(self.iot_manager).action_mark_billed()
        self.assertEqual(self.session.billing_state, "billed")
        with self.assertRaises(AccessError):
            self.session_b.with_user(self.iot_manager).action_mark_billed()
        with self.assertRaises(AccessError):
            self.device_b.with_user(self.iot_manager).write({"name": "Taken over"})
        with self.assertRaises(AccessError):
            Device.create(
                {
                    "name": "Elsewhere",
                    "device_id": "x",
                    "mqtt_topic": "x",
                    "company_id": self.company_b.id,
                }
            )

    def test_events_are_read_only_for_everyone(self):
        event = self.Event.search([("device_id", "=", self.device.id)], limit=1)
        for user in (self.iot_user, self.iot_manager, self.admin):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                event.with_user(user).unlink()

    def test_manager_of_the_other_company(self):
        self.assertEqual(self.visible(self.manager_b, "mqtt.session"), self.session_b)
        self.session_b.with_user(self.manager_b).action_mark_free()
        self.assertEqual(self.session_b.billing_state, "free")

    def test_employees_outside_iot_see_nothing(self):
        for model in ("mqtt.device", "mqtt.session", "ows.iot.event"):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.employee).search([])

    def test_administrators_manage_iot(self):
        self.assertTrue(self.admin.has_group("ows_iot.group_ows_iot_manager"))
        self.assertTrue(self.iot_manager.has_group("ows_iot.group_ows_iot_user"))
        self.assertFalse(self.iot_user.has_group("ows_iot.group_ows_iot_manager"))

    def test_multi_company_admin_follows_the_company_switcher(self):
        both = self.company | self.company_b
        self.assertEqual(
            self.visible(self.admin, "mqtt.session", allowed_company_ids=both.ids),
            self.session | self.session_b,
        )
        self.assertEqual(
            self.visible(self.admin, "mqtt.session", allowed_company_ids=self.company_b.ids),
            self.session_b,
        )

    def test_broker_password_is_for_system_administrators(self):
        self.env["ir.config_parameter"].sudo().set_param("ows_iot.mqtt_password", "s3cret")
        Settings = self.env["res.config.settings"]
        self.assertNotIn("ows_iot_mqtt_password", Settings.with_user(self.iot_manager).fields_get())
        self.assertIn("ows_iot_mqtt_password", Settings.with_user(self.admin).fields_get())
        with self.assertRaises(AccessError):
            self.env["ir.config_parameter"].with_user(self.iot_manager).get_param(
                "ows_iot.mqtt_password"
            )
        self.assertEqual(Settings.with_user(self.admin).create({}).ows_iot_mqtt_password, "s3cret")

    def test_engine_state_is_technical(self):
        self.device.sudo().engine_state = {"seq": 7}
        with self.assertRaises(AccessError):
            self.device.with_user(self.iot_manager).read(["engine_state"])
        self.assertEqual(self.device.with_user(self.admin).engine_state, {"seq": 7})
