# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Who used the machine: check-ins through the engine, attribution, reassignment."""

from unittest.mock import patch

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, tagged

from ..services import badge
from ..services.ingestor import Ingestor
from .common import T0, OwsIotCase, gen2_frame

READER = "workshop/shaper/badge"


class Workshop:
    """The leader's engine for one device, fed badge reads, commands and readings."""

    def __init__(self, case, device):
        self.case = case
        self.device = device
        self.ingestor = Ingestor([device._ows_engine_config()])
        self.events = []

    def message(self, offset, topic, payload):
        self.events += self.ingestor.process(topic, payload, T0 + offset)
        return self

    def swipe(self, offset, card):
        return self.message(offset, self.device.badge_topic, card.encode())

    def power(self, offset, watts):
        self.events += self.ingestor.process(*gen2_frame(self.device.device_id, offset, watts))
        return self

    def until(self, offset):
        self.events += self.ingestor.advance(T0 + offset)
        return self

    def commit(self):
        results = self.case.ingest([event.to_dict() for event in self.events])
        self.events = []
        for result in results:
            self.case.assertEqual(result["status"], "created", result["message"])
        return self

    def sessions(self):
        return self.case.Session.search([("device_id", "=", self.device.id)], order="start_time")


@tagged("post_install", "-at_install")
class TestCheckin(OwsIotCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.device.badge_topic = READER
        Partner = cls.env["res.partner"]
        cls.alice = Partner.create({"name": "Alice Maker", "ows_badge_id": "04a1b2c3"})
        cls.bob = Partner.create(
            {"name": "Bob Builder", "ows_badge_id": "99FF00", "company_id": cls.company.id}
        )

    def test_badge_of_a_member_makes_them_the_sessions_customer(self):
        self.assertEqual(self.alice.ows_badge_id, "04A1B2C3")  # normalised
        run = Workshop(self, self.device).swipe(0, "04A1B2C3").power(10, 500).until(20).commit()
        self.assertEqual(self.device.checked_in_partner_id, self.alice)
        [session] = run.sessions()
        self.assertEqual(session.member_partner_id, self.alice)
        self.assertEqual(session.partner_id, self.alice)  # before the default customer
        run.power(100, 0).until(200).commit()
        self.assertEqual(session.status, "completed")
        self.assertEqual(session.partner_id, self.alice)
        # checked out automatically when the session ends
        self.assertFalse(self.device.checked_in_partner_id)
        self.assertEqual(
            self.Event.search([("device_id", "=", self.device.id)], order="id").mapped(
                "event_type"
            )[:2],
            ["member_checked_in", "device_online"],
        )

    def test_without_member_the_device_default_customer(self):
        run = Workshop(self, self.device).power(0, 500).power(60, 0).until(200).commit()
        [session] = run.sessions()
        self.assertFalse(session.member_partner_id)
        self.assertEqual(session.partner_id, self.customer)

    def test_takeover_splits_the_session_without_losing_a_second(self):
        run = Workshop(self, self.device).swipe(0, "04A1B2C3").power(10, 500)
        run.swipe(70, "99FF00").power(130, 50).power(250, 0).until(400).commit()
        first, second = run.sessions()
        self.assertEqual((first.partner_id, second.partner_id), (self.alice, self.bob))
        self.assertEqual(first.end_time, second.start_time)
        self.assertEqual(first.working_duration_s, 60)
        self.assertEqual((second.working_duration_s, second.standby_duration_s), (60, 120))
        # the uninterrupted run from 10 s to 250 s, split at the check-in
        self.assertEqual(first.total_duration_s + second.total_duration_s, 240)

    def test_manual_assignment_replaces_the_default_and_is_logged(self):
        session = self.make_session()
        self.assertEqual(session.partner_id, self.customer)
        wizard = (
            self.env["ows.iot.session.assign.wizard"]
            .with_user(self.iot_user)
            .create({"session_ids": [(6, 0, session.ids)], "partner_id": self.bob.id})
        )
        wizard.action_assign()
        self.assertEqual(session.partner_id, self.bob)
        body = session.message_ids[:1].body
        self.assertIn("Maker Space Member", body)
        self.assertIn("Bob Builder", body)
        # the selection from the list: one message per session
        sessions = self.make_session() | self.make_session()
        action = sessions.with_user(self.iot_user).action_assign_customer()
        form = Form(
            self.env[action["res_model"]].with_user(self.iot_user).with_context(**action["context"])
        )
        form.partner_id = self.alice
        form.save().action_assign()
        for other in sessions:
            self.assertEqual(other.partner_id, self.alice)
            self.assertIn("Alice Maker", other.message_ids[:1].body)

    def test_member_comes_before_a_manual_assignment(self):
        run = Workshop(self, self.device).power(0, 500).until(10).commit()
        [session] = run.sessions()
        session.partner_id = self.bob
        # a member reported for the session by the engine wins
        session.sudo().with_context(ows_iot_ingest=True).write({"member_partner_id": self.alice.id})
        self.assertEqual(session.partner_id, self.alice)

    def test_iot_users_assign_customers_of_sessions_to_bill_only(self):
        session = self.make_session()
        as_user = session.with_user(self.iot_user)
        as_user.partner_id = self.bob
        self.assertEqual(session.partner_id, self.bob)
        with self.assertRaises(UserError):
            as_user.note = "changed"
        with self.assertRaises(UserError):
            as_user.price_unit = 0.0
        session.action_mark_billed()
        with self.assertRaises(UserError):
            as_user.partner_id = self.alice
        # the record rule: no write on billed sessions, whatever the field
        with self.assertRaises(AccessError):
            as_user.check_access("write")
        session.with_user(self.iot_manager).check_access("write")
        with self.assertRaises(AccessError):
            session.with_user(self.employee).partner_id = self.alice
        # managers keep their rights on sessions not billed
        other = self.make_session()
        other.with_user(self.iot_manager).write({"note": "ok", "partner_id": self.alice.id})
        self.assertFalse(other.with_user(self.iot_user).can_edit_terms)
        self.assertTrue(other.with_user(self.iot_manager).can_edit_terms)

    def test_badge_ids_are_unique_per_company(self):
        Partner = self.env["res.partner"]
        with self.assertRaises(ValidationError), self.cr.savepoint():
            Partner.create({"name": "Copy", "ows_badge_id": " 04A1B2C3 "})
        with self.assertRaises(ValidationError), self.cr.savepoint():
            Partner.create(
                {"name": "Copy", "ows_badge_id": "99ff00", "company_id": self.company.id}
            )
        other = Partner.create(
            {"name": "Elsewhere", "ows_badge_id": "99FF00", "company_id": self.company_b.id}
        )
        self.assertEqual(other.ows_badge_id, "99FF00")
        with self.assertRaises(ValidationError), self.cr.savepoint():
            Partner.create({"name": "Bad", "ows_badge_id": "x" * 65})
        # the device's engine knows its company's badges and the shared ones
        self.assertEqual(
            dict(self.device._ows_engine_config().badges),
            {"04A1B2C3": str(self.alice.id), "99FF00": str(self.bob.id)},
        )
        self.assertEqual(
            dict(self.device_b._ows_engine_config().badges),
            {"04A1B2C3": str(self.alice.id), "99FF00": str(other.id)},
        )

    def test_unknown_badges_attribute_nothing_and_are_counted(self):
        run = Workshop(self, self.device).swipe(0, "DEADBEEF").power(10, 500).until(20).commit()
        self.assertEqual(run.ingestor.dropped["unknown_badge"], 1)
        self.assertEqual(run.sessions().partner_id, self.customer)

    def test_badge_topics_are_unique_and_without_wildcards(self):
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.device_b.badge_topic = f"/{READER}/"
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.device_b.badge_topic = "workshop/+/badge"
        self.device_b.badge_topic = "workshop/laser/badge"
        self.assertEqual(self.device_b._ows_engine_config().badge_topic, "workshop/laser/badge")

    def test_backend_check_in_publishes_a_command_the_engine_applies(self):
        published = []
        device_class = type(self.env["mqtt.device"])
        with patch.object(
            device_class,
            "_ows_publish",
            lambda self, topic, payload: published.append((topic, payload)),
        ):
            action = self.device.with_user(self.iot_user).action_check_in()
            wizard = (
                self.env[action["res_model"]]
                .with_user(self.iot_user)
                .with_context(**action["context"])
                .create({"partner_id": self.bob.id})
            )
            result = wizard.action_check_in()
        self.assertEqual(result["tag"], "display_notification")
        [(topic, payload)] = published
        self.assertEqual(topic, f"{self.device.mqtt_topic}/{badge.CHECKIN_SUBTOPIC}")
        self.assertEqual(badge.parse_command(payload), ("check_in", str(self.bob.id)))
        run = Workshop(self, self.device).message(0, topic, payload).commit()
        self.assertEqual(self.device.checked_in_partner_id, self.bob)
        run.power(5, 500).until(10).commit()
        self.assertEqual(run.sessions().partner_id, self.bob)
        # checking out from the backend: the running session keeps its member
        with patch.object(
            device_class,
            "_ows_publish",
            lambda self, topic, payload: published.append((topic, payload)),
        ):
            self.device.with_user(self.iot_user).action_check_out()
        run.message(20, *published[-1]).commit()
        self.assertFalse(self.device.checked_in_partner_id)
        self.assertEqual(run.sessions().partner_id, self.bob)

    def test_members_of_another_company_cannot_check_in(self):
        stranger = self.env["res.partner"].create(
            {"name": "Stranger", "company_id": self.company_b.id}
        )
        with self.assertRaises(UserError):
            self.device._ows_publish_checkin("check_in", stranger)

    def test_check_in_without_broker_says_why(self):
        self.env["ir.config_parameter"].sudo().set_param("ows_iot.mqtt_host", "")
        with self.assertRaisesRegex(UserError, "broker"):
            self.device._ows_publish_checkin("check_in", self.alice)

    def test_customer_smart_button_shows_time_and_amount_to_bill(self):
        self.make_session(working=5400.0).write({"partner_id": self.alice.id})
        billed = self.make_session(working=600.0)
        billed.write({"partner_id": self.alice.id})
        billed.action_mark_billed()
        alice = self.alice.with_user(self.iot_user)
        self.assertEqual(alice.ows_session_count, 2)
        self.assertAlmostEqual(alice.ows_to_bill_h, 1.5)
        self.assertAlmostEqual(alice.ows_amount_to_bill, 90 * 1.5)
        action = alice.action_ows_view_sessions()
        self.assertEqual(
            self.Session.search(action["domain"]),
            self.Session.search([("partner_id", "=", self.alice.id)]),
        )
