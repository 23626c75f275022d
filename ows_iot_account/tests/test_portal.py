# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.tests import HttpCase, new_test_user, tagged

from .common import OwsIotInvoiceCase


@tagged("post_install", "-at_install")
class TestPortalInvoiceLink(HttpCase, OwsIotInvoiceCase):
    def test_portal_sessions_link_their_posted_invoice(self):
        portal_user = new_test_user(
            self.env,
            login="iot_portal_invoice",
            password="iot_portal_invoice",
            groups="base.group_portal",
            partner_id=self.member.id,
            company_id=self.company.id,
        )
        session = self.make_session(working=1800)
        move = session._create_invoices("session")
        self.authenticate(portal_user.login, portal_user.login)
        page = self.url_open(f"/my/machine-sessions/{session.id}").text
        self.assertNotIn("/my/invoices/", page, "a draft invoice is not shown")

        move.invoice_date = "2024-06-30"
        move.action_post()
        for url in ("/my/machine-sessions", f"/my/machine-sessions/{session.id}"):
            page = self.url_open(url).text
            self.assertIn(move.name, page)
            self.assertIn(f"/my/invoices/{move.id}?access_token=", page)
        invoice_page = self.url_open(move.get_portal_url())
        self.assertEqual(invoice_page.status_code, 200)
