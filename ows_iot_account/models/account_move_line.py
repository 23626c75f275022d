# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, fields, models


class AccountMoveLine(models.Model):
    _inherit = "account.move.line"

    ows_iot_session_ids = fields.Many2many(
        "mqtt.session",
        "mqtt_session_account_move_line_rel",
        "move_line_id",
        "session_id",
        string="IoT Sessions",
        readonly=True,
        copy=False,
    )

    def unlink(self):
        sessions = self.sudo().ows_iot_session_ids
        moves = self.move_id
        result = super().unlink()
        # A session is billed as long as one of its lines is left.
        released = sessions.exists().filtered(lambda session: not session.invoice_line_ids)
        if released:
            released._ows_release_invoice(
                _(
                    "Its line on invoice %(invoice)s was deleted: the session is to bill again.",
                    invoice=", ".join(moves.exists().mapped("display_name")) or "-",
                )
            )
        return result
