# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import itertools

from odoo.tests import tagged

from .common import GEN2, OwsIotCase, session_event

# working 1000 s, standby 500 s in every session below.
WORKING, STANDBY = 1000.0, 500.0


def expected_units(billable_s, unit_s, rounding, minimum):
    whole, rest = divmod(round(billable_s * 1000), unit_s * 1000)
    if rounding == "up":
        units = whole + (1 if rest else 0)
    elif rounding == "nearest":
        units = whole + (1 if 2 * rest >= unit_s * 1000 else 0)
    else:
        units = whole
    return max(units, minimum) if billable_s else 0


@tagged("post_install", "-at_install")
class TestBilling(OwsIotCase):
    def test_rounding_table(self):
        """unit sizes x rounding modes x minimums x standby rates, through real sessions."""
        self.device.price_unit = 0.35
        combos = itertools.product(
            (1, 60, 300, 900, 3600),
            ("up", "nearest", "down"),
            (0, 1, 3),
            ((False, 1.0), (True, 1.0), (True, 0.5), (True, 0.0)),
        )
        for unit_s, rounding, minimum, (bill_standby, rate) in combos:
            with self.subTest(unit=unit_s, rounding=rounding, minimum=minimum, rate=rate):
                self.device.write(
                    {
                        "billing_unit_s": unit_s,
                        "billing_rounding": rounding,
                        "billing_min_units": minimum,
                        "bill_standby": bill_standby,
                        "standby_rate": rate,
                    }
                )
                session = self.make_session(working=WORKING, standby=STANDBY)
                billable_s = WORKING + (STANDBY * rate if bill_standby else 0.0)
                units = expected_units(billable_s, unit_s, rounding, minimum)
                self.assertEqual(session.billable_s, billable_s)
                self.assertEqual(session.billable_units, units)
                self.assertEqual(session.amount, round(units * 0.35, 2))

    def test_known_amounts(self):
        # 1000 s + half of 500 s standby = 1250 s; quarter hours rounded up: 2 units
        self.device.write(
            {"billing_unit_s": 900, "bill_standby": True, "standby_rate": 0.5, "price_unit": 12.5}
        )
        session = self.make_session(working=WORKING, standby=STANDBY)
        self.assertEqual(
            (session.billable_s, session.billable_units, session.amount), (1250.0, 2, 25.0)
        )
        # minutes rounded to nearest, minimum 30 minutes: a 5 min job bills 30
        self.device.write(
            {
                "billing_unit_s": 60,
                "billing_rounding": "nearest",
                "billing_min_units": 30,
                "bill_standby": False,
                "price_unit": 0.8,
            }
        )
        short = self.make_session(working=290)
        self.assertEqual((short.billable_units, short.amount), (30, 24.0))
        # nothing billable: no minimum charge
        idle = self.make_session(working=0, standby=600)
        self.assertEqual((idle.billable_s, idle.billable_units, idle.amount), (0.0, 0, 0.0))

    def test_amount_is_rounded_to_the_currency(self):
        self.env.ref("product.decimal_price").digits = 4
        self.device.write({"billing_unit_s": 1, "price_unit": 0.0042})
        session = self.make_session(working=1001)
        self.assertEqual(session.billable_units, 1001)
        self.assertEqual(session.amount, 4.2)
        self.assertEqual(session.currency_id, self.device.currency_id)

    def test_terms_follow_the_device_until_settled(self):
        to_bill = self.make_session(working=600)
        billed = self.make_session(working=600)
        free = self.make_session(working=600)
        running = self.make_session(working=600, end=False)
        billed.action_mark_billed()
        free.action_mark_free()
        self.assertEqual({s.amount for s in to_bill | billed | free | running}, {15.0})

        self.device.write({"price_unit": 3.0, "billing_unit_s": 300})
        self.assertEqual((to_bill.billing_unit_s, to_bill.amount), (300, 6.0))
        self.assertEqual(running.amount, 6.0)
        self.assertEqual((billed.billing_unit_s, billed.price_unit, billed.amount), (60, 1.5, 15.0))
        self.assertEqual(free.amount, 15.0)

    def test_running_session_grows_its_amount(self):
        session = self.make_session(working=120, end=False)
        self.assertEqual((session.billable_units, session.amount), (2, 3.0))
        self.assertEqual(session.status, "running")

    def test_heartbeats_update_the_figures(self):
        self.device.write({"bill_standby": True, "standby_rate": 0.5})
        first = session_event(GEN2, "session_heartbeat", 1, 60, working=60)
        second = session_event(GEN2, "session_heartbeat", 2, 185, working=125, standby=60)
        self.ingest([first])
        self.ingest([second])
        session = self.session_of(first)
        self.env.invalidate_all()  # what the database holds
        # 125 s + 30 s of standby at half price: 155 s, 3 units of 60 s at 1.50
        self.assertEqual(
            (session.billable_s, session.billable_units, session.amount), (155.0, 3, 4.5)
        )
        self.assertAlmostEqual(session.working_duration_h, 125 / 3600)
        self.assertAlmostEqual(session.standby_duration_h, 60 / 3600)
        self.assertAlmostEqual(session.total_duration_h, 185 / 3600)
        self.assertEqual(
            session._ows_billing(), {"billable_s": 155.0, "billable_units": 3, "amount": 4.5}
        )

    def test_customer_defaults_from_the_device_and_can_change(self):
        session = self.make_session()
        self.assertEqual(session.partner_id, self.customer)
        other = self.env["res.partner"].create({"name": "Walk-in"})
        session.with_user(self.iot_manager).partner_id = other
        self.assertEqual(session.partner_id, other)
