# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..services.badge import normalize_badge


class ResPartner(models.Model):
    _inherit = "res.partner"

    ows_badge_id = fields.Char(
        string="Badge ID",
        copy=False,
        index="btree_not_null",
        help="Card id the badge readers at the machines read for this member, e.g. "
        "04A1B2C3. Unique per company; letters are compared in upper case.",
    )
    ows_session_count = fields.Integer(
        string="Machine Sessions",
        compute="_compute_ows_sessions",
        groups="ows_iot.group_ows_iot_user",
    )
    ows_to_bill_h = fields.Float(
        string="Machine Time to Bill",
        compute="_compute_ows_sessions",
        groups="ows_iot.group_ows_iot_user",
        help="Billable hours of the ended sessions still to bill.",
    )
    ows_amount_to_bill = fields.Monetary(
        string="Machine Amount to Bill",
        compute="_compute_ows_sessions",
        currency_field="ows_currency_id",
        groups="ows_iot.group_ows_iot_user",
        help="Amount of the ended sessions still to bill, without those held back.",
    )
    ows_currency_id = fields.Many2one(
        "res.currency",
        string="Currency",
        compute="_compute_ows_sessions",
        groups="ows_iot.group_ows_iot_user",
    )

    def _ows_session_domain(self):
        return [("partner_id", "child_of", self.ids)]

    def _compute_ows_sessions(self):
        Session = self.env["mqtt.session"]
        for partner in self:
            if not partner._origin.id:
                partner.update(
                    ows_session_count=0,
                    ows_to_bill_h=0.0,
                    ows_amount_to_bill=0.0,
                    ows_currency_id=self.env.company.currency_id,
                )
                continue
            domain = partner._origin._ows_session_domain()
            [(count,)] = Session._read_group(domain, [], ["__count"])
            [(billable_s, amount)] = Session._read_group(
                [
                    *domain,
                    ("billing_state", "=", "to_bill"),
                    ("status", "!=", "running"),
                    ("billing_hold", "=", False),
                ],
                [],
                ["billable_s:sum", "amount:sum"],
            )
            partner.ows_session_count = count
            partner.ows_to_bill_h = (billable_s or 0.0) / 3600
            partner.ows_amount_to_bill = amount or 0.0
            partner.ows_currency_id = self.env.company.currency_id

    @api.model
    def _ows_normalize_badge(self, vals):
        if "ows_badge_id" in vals:
            value = vals["ows_badge_id"]
            if value and not (isinstance(value, str) and normalize_badge(value)):
                raise ValidationError(
                    _("A badge ID is up to 64 printable characters, e.g. 04A1B2C3.")
                )
            vals["ows_badge_id"] = normalize_badge(value) if value else False
        return vals

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._ows_normalize_badge(vals)
        return super().create(vals_list)

    def write(self, vals):
        self._ows_normalize_badge(vals)
        return super().write(vals)

    @api.constrains("ows_badge_id", "company_id")
    def _check_ows_badge_id(self):
        """A badge opens one member's sessions: unique among the partners of a
        company, and among the partners shared by all companies."""
        for partner in self.filtered("ows_badge_id"):
            other = (
                self.sudo()
                .with_context(active_test=False)
                .search(
                    [
                        ("id", "!=", partner.id),
                        ("ows_badge_id", "=", partner.ows_badge_id),
                        ("company_id", "=", partner.company_id.id),
                    ],
                    limit=1,
                )
            )
            if other:
                raise ValidationError(
                    _(
                        "The badge %(badge)s already belongs to %(other)s.",
                        badge=partner.ows_badge_id,
                        other=other.display_name,
                    )
                )

    def action_ows_view_sessions(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Machine Sessions of %(customer)s", customer=self.display_name),
            "res_model": "mqtt.session",
            "view_mode": "list,form,pivot,graph",
            "domain": self._ows_session_domain(),
            "context": {"search_default_to_bill": 1},
        }

    @api.model
    def _ows_badges(self, company):
        """(badge, member) pairs of the badges valid on ``company``'s devices: the
        company's partners and the shared ones (the company's own win)."""
        partners = (
            self.sudo()
            .with_context(active_test=True)
            .search(
                [("ows_badge_id", "!=", False), ("company_id", "in", [company.id, False])],
                order="company_id nulls first, id",
            )
        )
        badges = {}
        for partner in partners:
            badges[partner.ows_badge_id] = str(partner.id)
        return tuple(sorted(badges.items()))
