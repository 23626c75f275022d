# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""What the live views show: the bus notification of a commit and the board's tiles.

The ingestion runtime calls ``_ows_notify_live`` inside each commit; the bus sends
the notification once that transaction commits, to the channel of the IoT users'
group (every IoT user and manager, never a portal user). It names what changed and
carries the devices' new live values; the web client reloads what it shows of them
and reads through the ORM, so record rules still decide what a user sees.
"""

from odoo import _, api, fields, models
from odoo.tools import format_amount

LIVE_NOTIFICATION = "ows_iot/live"


class MqttDevice(models.Model):
    _inherit = "mqtt.device"

    @api.model
    def _ows_live_payload(self, device_ids, session_uuids):
        """The notification of one commit: the devices it changed, with their live
        values, and the sessions it started, updated or ended."""
        Session = self.env["mqtt.session"].sudo().with_context(active_test=False)
        sessions = Session.search([("session_id", "in", sorted(session_uuids))], order="id")
        devices = self.sudo().with_context(active_test=False).browse(
            sorted(set(device_ids) | set(sessions.device_id.ids))
        )
        # The leader writes power and last seen by SQL: read them fresh.
        devices.invalidate_recordset()
        return {
            "devices": [
                {
                    "id": device.id,
                    "power_w": device.current_power_w,
                    "state": device.current_state,
                    "online": device.online,
                    "running_session_id": device.running_session_id.id or False,
                    "last_seen": fields.Datetime.to_string(device.last_seen),
                }
                for device in devices
            ],
            "sessions": [
                {"id": session.id, "device_id": session.device_id.id, "status": session.status}
                for session in sessions
            ],
        }

    @api.model
    def _ows_notify_live(self, device_ids, session_uuids):
        """Queue one ``ows_iot/live`` notification in the current transaction, when
        it changed devices or sessions; the bus sends it after the commit."""
        if not device_ids and not session_uuids:
            return False
        payload = self._ows_live_payload(device_ids, session_uuids)
        if not payload["devices"] and not payload["sessions"]:
            return False
        group = self.env.ref("ows_iot.group_ows_iot_user", raise_if_not_found=False)
        if not group:
            return False
        group.sudo()._bus_send(LIVE_NOTIFICATION, payload)
        return payload

    # -- the board ---------------------------------------------------------------------

    @api.model
    def get_board_data(self, company_ids=None, location=None):
        """The board's tiles, one per active machine the user may see, and the
        companies and locations to filter them by."""
        domain = [("company_id", "in", self.env.companies.ids)]
        everything = self.search(domain)
        if company_ids:
            domain.append(("company_id", "in", [int(c) for c in company_ids]))
        if location:
            domain.append(("location", "=", location))
        devices = self.search(domain)
        return {
            "tiles": [device._ows_board_tile() for device in devices],
            "companies": [
                {"id": company.id, "name": company.name} for company in everything.company_id
            ],
            "locations": sorted({device.location for device in everything if device.location}),
        }

    def _ows_board_tile(self):
        self.ensure_one()
        states = dict(self._fields["current_state"]._description_selection(self.env))
        session = self.running_session_id
        tile = {
            "id": self.id,
            "name": self.name,
            "location": self.location or "",
            "company": self.company_id.name,
            "state": self.current_state or "idle",
            "state_label": (
                _("Out of order")
                if self.out_of_order
                else states.get(self.current_state or "idle")
                if self.online
                else _("Offline")
            ),
            "power_w": self.current_power_w,
            "online": self.online,
            "last_seen": fields.Datetime.to_string(self.last_seen),
            "out_of_order": self.out_of_order,
            "out_of_order_reason": self.out_of_order_reason or "",
            "no_product": not self.product_id,
            "session": False,
        }
        if session and session.status == "running":
            tile["session"] = {
                "id": session.id,
                "name": session.display_name,
                "partner": session.partner_id.display_name or "",
                "start": fields.Datetime.to_string(session.start_time),
                "amount": session.amount,
                "amount_display": format_amount(
                    self.env, session.amount, session.currency_id or self.currency_id
                ),
            }
        return tile
