# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import datetime, time, timedelta

import pytz

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

BILLING_FILTERS = [
    ("to_bill", "To bill"),
    ("billed", "Billed"),
    ("all", "All ended sessions"),
]


class OwsIotBillingReportWizard(models.TransientModel):
    _name = "ows.iot.billing.report.wizard"
    _description = "IoT Billing Report Wizard"

    date_from = fields.Date(
        string="From",
        required=True,
        default=lambda self: fields.Date.context_today(self).replace(day=1),
        help="First day of the period; sessions are selected by their start.",
    )
    date_to = fields.Date(
        string="To",
        required=True,
        default=fields.Date.context_today,
        help="Last day of the period, included.",
    )
    billing_filter = fields.Selection(
        BILLING_FILTERS,
        string="Sessions",
        required=True,
        default="to_bill",
        help="Which ended sessions the report lists. Running sessions are never billed.",
    )
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company
    )
    partner_ids = fields.Many2many(
        "res.partner",
        string="Customers",
        help="Only the sessions of these customers. Empty: all customers.",
    )
    device_ids = fields.Many2many(
        "mqtt.device",
        string="Devices",
        domain="[('company_id', '=', company_id)]",
        help="Only the sessions of these devices. Empty: all devices.",
    )
    session_count = fields.Integer(string="Matching Sessions", compute="_compute_session_count")

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        context = self.env.context
        if (
            "device_ids" in fields_list
            and context.get("active_model") == "mqtt.device"
            and context.get("active_ids")
        ):
            values["device_ids"] = [fields.Command.set(context["active_ids"])]
        return values

    @api.constrains("date_from", "date_to")
    def _check_period(self):
        for wizard in self:
            if wizard.date_from > wizard.date_to:
                raise ValidationError(_("The period must not end before it starts."))

    @api.depends(
        "date_from", "date_to", "billing_filter", "company_id", "partner_ids", "device_ids"
    )
    def _compute_session_count(self):
        Session = self.env["mqtt.session"]
        for wizard in self:
            if wizard.date_from and wizard.date_to and wizard.date_from <= wizard.date_to:
                wizard.session_count = Session.search_count(wizard._ows_session_domain())
            else:
                wizard.session_count = 0

    def _ows_period_utc(self):
        """The period as naive UTC datetimes [start, end), in the user's time zone."""
        self.ensure_one()
        tz = pytz.timezone(self.env.context.get("tz") or self.env.user.tz or "UTC")

        def utc(day):
            moment = tz.localize(datetime.combine(day, time.min))
            return moment.astimezone(pytz.utc).replace(tzinfo=None)

        return utc(self.date_from), utc(self.date_to + timedelta(days=1))

    def _ows_session_domain(self):
        self.ensure_one()
        start, end = self._ows_period_utc()
        domain = [
            ("start_time", ">=", start),
            ("start_time", "<", end),
            ("status", "!=", "running"),
            ("company_id", "=", self.company_id.id),
        ]
        if self.billing_filter != "all":
            domain.append(("billing_state", "=", self.billing_filter))
        if self.partner_ids:
            domain.append(("partner_id", "in", self.partner_ids.ids))
        if self.device_ids:
            domain.append(("device_id", "in", self.device_ids.ids))
        return domain

    def action_print(self):
        self.ensure_one()
        sessions = self.env["mqtt.session"].search(self._ows_session_domain())
        if not sessions:
            raise UserError(_("No ended sessions match this period and these filters."))
        data = {
            "session_ids": sessions.ids,
            "date_from": fields.Date.to_string(self.date_from),
            "date_to": fields.Date.to_string(self.date_to),
            "billing_filter": self.billing_filter,
            "partner_ids": self.partner_ids.ids,
            "device_ids": self.device_ids.ids,
        }
        action = self.env.ref("ows_iot.mqtt_session_billing_report_action").report_action(
            sessions, data=data
        )
        if action.get("type") == "ir.actions.report":
            # The wizard's job is done once the PDF is downloaded.
            action["close_on_report_download"] = True
        return action
