# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, api, fields, models
from odoo.tools import float_compare


class AccountMove(models.Model):
    _inherit = "account.move"

    ows_iot_session_ids = fields.One2many(
        "mqtt.session", "invoice_id", string="IoT Sessions", readonly=True
    )
    ows_iot_session_count = fields.Integer(
        string="IoT Session Count", compute="_compute_ows_iot_session_count"
    )

    @api.depends("ows_iot_session_ids")
    def _compute_ows_iot_session_count(self):
        for move in self:
            move.ows_iot_session_count = len(move.sudo().ows_iot_session_ids)

    def action_view_ows_iot_sessions(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Sessions of %(invoice)s", invoice=self.display_name),
            "res_model": "mqtt.session",
            "view_mode": "list,form",
            "domain": [("invoice_id", "=", self.id)],
            "context": {"create": False},
        }

    def write(self, vals):
        result = super().write(vals)
        if vals.get("state") == "cancel":
            for move in self:
                move.ows_iot_session_ids._ows_release_invoice(
                    _(
                        "Invoice %(invoice)s was cancelled: the session is to bill again.",
                        invoice=move.display_name,
                    )
                )
        return result

    def unlink(self):
        sessions = self.sudo().ows_iot_session_ids
        names = ", ".join(self.mapped("display_name"))
        result = super().unlink()
        sessions.exists()._ows_release_invoice(
            _("Invoice %(invoice)s was deleted: the session is to bill again.", invoice=names)
        )
        return result

    def _post(self, soft=True):
        posted = super()._post(soft=soft)
        for original in posted.filtered(
            lambda move: move.move_type == "out_refund" and move.reversed_entry_id
        ).reversed_entry_id:
            if original._ows_fully_credited():
                original.ows_iot_session_ids._ows_release_invoice(
                    _(
                        "Invoice %(invoice)s was fully credited: the session is to bill again.",
                        invoice=original.display_name,
                    )
                )
        return posted

    def _ows_fully_credited(self):
        """Whether posted credit notes reverse the whole invoice."""
        self.ensure_one()
        refunds = self.reversal_move_ids.filtered(lambda move: move.state == "posted")
        credited = sum(refunds.mapped("amount_total"))
        return (
            float_compare(credited, self.amount_total, precision_rounding=self.currency_id.rounding)
            >= 0
        )
