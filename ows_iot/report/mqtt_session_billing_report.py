# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from collections import defaultdict

import pytz

from odoo import api, fields, models


class MqttSessionBillingReport(models.AbstractModel):
    """Ended sessions grouped by customer and device, with their totals."""

    _name = "report.ows_iot.report_mqtt_session_billing"
    _description = "IoT Billing Report"

    @api.model
    def _get_report_values(self, docids, data=None):
        data = data or {}
        # Printed from the wizard, the sessions travel in the data (the download URL
        # of a report with data carries no record ids).
        ids = docids or data.get("session_ids") or []
        sessions = self.env["mqtt.session"].browse(ids).exists()
        running = sessions.filtered(lambda session: session.status == "running")
        sessions = (sessions - running).sorted(
            lambda session: (
                (session.partner_id.display_name or "").lower(),
                session.device_id.name.lower(),
                session.start_time,
                session.id,
            )
        )
        customers = self._ows_group(sessions)
        date_from, date_to = self._ows_period(sessions, data)
        billing_filters = dict(
            self.env["ows.iot.billing.report.wizard"]
            ._fields["billing_filter"]
            ._description_selection(self.env)
        )
        return {
            "doc_ids": sessions.ids,
            "doc_model": "mqtt.session",
            "docs": sessions,
            "company": sessions.company_id[:1] or self.env.company,
            "customers": customers,
            "totals": self._ows_totals(sessions),
            "running_count": len(running),
            "date_from": date_from,
            "date_to": date_to,
            "billing_filter": billing_filters.get(data.get("billing_filter")),
        }

    @api.model
    def _ows_group(self, sessions):
        """[{partner, devices: [{device, sessions, totals}], totals}] in report order."""
        by_partner = defaultdict(lambda: defaultdict(lambda: self.env["mqtt.session"]))
        partners, devices_of = [], defaultdict(list)
        for session in sessions:
            partner, device = session.partner_id, session.device_id
            if partner not in by_partner:
                partners.append(partner)
            if device not in by_partner[partner]:
                devices_of[partner].append(device)
            by_partner[partner][device] |= session
        customers = []
        for partner in partners:
            device_groups = []
            for device in devices_of[partner]:
                device_sessions = by_partner[partner][device]
                device_groups.append(
                    {
                        "device": device,
                        "sessions": device_sessions,
                        "totals": self._ows_totals(device_sessions),
                    }
                )
            customer_sessions = self.env["mqtt.session"].union(
                *(group["sessions"] for group in device_groups)
            )
            customers.append(
                {
                    "partner": partner,
                    "devices": device_groups,
                    "totals": self._ows_totals(customer_sessions),
                }
            )
        return customers

    @api.model
    def _ows_totals(self, sessions):
        """Time in hours, energy in kWh, units and the amounts per currency.

        Free sessions are listed with their figures but add nothing to the amount.
        """
        amounts = defaultdict(float)
        for session in sessions:
            if session.billing_state != "free":
                amounts[session.currency_id] += session.amount
        return {
            "count": len(sessions),
            "total_h": sum(sessions.mapped("total_duration_s")) / 3600,
            "working_h": sum(sessions.mapped("working_duration_s")) / 3600,
            "standby_h": sum(sessions.mapped("standby_duration_s")) / 3600,
            "energy_kwh": sum(sessions.mapped("energy_wh")) / 1000,
            "units": sum(
                session.billable_units for session in sessions if session.billing_state != "free"
            ),
            "amounts": [
                (currency, currency.round(amount))
                for currency, amount in sorted(amounts.items(), key=lambda item: item[0].name)
            ],
        }

    @api.model
    def _ows_period(self, sessions, data):
        """The reported period as dates: the wizard's, else the sessions' own."""
        date_from = fields.Date.to_date(data.get("date_from"))
        date_to = fields.Date.to_date(data.get("date_to"))
        if (not date_from or not date_to) and sessions:
            tz = pytz.timezone(self.env.context.get("tz") or self.env.user.tz or "UTC")
            days = [
                pytz.utc.localize(start).astimezone(tz).date()
                for start in sessions.mapped("start_time")
            ]
            date_from = date_from or min(days)
            date_to = date_to or max(days)
        return date_from, date_to
