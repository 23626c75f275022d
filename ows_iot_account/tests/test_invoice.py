# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, tagged

from .common import OwsIotInvoiceCase


@tagged("post_install", "-at_install")
class TestInvoiceCreation(OwsIotInvoiceCase):
    def test_ninety_minutes_on_a_product_sold_per_hour_is_one_and_a_half(self):
        session = self.make_session(working=5400)
        self.assertEqual(session.amount, 135.0)  # 90 units of 60 s at 1.5
        move = session._create_invoices("session")
        self.assertEqual(len(move), 1)
        self.assertEqual(move.state, "draft")
        self.assertEqual(move.move_type, "out_invoice")
        self.assertEqual(move.partner_id, self.member)
        line = move.invoice_line_ids
        self.assertEqual(len(line), 1)
        self.assertEqual(line.product_id, self.machine_time)
        self.assertEqual(line.product_uom_id, self.hour)
        self.assertEqual(line.quantity, 1.5)
        self.assertEqual(line.price_unit, 90.0)  # 1.5 per minute
        self.assertEqual(line.price_subtotal, session.amount)
        self.assertEqual(line.tax_ids, self.tax_sale_a)
        self.assertEqual(line.account_id, self.company_data["default_account_revenue"])
        self.assertIn("Laser Cutter", line.name)
        self.assertEqual(session.billing_state, "billed")
        self.assertTrue(session.billed_date)
        self.assertEqual(session.invoice_line_ids, line)
        self.assertEqual(session.invoice_id, move)
        self.assertEqual(move.ows_iot_session_ids, session)
        self.assertEqual(move.ows_iot_session_count, 1)
        action = move.action_view_ows_iot_sessions()
        self.assertEqual(self.env["mqtt.session"].search(action["domain"]), session)

    def test_quantity_follows_rounding_and_minimum(self):
        device = self.make_device(
            "CNC Router",
            "shellyplus1pm-cnc",
            billing_unit_s=900,
            billing_rounding="up",
            billing_min_units=2,
            price_unit=10.0,
        )
        short = self.make_session(device, working=100)  # 1 unit, raised to the minimum 2
        mid = self.make_session(device, working=1000)  # 2 units rounded up
        long = self.make_session(device, working=2000)  # 3 units rounded up
        moves = (short | mid | long)._create_invoices("session")
        lines = moves.invoice_line_ids.sorted(lambda line: line.ows_iot_session_ids.start_time)
        self.assertEqual(lines.mapped("quantity"), [0.5, 0.5, 0.75])
        self.assertEqual(lines.mapped("price_unit"), [40.0, 40.0, 40.0])
        self.assertEqual(lines.mapped("price_subtotal"), [20.0, 20.0, 30.0])
        self.assertEqual(lines.mapped("price_subtotal"), [short.amount, mid.amount, long.amount])

    def test_rounding_down_and_to_nearest(self):
        down = self.make_device(
            "Printer", "shellyplus1pm-printer", billing_unit_s=900, billing_rounding="down"
        )
        nearest = self.make_device(
            "Lathe", "shellyplus1pm-lathe", billing_unit_s=900, billing_rounding="nearest"
        )
        sessions = self.make_session(down, working=1700) | self.make_session(nearest, working=1400)
        lines = sessions._create_invoices("device").invoice_line_ids
        by_device = {line.ows_iot_session_ids.device_id: line for line in lines}
        self.assertEqual(by_device[down].quantity, 0.25)  # 1700 s down to one quarter hour
        self.assertEqual(by_device[nearest].quantity, 0.5)  # 1400 s to two quarter hours

    def test_device_grouping_lists_the_sessions_in_one_line(self):
        first = self.make_session(working=1800, start=0)  # 10:00-10:30
        second = self.make_session(working=3600, start=7200)  # 12:00-13:00
        lathe = self.make_device("Lathe", "shellyplus1pm-lathe", price_unit=1.0)
        third = self.make_session(lathe, working=900)
        move = (first | second | third)._create_invoices("device")
        self.assertEqual(len(move), 1)
        lines = move.invoice_line_ids
        self.assertEqual(len(lines), 2)
        laser_line = lines.filtered(lambda line: first in line.ows_iot_session_ids)
        self.assertEqual(laser_line.ows_iot_session_ids, first | second)
        self.assertEqual(laser_line.quantity, 1.5)
        self.assertEqual(laser_line.price_subtotal, first.amount + second.amount)
        self.assertIn("2 session(s)", laser_line.name)
        self.assertIn("2024-06-01 10:00-10:30 (0:30 h)", laser_line.name)
        self.assertIn("2024-06-01 12:00-13:00 (1:00 h)", laser_line.name)
        lathe_line = lines - laser_line
        self.assertEqual(lathe_line.ows_iot_session_ids, third)
        self.assertEqual(lathe_line.price_subtotal, 15.0)

    def test_session_grouping_makes_a_line_per_session(self):
        sessions = self.make_session(working=1800) | self.make_session(working=1800)
        move = sessions._create_invoices("session")
        self.assertEqual(len(move.invoice_line_ids), 2)
        for line in move.invoice_line_ids:
            self.assertEqual(len(line.ows_iot_session_ids), 1)
            self.assertEqual(line.quantity, 0.5)

    def test_standby_is_its_own_line_at_its_share(self):
        device = self.make_device(
            "Kiln", "shellyplus1pm-kiln", bill_standby=True, standby_rate=0.5, price_unit=1.5
        )
        session = self.make_session(device, working=3600, standby=1800)
        self.assertEqual(session.billable_units, 75)  # 60 min + 30 min at half
        lines = session._create_invoices("session").invoice_line_ids
        self.assertEqual(len(lines), 2)
        time_line, standby_line = lines.sorted(lambda line: -line.price_unit)
        self.assertEqual((time_line.quantity, time_line.price_unit), (1.0, 90.0))
        self.assertEqual((standby_line.quantity, standby_line.price_unit), (0.5, 45.0))
        self.assertIn("standby", standby_line.name)
        self.assertEqual(sum(lines.mapped("price_subtotal")), session.amount)
        self.assertEqual(session.invoice_line_ids, lines)

    def test_product_in_units_is_invoiced_in_billing_units(self):
        per_unit = self.env["product.product"].create(
            {"name": "Laser minute", "type": "service", "lst_price": 2.0}
        )
        device = self.make_device(
            "Laser minute device", "shellyplus1pm-minute", product_id=per_unit.id
        )
        device.price_unit = 0.5
        line = self.make_session(device, working=600)._create_invoices("session").invoice_line_ids
        self.assertEqual(line.product_uom_id, per_unit.uom_id)
        self.assertEqual((line.quantity, line.price_unit), (10.0, 0.5))

    def test_price_from_the_product_when_the_device_has_none(self):
        device = self.make_device("Free price", "shellyplus1pm-noprice")
        device.price_unit = 0.0
        line = self.make_session(device, working=1800)._create_invoices("session").invoice_line_ids
        self.assertEqual(line.quantity, 0.5)
        self.assertEqual(line.price_unit, 60.0)  # the product's price per hour

    def test_fiscal_position_maps_taxes_and_accounts(self):
        self.member.property_account_position_id = self.fiscal_pos_a
        line = self.make_session()._create_invoices("session").invoice_line_ids
        self.assertEqual(line.move_id.fiscal_position_id, self.fiscal_pos_a)
        self.assertEqual(line.tax_ids, self.tax_sale_b)

    def test_one_invoice_per_customer_company_and_currency(self):
        company_2 = self.setup_other_company(name="Second Workshop")["company"]
        self.env.user.company_ids |= company_2
        product_2 = self.machine_time.with_company(company_2)
        device_2 = self.make_device(
            "Laser in company 2", "shellyplus1pm-c2", company=company_2, price_unit=1.0
        )
        foreign = (
            self.setup_other_currency("EUR")
            if self.company.currency_id.name != "EUR"
            else (self.setup_other_currency("CHF"))
        )
        device_fx = self.make_device("Laser abroad", "shellyplus1pm-fx", price_unit=2.0)
        device_fx.currency_id = foreign
        lathe = self.make_device("Lathe", "shellyplus1pm-lathe", partner_id=self.other_member.id)
        sessions = (
            self.make_session(working=900)
            | self.make_session(working=900)
            | self.make_session(lathe, working=900)
            | self.make_session(device_2, working=900)
            | self.make_session(device_fx, working=900)
        )
        moves = sessions._create_invoices("device")
        self.assertEqual(len(moves), 4)
        keys = {(m.partner_id, m.company_id, m.currency_id): m for m in moves}
        self.assertEqual(
            set(keys),
            {
                (self.member, self.company, self.company.currency_id),
                (self.other_member, self.company, self.company.currency_id),
                (self.member, company_2, company_2.currency_id),
                (self.member, self.company, foreign),
            },
        )
        move_2 = keys[(self.member, company_2, company_2.currency_id)]
        self.assertEqual(move_2.journal_id.company_id, company_2)
        self.assertEqual(move_2.invoice_line_ids.account_id.company_ids, company_2)
        self.assertEqual(move_2.amount_untaxed, 15.0)
        self.assertTrue(product_2)
        move_fx = keys[(self.member, self.company, foreign)]
        self.assertEqual(move_fx.amount_untaxed, 30.0)
        self.assertEqual(move_fx.invoice_line_ids.price_unit, 120.0)

    def test_quantity_is_rounded_to_the_unit_of_measure_precision(self):
        # Ten minutes are 0.1667 h: at Odoo's default precision of two decimals the line
        # says 0.17 h. With four decimals the invoice matches the session to the cent.
        session = self.make_session(working=600)
        line = session._create_invoices("session").invoice_line_ids
        self.assertEqual(line.quantity, 0.17)
        self.env.ref("product.decimal_product_uom").digits = 4
        session = self.make_session(working=600)
        line = session._create_invoices("session").invoice_line_ids
        self.assertEqual(line.quantity, 0.1667)
        self.assertEqual(line.price_subtotal, session.amount)

    def test_invalid_grouping_is_refused(self):
        with self.assertRaisesRegex(UserError, "Unknown invoice grouping"):
            self.make_session()._create_invoices("customer")


@tagged("post_install", "-at_install")
class TestInvoiceRefusals(OwsIotInvoiceCase):
    def assert_nothing_invoiced(self, sessions):
        self.assertEqual(set(sessions.mapped("billing_state")), {"to_bill"})
        self.assertFalse(sessions.invoice_line_ids)

    def test_device_without_product_and_session_without_customer_are_listed(self):
        no_product = self.make_device("No product", "shellyplus1pm-noproduct", product_id=False)
        no_customer = self.make_device("No customer", "shellyplus1pm-nocustomer", partner_id=False)
        fine = self.make_session()
        bad_product = self.make_session(no_product)
        bad_customer = self.make_session(no_customer)
        count = self.env["account.move"].search_count([])
        with self.assertRaises(UserError) as caught:
            (fine | bad_product | bad_customer)._create_invoices("device")
        message = str(caught.exception)
        self.assertIn("Sessions without customer", message)
        self.assertIn(bad_customer.display_name, message)
        self.assertIn("Sessions of devices without product", message)
        self.assertIn(bad_product.display_name, message)
        self.assertNotIn(fine.display_name, message)
        self.assertEqual(self.env["account.move"].search_count([]), count)
        self.assert_nothing_invoiced(fine | bad_product | bad_customer)

    def test_billed_free_and_running_sessions_are_refused(self):
        billed = self.make_session()
        billed.action_mark_billed()
        free = self.make_session()
        free.action_mark_free()
        for session, reason in ((billed, "already billed"), (free, "already billed or free")):
            with self.assertRaisesRegex(UserError, reason):
                session._create_invoices("session")
        invoiced = self.make_session()
        invoiced._create_invoices("session")
        with self.assertRaisesRegex(UserError, "already billed"):
            invoiced._create_invoices("session")
        self.assertEqual(len(invoiced.invoice_line_ids), 1)

    def test_timed_out_sessions_wait_for_their_review(self):
        timed_out = self.make_session(ending="session_timeout")
        self.assertTrue(timed_out.review_required)
        with self.assertRaises(UserError) as caught:
            timed_out._create_invoices("session")
        self.assertIn("Timed-out sessions to review first", str(caught.exception))
        self.assertIn(timed_out.display_name, str(caught.exception))
        self.assert_nothing_invoiced(timed_out)
        timed_out.action_clear_review()
        move = timed_out._create_invoices("session")
        self.assertEqual(timed_out.invoice_id, move)

    def test_nothing_billable_is_never_invoiced_at_zero(self):
        device = self.make_device("Idle", "shellyplus1pm-idle")
        idle = self.make_session(device, working=0, standby=600)  # standby not billed
        with self.assertRaisesRegex(UserError, "has billable time"):
            idle._create_invoices("session")
        self.assert_nothing_invoiced(idle)

    def test_iot_user_cannot_create_invoices(self):
        user = self.env["res.users"].create(
            {
                "name": "IoT user",
                "login": "iot_plain_user",
                "groups_id": [Command.set(self.env.ref("ows_iot.group_ows_iot_user").ids)],
            }
        )
        session = self.make_session()
        with self.assertRaises(AccessError):
            session.with_user(user)._create_invoices("session")
        self.assert_nothing_invoiced(session)


@tagged("post_install", "-at_install")
class TestInvoiceLifecycle(OwsIotInvoiceCase):
    def setUp(self):
        super().setUp()
        self.sessions = self.make_session(working=1800) | self.make_session(working=3600)
        self.move = self.sessions._create_invoices("session")

    def assert_to_bill(self, sessions):
        self.assertEqual(set(sessions.mapped("billing_state")), {"to_bill"})
        self.assertFalse(sessions.invoice_line_ids)
        self.assertFalse(sessions.invoice_id)
        self.assertFalse(any(sessions.mapped("billed_date")))

    def test_cancelling_the_draft_returns_the_sessions_to_bill(self):
        self.move.button_cancel()
        self.assertEqual(self.move.state, "cancel")
        self.assert_to_bill(self.sessions)
        self.assertIn("was cancelled", self.sessions[0].message_ids[0].body)
        # and they can be invoiced again
        again = self.sessions._create_invoices("device")
        self.assertEqual(again.amount_untaxed, sum(self.sessions.mapped("amount")))

    def test_deleting_a_line_returns_its_session_to_bill(self):
        line = self.sessions[0].invoice_line_ids
        self.move.write({"invoice_line_ids": [Command.unlink(line.id)]})
        self.assert_to_bill(self.sessions[0])
        self.assertEqual(self.sessions[1].billing_state, "billed")
        self.assertEqual(self.move.ows_iot_session_ids, self.sessions[1])

    def test_deleting_the_draft_returns_the_sessions_to_bill(self):
        self.move.unlink()
        self.assert_to_bill(self.sessions)

    def test_draft_sessions_cannot_be_reset_or_made_free(self):
        for action in ("action_reset_to_bill", "action_mark_free"):
            with self.assertRaisesRegex(UserError, "is on invoice"):
                getattr(self.sessions[0], action)()
        self.assertEqual(self.sessions[0].billing_state, "billed")

    def test_posted_invoice_freezes_its_sessions(self):
        self.move.action_post()
        session = self.sessions[0].with_user(self.iot_manager)
        with self.assertRaisesRegex(UserError, "posted invoice"):
            session.note = "changed"
        with self.assertRaisesRegex(UserError, "posted invoice|is billed"):
            session.partner_id = self.other_member
        with self.assertRaisesRegex(UserError, "is on invoice"):
            self.sessions[0].action_reset_to_bill()
        self.assertEqual(session.partner_id, self.member)

    def test_full_credit_note_returns_the_sessions_to_bill(self):
        self.move.invoice_date = "2024-06-30"
        self.move.action_post()
        wizard = (
            self.env["account.move.reversal"]
            .with_context(active_model="account.move", active_ids=self.move.ids)
            .create({"journal_id": self.move.journal_id.id, "reason": "wrong member"})
        )
        wizard.refund_moves()
        refund = self.move.reversal_move_ids
        self.assertEqual(self.sessions.mapped("billing_state"), ["billed", "billed"])
        refund.action_post()
        self.assert_to_bill(self.sessions)
        self.assertIn("fully credited", self.sessions[0].message_ids[0].body)

    def test_partial_credit_note_keeps_the_sessions_billed(self):
        self.move.invoice_date = "2024-06-30"
        self.move.action_post()
        refund = self.move._reverse_moves()
        refund.invoice_line_ids[0].quantity = 0.1
        refund.action_post()
        self.assertEqual(self.sessions.mapped("billing_state"), ["billed", "billed"])
        self.assertEqual(self.sessions.invoice_id, self.move)


@tagged("post_install", "-at_install")
class TestInvoiceWizardAndCron(OwsIotInvoiceCase):
    def test_wizard_invoices_the_selection(self):
        sessions = self.make_session() | self.make_session()
        other = self.make_session()
        wizard = Form(
            self.env["mqtt.session.invoice.wizard"]
            .with_user(self.iot_manager)
            .with_context(active_model="mqtt.session", active_ids=sessions.ids)
        )
        self.assertEqual(wizard.scope, "selected")
        self.assertEqual(wizard.session_count, 2)
        wizard.grouping = "session"
        action = wizard.save().action_create_invoices()
        move = self.env["account.move"].browse(action["res_id"])
        self.assertEqual(move.ows_iot_session_ids, sessions)
        self.assertEqual(len(move.invoice_line_ids), 2)
        self.assertEqual(other.billing_state, "to_bill")

    def test_wizard_invoices_everything_up_to_a_date(self):
        june = self.make_session(start=0)  # 2024-06-01
        july = self.make_session(start=31 * 86400)  # 2024-07-02
        free = self.make_session(start=2 * 86400)
        free.action_mark_free()
        wizard = Form(self.env["mqtt.session.invoice.wizard"].with_user(self.iot_manager))
        self.assertEqual(wizard.scope, "date")
        wizard.date_to = "2024-06-30"
        self.assertEqual(wizard.session_count, 1)
        action = wizard.save().action_create_invoices()
        self.assertEqual(
            self.env["account.move"].browse(action["res_id"]).ows_iot_session_ids, june
        )
        self.assertEqual(july.billing_state, "to_bill")

    def test_cron_drafts_the_previous_month(self):
        cron = self.env.ref("ows_iot_account.mqtt_session_cron_create_invoices")
        self.assertFalse(cron.active, "the scheduled action is off by default")
        may = self.make_session(start=-10 * 86400)  # 2024-05-22, still to bill
        june = self.make_session(start=0) | self.make_session(start=86400)
        july = self.make_session(start=31 * 86400)
        no_product = self.make_session(
            self.make_device("No product", "shellyplus1pm-noproduct", product_id=False), start=3600
        )
        with (
            freeze_time("2024-07-15 08:00:00"),
            self.assertLogs("odoo.addons.ows_iot_account.models.mqtt_session", "WARNING"),
        ):
            moves = self.env["mqtt.session"]._cron_create_invoices()
        self.assertEqual(len(moves), 1)
        self.assertEqual(moves.state, "draft")
        self.assertEqual(moves.ows_iot_session_ids, may | june)
        self.assertEqual(len(moves.invoice_line_ids), 1, "one line per device by default")
        self.assertEqual(july.billing_state, "to_bill")
        self.assertEqual(no_product.billing_state, "to_bill")
