# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import Command
from odoo.tests import new_test_user

from odoo.addons.account.tests.common import AccountTestInvoicingCommon
from odoo.addons.ows_iot.tests.common import T0, session_event


class OwsIotInvoiceCase(AccountTestInvoicingCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.company_data["company"]
        cls.hour = cls.env.ref("uom.product_uom_hour")
        cls.machine_time = cls.env["product.product"].create(
            {
                "name": "Machine time",
                "type": "service",
                "uom_id": cls.hour.id,
                "uom_po_id": cls.hour.id,
                "lst_price": 60.0,
                "taxes_id": [Command.set(cls.tax_sale_a.ids)],
                "property_account_income_id": cls.company_data["default_account_revenue"].id,
            }
        )
        cls.member = cls.env["res.partner"].create({"name": "Member One", "tz": "UTC"})
        cls.other_member = cls.env["res.partner"].create({"name": "Member Two", "tz": "UTC"})
        cls.device = cls.make_device("Laser Cutter", "shellyplus1pm-laser", price_unit=1.5)
        cls.iot_manager = new_test_user(
            cls.env,
            login="iot_invoicing_manager",
            groups="base.group_user,ows_iot.group_ows_iot_manager,account.group_account_invoice",
            company_id=cls.company.id,
            tz="UTC",
        )
        cls.seq = 0

    @classmethod
    def make_device(cls, name, device_id, company=None, **vals):
        company = company or cls.company
        return cls.env["mqtt.device"].create(
            {
                "name": name,
                "device_id": device_id,
                "mqtt_topic": device_id,
                "company_id": company.id,
                "product_id": cls.machine_time.id,
                "partner_id": cls.member.id,
                "billing_unit_s": 60,
                **vals,
            }
        )

    def make_session(
        self, device=None, working=3600.0, standby=0.0, start=None, ending="session_stopped"
    ):
        """A completed (or, with ``ending="session_timeout"``, timed-out) session of
        ``device`` with the given seconds, starting ``start`` seconds after T0
        (2024-06-01 10:00 UTC)."""
        device = device or self.device
        type(self).seq += 1
        start = self.seq * 10_000.0 if start is None else start
        end = start + working + standby
        event = session_event(
            device.device_id,
            ending,
            self.seq,
            end,
            start=start,
            working=working,
            standby=standby,
            end=end,
        )
        [result] = self.env["ows.iot.event"].ingest_events([event])
        self.assertEqual(result["status"], "created", result["message"])
        return self.env["mqtt.session"].search([("session_id", "=", event["session_id"])])


__all__ = ["T0", "OwsIotInvoiceCase"]
