# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
from collections import defaultdict
from datetime import datetime, time, timedelta

import pytz

from odoo import Command, _, api, fields, models
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)

INVOICE_GROUPINGS = ("session", "device")
# Fields the chatter and followers write on any record.
MAIL_FIELDS = frozenset({"message_main_attachment_id", "message_follower_ids", "message_ids"})


class MqttSession(models.Model):
    _inherit = "mqtt.session"

    invoice_line_ids = fields.Many2many(
        "account.move.line",
        "mqtt_session_account_move_line_rel",
        "session_id",
        "move_line_id",
        string="Invoice Lines",
        readonly=True,
        copy=False,
    )
    invoice_id = fields.Many2one(
        "account.move",
        compute="_compute_invoice_id",
        store=True,
        index=True,
        help="The customer invoice this session is billed on.",
    )
    invoice_state = fields.Selection(related="invoice_id.state", string="Invoice Status")

    @api.depends("invoice_line_ids.move_id")
    def _compute_invoice_id(self):
        for session in self:
            session.invoice_id = session.invoice_line_ids.move_id[:1]

    # -- freeze ----------------------------------------------------------------------

    def write(self, vals):
        if not self.env.su and set(vals) - MAIL_FIELDS:
            posted = self.sudo().filtered(lambda session: session.invoice_id.state == "posted")
            if posted:
                raise UserError(
                    _(
                        "Session %(session)s is on the posted invoice %(invoice)s and "
                        "cannot be changed.",
                        session=posted[0].display_name,
                        invoice=posted[0].invoice_id.display_name,
                    )
                )
        return super().write(vals)

    def _ows_check_not_invoiced(self):
        invoiced = self.filtered("invoice_line_ids")
        if invoiced:
            raise UserError(
                _(
                    "Session %(session)s is on invoice %(invoice)s: cancel the invoice, "
                    "delete its line or issue a credit note to bill it again.",
                    session=invoiced[0].display_name,
                    invoice=invoiced[0].invoice_id.display_name,
                )
            )

    def action_reset_to_bill(self):
        self._ows_check_not_invoiced()
        return super().action_reset_to_bill()

    def action_mark_free(self):
        self._ows_check_not_invoiced()
        return super().action_mark_free()

    def action_view_invoice(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "account.move",
            "view_mode": "form",
            "res_id": self.invoice_id.id,
        }

    def _ows_release_invoice(self, reason):
        """Return invoiced sessions to "to bill", unlinked from their invoice lines."""
        sessions = self.sudo().filtered(lambda session: session.billing_state == "billed")
        if not sessions:
            return
        sessions.write(
            {
                "billing_state": "to_bill",
                "billed_date": False,
                "invoice_line_ids": [Command.clear()],
            }
        )
        for session in sessions:
            session.message_post(body=reason)

    # -- invoicing -------------------------------------------------------------------

    @api.model
    def _ows_invoice_domain(self, date_to):
        """Sessions ready to bill that ended on ``date_to`` or before (in the user's
        time zone)."""
        tz = pytz.timezone(self.env.user.tz or "UTC")
        day_after = datetime.combine(date_to + timedelta(days=1), time.min)
        limit = tz.localize(day_after).astimezone(pytz.utc).replace(tzinfo=None)
        return [
            ("billing_state", "=", "to_bill"),
            ("status", "!=", "running"),
            ("end_time", "<", limit),
            ("billable_units", ">", 0),
        ]

    def _ows_check_invoiceable(self):
        """Refuse, with the list of them, the sessions that cannot be invoiced."""

        def listing(sessions):
            return "\n".join(f"- {session.display_name}" for session in sessions)

        problems = []
        for sessions, title in (
            (
                self.filtered(lambda session: session.status == "running"),
                _("Sessions still running:"),
            ),
            (
                self.filtered(lambda session: session.billing_state != "to_bill"),
                _("Sessions already billed or free of charge:"),
            ),
            (
                self.filtered(lambda session: not session.partner_id),
                _("Sessions without customer:"),
            ),
            (
                self.filtered(lambda session: not session.product_id),
                _("Sessions of devices without product:"),
            ),
            (
                self.filtered("review_required"),
                _("Timed-out sessions to review first:"),
            ),
        ):
            if sessions:
                problems.append(f"{title}\n{listing(sessions)}")
        if problems:
            raise UserError(
                _(
                    "These sessions cannot be invoiced:\n\n%(problems)s",
                    problems="\n\n".join(problems),
                )
            )

    def _ows_invoiceable(self):
        """The sessions of ``self`` that pass _ows_check_invoiceable."""
        return self.filtered(
            lambda session: (
                session.status != "running"
                and session.billing_state == "to_bill"
                and session.partner_id
                and session.product_id
                and not session.review_required
            )
        )

    def _create_invoices(self, grouping="device"):
        """Draft one customer invoice per customer, company and currency.

        ``grouping`` is "session" (a line per session) or "device" (a line per device
        and product). Sessions with nothing billable are left out. Returns the created
        invoices.
        """
        if grouping not in INVOICE_GROUPINGS:
            raise UserError(
                _(
                    "Unknown invoice grouping %(grouping)r: use %(groupings)s.",
                    grouping=grouping,
                    groupings=", ".join(INVOICE_GROUPINGS),
                )
            )
        self._ows_check_manager()
        self.env["account.move"].check_access("create")
        self._ows_check_invoiceable()
        sessions = self.filtered(lambda session: session.billable_units > 0)
        if not sessions:
            raise UserError(_("None of these sessions has billable time."))
        groups = defaultdict(lambda: self.browse())
        for session in sessions.sorted(lambda session: (session.start_time, session.id)):
            groups[(session.partner_id, session.company_id, session.currency_id)] |= session
        Move = self.env["account.move"]
        moves = Move.browse()
        for (partner, company, currency), group in groups.items():
            group = group.with_context(lang=partner.lang or self.env.lang)
            vals = group._prepare_invoice(partner, company, currency)
            vals["invoice_line_ids"] = [
                Command.create(line) for line in group._prepare_invoice_lines(grouping)
            ]
            moves |= (
                Move.with_company(company)
                .with_context(default_move_type="out_invoice")
                .create(vals)
            )
        sessions.sudo().write({"billing_state": "billed", "billed_date": fields.Datetime.now()})
        return moves

    def _prepare_invoice(self, partner, company, currency):
        """Values of the draft invoice for the sessions ``self``."""
        return {
            "move_type": "out_invoice",
            "partner_id": partner.id,
            "company_id": company.id,
            "currency_id": currency.id,
            "invoice_origin": _("IoT sessions"),
        }

    def _prepare_invoice_lines(self, grouping):
        """Values of the invoice lines for the sessions ``self`` of one invoice."""
        if grouping == "session":
            batches = [session for session in self]
        else:
            by_device = defaultdict(lambda: self.browse())
            for session in self:
                key = (session.device_id, session.product_id, session._ows_price_per_uom())
                by_device[key] |= session
            batches = list(by_device.values())
        lines = []
        for batch in batches:
            lines += batch._prepare_invoice_line_batch(grouping)
        return lines

    def _prepare_invoice_line_batch(self, grouping):
        """The time line and, when standby is billed at a share, the standby line of
        sessions of one device and product."""
        first = self[0]
        product = first.product_id
        time_s = standby_s = 0.0
        for session in self:
            session_time_s, session_standby_s = session._ows_invoice_seconds()
            time_s += session_time_s
            standby_s += session_standby_s
        price = first._ows_price_per_uom()
        description = self._ows_invoice_line_description(grouping)
        lines = [
            self._prepare_invoice_line(product, first._ows_quantity(time_s), price, description)
        ]
        if standby_s:
            share = f"{first.standby_rate * 100:g}"
            lines.append(
                self._prepare_invoice_line(
                    product,
                    first._ows_quantity(standby_s),
                    price * first.standby_rate if price is not None else None,
                    _(
                        "%(device)s: standby time at %(share)s %% of the price",
                        device=first.device_id.name,
                        share=share,
                    ),
                )
            )
        return lines

    def _prepare_invoice_line(self, product, quantity, price, description):
        vals = {
            "product_id": product.id,
            "product_uom_id": product.uom_id.id,
            "quantity": quantity,
            "name": description,
            "ows_iot_session_ids": [Command.set(self.ids)],
        }
        if price is not None:
            vals["price_unit"] = price
        return vals

    def _ows_invoice_seconds(self):
        """(time, standby) seconds to invoice: the billed units' time split into the
        part at full price and the standby time billed at its share.

        Rounding and the minimum settle on the time at full price, so that the lines
        add up to the session's amount.
        """
        self.ensure_one()
        billed_s = self.billable_units * self.billing_unit_s
        standby_s = self.standby_duration_s if self.bill_standby and self.standby_rate else 0.0
        weighted_standby_s = standby_s * self.standby_rate
        if weighted_standby_s > billed_s:
            # Rounded down below the standby time itself: one line at full price.
            return billed_s, 0.0
        return billed_s - weighted_standby_s, standby_s

    def _ows_uom_seconds(self):
        """Seconds in one unit of the product's unit of measure, or None when it is
        not a unit of time."""
        uom = self.product_id.uom_id
        hour = self.env.ref("uom.product_uom_hour", raise_if_not_found=False)
        if not hour or uom.category_id != hour.category_id:
            return None
        return 3600.0 / hour._compute_quantity(1.0, uom, round=False)

    def _ows_quantity(self, seconds):
        """``seconds`` in the product's unit of measure (billing units when it is not a
        unit of time)."""
        uom_s = self._ows_uom_seconds()
        return seconds / (uom_s or self.billing_unit_s)

    def _ows_price_per_uom(self):
        """The session's price for one unit of the product's unit of measure, or None
        to take the product's own price."""
        if not self.price_unit:
            return None
        uom_s = self._ows_uom_seconds()
        if uom_s is None:
            return self.price_unit
        return self.price_unit * uom_s / self.billing_unit_s

    def _ows_invoice_line_description(self, grouping):
        first = self[0]
        if grouping == "session":
            return _(
                "%(device)s: %(session)s",
                device=first.device_id.name,
                session=first._ows_invoice_session_label(),
            )
        header = _("%(device)s: %(count)s session(s)", device=first.device_id.name, count=len(self))
        return "\n".join([header] + [session._ows_invoice_session_label() for session in self])

    def _ows_invoice_session_label(self):
        """Date, start-end and time of a session, in the customer's time zone."""
        self.ensure_one()
        tz = pytz.timezone(self.partner_id.tz or self.env.user.tz or "UTC")
        start = pytz.utc.localize(self.start_time).astimezone(tz)
        end = pytz.utc.localize(self.end_time).astimezone(tz) if self.end_time else start
        minutes = round(self.total_duration_s / 60)
        return _(
            "%(date)s %(start)s-%(end)s (%(hours)d:%(minutes)02d h)",
            date=start.strftime("%Y-%m-%d"),
            start=start.strftime("%H:%M"),
            end=end.strftime("%H:%M"),
            hours=minutes // 60,
            minutes=minutes % 60,
        )

    # -- scheduled action ------------------------------------------------------------

    @api.model
    def _cron_create_invoices(self):
        """Draft the invoices of everything to bill up to the end of the previous
        month. Sessions that cannot be invoiced are left to bill and logged."""
        today = fields.Date.context_today(self)
        last_month_end = today.replace(day=1) - timedelta(days=1)
        sessions = self.search(self._ows_invoice_domain(last_month_end))
        ready = sessions._ows_invoiceable()
        if sessions - ready:
            _logger.warning(
                "Monthly invoicing left %d session(s) without customer or product to bill: %s",
                len(sessions - ready),
                ", ".join((sessions - ready).mapped("display_name")),
            )
        if not ready:
            return self.env["account.move"]
        grouping = (
            self.env["ir.config_parameter"].sudo().get_param("ows_iot_account.invoice_grouping")
            or "device"
        )
        return ready._create_invoices(grouping if grouping in INVOICE_GROUPINGS else "device")
