# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, api, fields, models


class OwsIotCheckinWizard(models.TransientModel):
    _name = "ows.iot.checkin.wizard"
    _description = "IoT Check-in"

    device_id = fields.Many2one("mqtt.device", required=True, ondelete="cascade")
    company_id = fields.Many2one(related="device_id.company_id")
    current_partner_id = fields.Many2one(related="device_id.checked_in_partner_id")
    running_session_id = fields.Many2one(related="device_id.running_session_id")
    partner_id = fields.Many2one(
        "res.partner",
        string="Member",
        required=True,
        domain="['|', ('company_id', '=', False), ('company_id', '=', company_id)]",
        help="The member who uses the machine now: the customer of its sessions.",
    )
    takeover = fields.Boolean(compute="_compute_takeover")

    @api.depends("partner_id", "running_session_id", "device_id")
    def _compute_takeover(self):
        for wizard in self:
            session = wizard.running_session_id
            wizard.takeover = bool(
                session
                and session.status == "running"
                and wizard.partner_id
                and session.member_partner_id != wizard.partner_id
            )

    def action_check_in(self):
        self.ensure_one()
        self.device_id._ows_publish_checkin("check_in", self.partner_id)
        return self.device_id._ows_checkin_notification(
            _(
                "Check-in of %(member)s on %(device)s sent.",
                member=self.partner_id.display_name,
                device=self.device_id.name,
            )
        )
