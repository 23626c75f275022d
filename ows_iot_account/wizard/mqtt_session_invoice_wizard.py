# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, api, fields, models
from odoo.exceptions import UserError


class MqttSessionInvoiceWizard(models.TransientModel):
    _name = "mqtt.session.invoice.wizard"
    _description = "Create Invoices from IoT Sessions"

    scope = fields.Selection(
        [("selected", "Selected sessions"), ("date", "Everything to bill up to a date")],
        string="Sessions",
        required=True,
        default=lambda self: "selected" if self._default_session_ids() else "date",
    )
    session_ids = fields.Many2many(
        "mqtt.session", string="Selected Sessions", default=lambda self: self._default_session_ids()
    )
    date_to = fields.Date(
        string="Ended Up To",
        default=fields.Date.context_today,
        help="Sessions to bill that ended on this day or before.",
    )
    grouping = fields.Selection(
        [("device", "One line per device and product"), ("session", "One line per session")],
        string="Invoice Lines",
        required=True,
        default="device",
    )
    session_count = fields.Integer(string="Sessions to Invoice", compute="_compute_sessions")
    amount_total = fields.Monetary(string="Amount", compute="_compute_sessions")
    currency_id = fields.Many2one("res.currency", compute="_compute_sessions")

    def _default_session_ids(self):
        context = self.env.context
        if context.get("active_model") == "mqtt.session" and context.get("active_ids"):
            return self.env["mqtt.session"].browse(context["active_ids"]).exists()
        return self.env["mqtt.session"]

    @api.depends("scope", "session_ids", "date_to")
    def _compute_sessions(self):
        for wizard in self:
            sessions = wizard._ows_sessions()
            wizard.session_count = len(sessions)
            currencies = sessions.currency_id
            wizard.currency_id = (
                currencies if len(currencies) == 1 else self.env.company.currency_id
            )
            wizard.amount_total = sum(sessions.mapped("amount")) if len(currencies) == 1 else 0.0

    def _ows_sessions(self):
        self.ensure_one()
        if self.scope == "selected":
            return self.session_ids
        if not self.date_to:
            return self.env["mqtt.session"]
        Session = self.env["mqtt.session"]
        return Session.search(Session._ows_invoice_domain(self.date_to))

    def action_create_invoices(self):
        self.ensure_one()
        sessions = self._ows_sessions()
        if not sessions:
            raise UserError(_("There are no sessions to invoice."))
        moves = sessions._create_invoices(self.grouping)
        action = self.env["ir.actions.actions"]._for_xml_id("account.action_move_out_invoice_type")
        if len(moves) == 1:
            action.update(views=[(False, "form")], res_id=moves.id)
        else:
            action["domain"] = [("id", "in", moves.ids)]
        return action
