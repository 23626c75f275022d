# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.tests import HttpCase, new_test_user, tagged

from .common import OwsIotInvoiceCase


@tagged("post_install", "-at_install")
class TestInvoiceTour(HttpCase, OwsIotInvoiceCase):
    def test_manager_invoices_sessions_from_the_list(self):
        """In the browser: select sessions in the list, create their invoice, and
        follow the invoice's smart button back to them."""
        device = self.make_device("Invoice Tour Laser", "shellyplus1pm-invoicetour")
        sessions = self.make_session(device, working=1800) | self.make_session(device, working=5400)
        manager = new_test_user(
            self.env,
            login="iot_invoice_tour",
            groups="base.group_user,ows_iot.group_ows_iot_manager,account.group_account_invoice",
            company_id=self.company.id,
            tz="Europe/Berlin",
        )
        self.start_tour(
            "/odoo/action-ows_iot.mqtt_session_action",
            "ows_iot_account_invoice_tour",
            login=manager.login,
            timeout=180,
        )
        move = sessions.invoice_id
        self.assertEqual(len(move), 1)
        self.assertEqual(move.state, "draft")
        self.assertEqual(move.invoice_line_ids.mapped("quantity"), [0.5, 1.5])
        self.assertEqual(move.amount_untaxed, sum(sessions.mapped("amount")))
        self.assertEqual(set(sessions.mapped("billing_state")), {"billed"})
