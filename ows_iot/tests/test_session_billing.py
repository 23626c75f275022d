# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import OwsIotCase


@tagged("post_install", "-at_install")
class TestSessionBilling(OwsIotCase):
    def setUp(self):
        super().setUp()
        self.session = self.make_session(working=600).with_user(self.iot_manager)

    def test_bill_once(self):
        self.assertEqual(self.session.billing_state, "to_bill")
        self.session.action_mark_billed()
        self.assertEqual(self.session.billing_state, "billed")
        self.assertTrue(self.session.billed_date)
        with self.assertRaisesRegex(UserError, "is already billed"):
            self.session.action_mark_billed()
        with self.assertRaisesRegex(UserError, "already billed and cannot be made free"):
            self.session.action_mark_free()

    def test_running_sessions_are_not_billed(self):
        running = self.make_session(working=60, end=False).with_user(self.iot_manager)
        for action in (running.action_mark_billed, running.action_mark_free):
            with self.assertRaisesRegex(UserError, "is still running"):
                action()
        self.assertEqual(running.billing_state, "to_bill")
        # mixed selections fail as a whole
        with self.assertRaises(UserError):
            (self.session | running).action_mark_billed()
        self.assertEqual(self.session.billing_state, "to_bill")

    def test_free_and_back(self):
        self.session.action_mark_free()
        self.assertEqual(self.session.billing_state, "free")
        self.session.action_mark_free()  # already free: nothing to do
        with self.assertRaisesRegex(UserError, "free of charge: reset it to bill first"):
            self.session.action_mark_billed()
        self.session.action_reset_to_bill()
        self.assertEqual(self.session.billing_state, "to_bill")
        self.session.action_mark_billed()
        self.assertEqual(self.session.billing_state, "billed")

    def test_only_an_administrator_reopens_a_billed_session(self):
        self.session.action_mark_billed()
        with self.assertRaisesRegex(UserError, "only an administrator can reopen it"):
            self.session.action_reset_to_bill()
        self.assertEqual(self.session.billing_state, "billed")
        self.session.with_user(self.admin).action_reset_to_bill()
        self.assertEqual(self.session.billing_state, "to_bill")
        self.assertFalse(self.session.billed_date)
        self.assertIn(
            "Billing reopened",
            self.session.sudo().message_ids[:1].body or "",
            "the reopening is traced",
        )

    def test_settled_sessions_are_frozen(self):
        other = self.env["res.partner"].create({"name": "Someone else"})
        self.session.action_mark_billed()
        with self.assertRaisesRegex(UserError, "reset it to bill before changing"):
            self.session.partner_id = other
        with self.assertRaisesRegex(UserError, "reset it to bill before changing"):
            self.session.price_unit = 0.0
        with self.assertRaisesRegex(UserError, "reset it to bill before changing"):
            self.session.sudo().working_duration_s = 1.0
        self.session.note = "Invoiced with the March statement"  # a note is always welcome

    def test_figures_come_from_the_meter(self):
        for vals in (
            {"working_duration_s": 1.0},
            {"status": "completed"},
            {"billing_state": "billed"},
            {"start_time": "2024-01-01 00:00:00"},
        ):
            with (
                self.subTest(vals=vals),
                self.assertRaisesRegex(UserError, "changed by the ingestion only"),
            ):
                self.session.write(vals)
        with self.assertRaisesRegex(UserError, "created from meter events only"):
            self.Session.with_user(self.iot_manager).create(
                {"session_id": "manual", "device_id": self.device.id, "start_time": "2024-01-01"}
            )

    def test_a_billed_session_cannot_be_deleted(self):
        self.session.action_mark_billed()
        with self.assertRaisesRegex(UserError, "billed session cannot be deleted"):
            self.session.sudo().unlink()
