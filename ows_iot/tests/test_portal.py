# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged

from .common import OwsIotCase


@tagged("post_install", "-at_install")
class TestPortalSessions(HttpCase, OwsIotCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_member = cls.env["res.partner"].create({"name": "Other Member"})
        cls.other_device = cls.Device.create(
            {
                "name": "Other Lathe",
                "device_id": "shellyplus1pm-otherlathe",
                "mqtt_topic": "shellyplus1pm-otherlathe",
                "company_id": cls.company.id,
                "partner_id": cls.other_member.id,
            }
        )
        cls.portal_user = new_test_user(
            cls.env,
            login="iot_portal_member",
            password="iot_portal_member",
            groups="base.group_portal",
            partner_id=cls.customer.id,
            company_id=cls.company.id,
        )

    def setUp(self):
        super().setUp()
        self.own = self.make_session(working=5400)
        self.running = self.make_session(working=60, end=False)
        self.foreign = self.make_session(self.other_device, working=600)

    def test_portal_member_reads_only_their_own_sessions(self):
        Session = self.Session.with_user(self.portal_user)
        self.assertEqual(Session.search([]), self.own | self.running)
        self.assertEqual(Session.search_count([("partner_id", "=", self.other_member.id)]), 0)
        with self.assertRaises(AccessError):
            self.foreign.with_user(self.portal_user).read(["amount"])
        with self.assertRaises(AccessError):
            self.own.with_user(self.portal_user).write({"note": "mine now"})
        with self.assertRaises(AccessError):
            self.own.with_user(self.portal_user).device_id.read(["name"])

    def test_a_reassigned_session_leaves_the_portal(self):
        self.own.partner_id = self.other_member
        self.assertFalse(
            self.Session.with_user(self.portal_user).search([("id", "=", self.own.id)])
        )

    def test_portal_pages_show_own_sessions_only(self):
        self.authenticate(self.portal_user.login, self.portal_user.login)
        response = self.url_open("/my/machine-sessions")
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.own.name, response.text)
        self.assertIn(self.device.name, response.text)
        self.assertIn("1:30", response.text)
        self.assertNotIn(self.foreign.name, response.text)
        self.assertNotIn(self.other_device.name, response.text)
        self.assertNotIn(self.running.name, response.text, "running sessions have no figures yet")

        detail = self.url_open(f"/my/machine-sessions/{self.own.id}")
        self.assertEqual(detail.status_code, 200)
        self.assertIn(self.device.name, detail.text)
        self.assertIn("135.00", detail.text)

        for session_id in (self.foreign.id, 999_999_999):
            response = self.url_open(f"/my/machine-sessions/{session_id}", allow_redirects=False)
            self.assertEqual(response.status_code, 303)
            self.assertTrue(response.headers["Location"].endswith("/my"))
        # the home page counts the sessions
        home = self.url_open("/my")
        self.assertIn("/my/machine-sessions", home.text)

    def test_portal_pages_in_german(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.env["ir.module.module"]._load_module_terms(["ows_iot"], ["de_DE"], overwrite=True)
        self.authenticate(self.portal_user.login, self.portal_user.login)
        # The portal's language is the visitor's choice (its language selector).
        self.opener.cookies["frontend_lang"] = "de_DE"
        listing = self.url_open("/my/machine-sessions").text
        for term in ("Maschinensitzungen", "Sitzungsnr.", "Maschine", "Dauer", "Betrag"):
            self.assertIn(term, listing)
        detail = self.url_open(f"/my/machine-sessions/{self.own.id}").text
        for term in ("Arbeitszeit", "Leerlaufzeit", "Energieverbrauch", "Abrechnung"):
            self.assertIn(term, detail)

    def test_anonymous_visitors_are_sent_to_the_login(self):
        response = self.url_open("/my/machine-sessions", allow_redirects=False)
        self.assertEqual(response.status_code, 303)
        self.assertIn("/web/login", response.headers["Location"])
