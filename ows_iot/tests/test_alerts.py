# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Sessions held back from billing (timed out and not reviewed, no product) and the
alerts to the device's responsible user."""

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import T0, OwsIotCase, session_event, utc


@tagged("post_install", "-at_install")
class TestBillingHold(OwsIotCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product = cls.machine_time

    def timed_out_session(self):
        event = session_event(
            self.device.device_id, "session_timeout", 1, 1200, working=900, end=900
        )
        [result] = self.ingest([event])
        self.assertEqual(result["status"], "created", result["message"])
        return self.session_of(event).with_user(self.iot_manager)

    def test_a_timed_out_session_is_reviewed_before_it_is_billed(self):
        session = self.timed_out_session()
        self.assertEqual(session.status, "timeout")
        self.assertTrue(session.review_required)
        self.assertEqual(session.billing_hold, "review")
        self.assertEqual(session.amount, 22.5)  # 15 minutes at 1.50
        self.assertEqual(self.device.amount_to_bill, 0.0)
        self.assertEqual(self.device.held_session_count, 1)
        with self.assertRaisesRegex(UserError, "timed out: check its end and clear the review"):
            session.action_mark_billed()
        self.assertEqual(session.billing_state, "to_bill")
        # A user who may not bill may not clear the review either.
        with self.assertRaises(AccessError):
            session.with_user(self.iot_user).action_clear_review()
        session.action_clear_review()
        self.assertFalse(session.review_required)
        self.assertFalse(session.billing_hold)
        self.assertEqual(session.reviewed_by_id, self.iot_manager)
        self.device.invalidate_recordset()
        self.assertEqual(self.device.amount_to_bill, 22.5)
        session.action_mark_billed()
        self.assertEqual(session.billing_state, "billed")

    def test_a_session_without_product_is_held_back_with_its_reason(self):
        self.device.product_id = False
        self.device.price_unit = 1.5
        session = self.make_session(working=600)
        self.assertEqual(session.billing_hold, "no_product")
        self.assertFalse(session.review_required)
        self.assertEqual(self.device.amount_to_bill, 0.0)
        self.assertEqual(self.device.held_session_count, 1)
        self.assertFalse(
            self.Session.search_count(
                [("id", "=", session.id), ("billing_state", "=", "to_bill"),
                 ("status", "!=", "running"), ("billing_hold", "=", False)]
            ),
            "not in the To Bill filter",
        )  # fmt: skip
        self.device.product_id = self.product
        self.assertFalse(session.billing_hold)
        self.device.invalidate_recordset()
        self.assertEqual(self.device.amount_to_bill, 15.0)
        self.assertEqual(self.device.held_session_count, 0)

    def test_business_units_of_a_session(self):
        self.device.billing_unit_min = 15
        self.assertEqual(self.device.billing_unit_s, 900)
        session = self.make_session(working=5400)
        session.sudo().energy_wh = 1234.5
        self.assertEqual(session.billing_unit_min, 15.0)
        self.assertAlmostEqual(session.billable_h, 1.5)
        self.assertAlmostEqual(session.energy_kwh, 1.2345)


@tagged("post_install", "-at_install")
class TestAlerts(OwsIotCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.device.write(
            {"user_id": cls.iot_manager.id, "alert_standby_min": 10, "alert_session_max_h": 1.0}
        )
        cls.warning = cls.env.ref("mail.mail_activity_data_warning")

    def alerts(self):
        return self.env["mail.activity"].search(
            [("res_model", "=", "mqtt.device"), ("res_id", "=", self.device.id),
             ("activity_type_id", "=", self.warning.id)]
        )  # fmt: skip

    def test_standby_too_long_then_session_too_long_each_alerted_once(self):
        device_id = self.device.device_id
        events = [
            session_event(device_id, "session_started", 1, 3, working=3),
            session_event(device_id, "state_changed", 2, 600, working=600, state="standby"),
        ]
        self.assertEqual({r["status"] for r in self.ingest(events)}, {"created"})
        Session = self.Session
        Session._cron_alerts(now=utc(T0 + 600 + 9 * 60))
        self.assertFalse(self.alerts(), "nine minutes of standby: no alert yet")
        Session._cron_alerts(now=utc(T0 + 600 + 11 * 60))
        alerts = self.alerts()
        self.assertEqual(len(alerts), 1)
        self.assertEqual(alerts.user_id, self.iot_manager)
        self.assertIn("left in standby", alerts.summary)
        Session._cron_alerts(now=utc(T0 + 600 + 12 * 60))
        self.assertEqual(len(self.alerts()), 1, "the same standby is alerted once")
        Session._cron_alerts(now=utc(T0 + 3601))
        alerts = self.alerts()
        self.assertEqual(len(alerts), 2)
        self.assertIn("session running long", alerts.sorted("id")[-1].summary)
        Session._cron_alerts(now=utc(T0 + 7200))
        self.assertEqual(len(self.alerts()), 2)

    def test_working_machine_is_not_alerted_for_standby(self):
        device_id = self.device.device_id
        events = [
            session_event(device_id, "session_started", 1, 3, working=3, state="standby"),
            session_event(device_id, "state_changed", 2, 60, working=60, state="working"),
        ]
        self.ingest(events)
        self.Session._cron_alerts(now=utc(T0 + 3000))
        self.assertFalse(self.alerts())

    def test_offline_during_a_session_is_alerted(self):
        event = session_event(
            self.device.device_id, "session_timeout", 1, 1200, working=900, end=900
        )
        self.ingest([event])
        self.Session._cron_alerts(now=utc(T0 + 1260))
        alerts = self.alerts()
        self.assertEqual(len(alerts), 1)
        self.assertIn("went offline during a session", alerts.summary)
        self.Session._cron_alerts(now=utc(T0 + 1320))
        self.assertEqual(len(self.alerts()), 1)

    def test_without_limits_nothing_is_alerted(self):
        self.device.write({"alert_standby_min": 0, "alert_session_max_h": 0.0})
        device_id = self.device.device_id
        self.ingest([session_event(device_id, "session_started", 1, 3, state="standby")])
        self.Session._cron_alerts(now=utc(T0 + 10 * 3600))
        self.assertFalse(self.alerts())
