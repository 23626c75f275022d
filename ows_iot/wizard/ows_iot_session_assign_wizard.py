# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, api, fields, models
from odoo.exceptions import UserError


class OwsIotSessionAssignWizard(models.TransientModel):
    _name = "ows.iot.session.assign.wizard"
    _description = "Assign a Customer to IoT Sessions"

    session_ids = fields.Many2many("mqtt.session", string="Sessions", required=True)
    session_count = fields.Integer(compute="_compute_session_count")
    partner_id = fields.Many2one("res.partner", string="Customer", required=True)

    @api.depends("session_ids")
    def _compute_session_count(self):
        for wizard in self:
            wizard.session_count = len(wizard.session_ids)

    def action_assign(self):
        self.ensure_one()
        settled = self.session_ids.filtered(lambda session: session.billing_state != "to_bill")
        if settled:
            raise UserError(
                _(
                    "Session %(session)s is billed or free of charge: its customer stays.",
                    session=settled[0].display_name,
                )
            )
        self.session_ids.write({"partner_id": self.partner_id.id})
        return {"type": "ir.actions.act_window_close"}
