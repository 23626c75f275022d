# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging
from collections import defaultdict
from datetime import timedelta

from psycopg2 import IntegrityError

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL

from ..services.billing import billable
from ..services.events import SESSION_EVENT_TYPES
from .bulk_write import write_rows
from .mqtt_device import BILLING_ROUNDINGS, BILLING_TERMS, SESSION_STATES
from .ows_iot_event import _order_key, _to_datetime

_logger = logging.getLogger(__name__)

# What the meter measured: written by the ingestion only.
MEASURED_FIELDS = frozenset(
    {
        "session_id",
        "device_id",
        "company_id",
        "start_time",
        "end_time",
        "status",
        "current_state",
        "total_duration_s",
        "working_duration_s",
        "standby_duration_s",
        "start_power_w",
        "end_power_w",
        "current_power_w",
        "avg_power_w",
        "peak_power_w",
        "energy_wh",
        "last_heartbeat",
        "last_event_seq",
        "last_event_epoch",
        "member_partner_id",
    }
)
DURATION_FIELDS = ("total_duration_s", "working_duration_s", "standby_duration_s")
# Stored figures computed from the seconds and the billing terms.
DERIVED_FIELDS = (
    "total_duration_h",
    "working_duration_h",
    "standby_duration_h",
    "billable_s",
    "billable_units",
    "amount",
)
# What settles the price: frozen once a session is billed or free.
SETTLED_FIELDS = frozenset(BILLING_TERMS) | {"partner_id"} | MEASURED_FIELDS
# Changed through the billing actions only.
BILLING_STATE_FIELDS = frozenset({"billing_state", "billed_date"})
# What an IoT User (not a manager) may change on a session not billed yet.
USER_FIELDS = frozenset({"partner_id"})
# Errors of one session's update that must not fail the other sessions of a batch.
APPLY_ERRORS = (IntegrityError, ValidationError, UserError, ValueError)


class MqttSession(models.Model):
    _name = "mqtt.session"
    _description = "IoT Usage Session"
    _inherit = ["mail.thread"]
    _order = "start_time desc, id desc"

    name = fields.Char(string="Reference", readonly=True, copy=False, default="/")
    session_id = fields.Char(string="Session UUID", required=True, readonly=True, copy=False)
    device_id = fields.Many2one(
        "mqtt.device", required=True, readonly=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one(
        "res.company",
        compute="_compute_company_id",
        store=True,
        precompute=True,
        index=True,
        readonly=True,
    )
    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        compute="_compute_partner_id",
        store=True,
        readonly=False,
        precompute=True,
        check_company=True,
        index=True,
        help="Who is billed: the member checked in on the machine when the session "
        "started, else the device's default customer. A change is logged in the chatter.",
    )
    member_partner_id = fields.Many2one(
        "res.partner",
        string="Checked-in Member",
        readonly=True,
        index="btree_not_null",
        help="The member checked in on the machine (badge, backend or API) when the "
        "session started.",
    )
    note = fields.Text()
    can_edit_terms = fields.Boolean(
        compute="_compute_can_edit_terms",
        help="IoT managers change billing terms and notes; IoT users assign the customer.",
    )
    start_time = fields.Datetime(required=True, readonly=True, index=True)
    end_time = fields.Datetime(readonly=True)
    status = fields.Selection(
        [("running", "Running"), ("completed", "Completed"), ("timeout", "Timed out")],
        required=True,
        default="running",
        readonly=True,
        index=True,
        tracking=True,
    )
    current_state = fields.Selection(SESSION_STATES, readonly=True)
    timing = fields.Selection(
        [("exact", "Exact"), ("delayed", "Delayed")],
        default="exact",
        readonly=True,
        help="Delayed: the meter has no clock of its own and some of its readings reached "
        "Odoo only after a pause of the ingestion (an Odoo restart, a failover), so their "
        "times are delivery times. Check the session before billing it.",
    )
    total_duration_s = fields.Float(string="Total (s)", readonly=True, aggregator="sum")
    working_duration_s = fields.Float(string="Working (s)", readonly=True, aggregator="sum")
    standby_duration_s = fields.Float(string="Standby (s)", readonly=True, aggregator="sum")
    total_duration_h = fields.Float(
        string="Total Hours", compute="_compute_hours", store=True, aggregator="sum"
    )
    working_duration_h = fields.Float(
        string="Working Hours", compute="_compute_hours", store=True, aggregator="sum"
    )
    standby_duration_h = fields.Float(
        string="Standby Hours", compute="_compute_hours", store=True, aggregator="sum"
    )
    start_power_w = fields.Float(string="Start Power (W)", readonly=True, aggregator=None)
    end_power_w = fields.Float(string="End Power (W)", readonly=True, aggregator=None)
    current_power_w = fields.Float(string="Current Power (W)", readonly=True, aggregator=None)
    avg_power_w = fields.Float(string="Average Power (W)", readonly=True, aggregator="avg")
    peak_power_w = fields.Float(string="Peak Power (W)", readonly=True, aggregator="max")
    energy_wh = fields.Float(string="Energy (Wh)", readonly=True, aggregator="sum")
    energy_kwh = fields.Float(
        string="Energy Used (kWh)",
        compute="_compute_energy_kwh",
        store=True,
        aggregator="sum",
    )
    last_heartbeat = fields.Datetime(readonly=True)
    # (seq, epoch) of the newest event applied: an older one never overwrites it.
    last_event_seq = fields.Integer(readonly=True, copy=False)
    last_event_epoch = fields.Float(readonly=True, copy=False)
    event_ids = fields.One2many("ows.iot.event", "session_id", readonly=True)
    event_count = fields.Integer(compute="_compute_event_count")

    # Billing terms, copied from the device; they follow the device while the
    # session is to bill and stay as settled once it is billed or free.
    billing_unit_s = fields.Integer(
        string="Billing Unit (s)",
        compute="_compute_billing_terms",
        store=True,
        readonly=False,
        precompute=True,
    )
    billing_rounding = fields.Selection(
        BILLING_ROUNDINGS,
        string="Rounding",
        compute="_compute_billing_terms",
        store=True,
        readonly=False,
        precompute=True,
    )
    billing_min_units = fields.Integer(
        string="Minimum Units",
        compute="_compute_billing_terms",
        store=True,
        readonly=False,
        precompute=True,
    )
    bill_standby = fields.Boolean(
        compute="_compute_billing_terms", store=True, readonly=False, precompute=True
    )
    standby_rate = fields.Float(
        string="Standby Share",
        digits=(3, 2),
        compute="_compute_billing_terms",
        store=True,
        readonly=False,
        precompute=True,
    )
    product_id = fields.Many2one(
        "product.product",
        compute="_compute_billing_terms",
        store=True,
        readonly=False,
        precompute=True,
        check_company=True,
    )
    price_unit = fields.Float(
        string="Price per Unit",
        digits="Product Price",
        compute="_compute_billing_terms",
        store=True,
        readonly=False,
        precompute=True,
        aggregator=None,
    )
    currency_id = fields.Many2one(
        "res.currency",
        compute="_compute_billing_terms",
        store=True,
        readonly=False,
        precompute=True,
    )
    billable_s = fields.Float(
        string="Billable (s)", compute="_compute_billing", store=True, aggregator="sum"
    )
    billable_units = fields.Integer(compute="_compute_billing", store=True, aggregator="sum")
    billable_h = fields.Float(
        string="Billable Time", compute="_compute_billable_h", help="Billable time in hours."
    )
    billing_unit_min = fields.Float(
        string="Billing Unit (min)",
        digits=(12, 2),
        compute="_compute_billing_unit_min",
        inverse="_inverse_billing_unit_min",
        help="Length of one billed unit in minutes, e.g. 1 or 15.",
    )
    amount = fields.Monetary(compute="_compute_billing", store=True, aggregator="sum")
    billing_state = fields.Selection(
        [("to_bill", "To Bill"), ("billed", "Billed"), ("free", "Free")],
        required=True,
        default="to_bill",
        readonly=True,
        index=True,
        tracking=True,
        copy=False,
    )
    billed_date = fields.Datetime(readonly=True, copy=False)
    # A timed-out session ended on silence or a last will, not on the machine
    # switching off: its end may be wrong, so a manager checks it before billing.
    review_required = fields.Boolean(
        string="To Review",
        compute="_compute_review_required",
        store=True,
        index=True,
        help="The session timed out (the meter fell silent or went offline): check its "
        "end before billing it. Mark Billed refuses it until a manager clears the review.",
    )
    reviewed_by_id = fields.Many2one("res.users", readonly=True, copy=False)
    billing_hold = fields.Selection(
        [("review", "To review"), ("no_product", "No product")],
        string="Held Back",
        compute="_compute_billing_hold",
        store=True,
        index=True,
        help="Why the session is kept out of the amounts to bill.",
    )
    # Alerts already sent for this session (comma-separated kinds): each goes once.
    alerts_sent = fields.Char(readonly=True, copy=False)

    _sql_constraints = [
        ("session_id_uniq", "unique(session_id)", "A session with this UUID already exists."),
    ]

    @api.depends("device_id")
    def _compute_company_id(self):
        for session in self:
            session.company_id = session.device_id.company_id

    @api.depends("device_id", "member_partner_id")
    def _compute_partner_id(self):
        # First to last: the member checked in, a manual assignment (a write, which
        # replaces this value), the device's default customer.
        for session in self:
            session.partner_id = session.member_partner_id or session.device_id.partner_id

    @api.depends("device_id")
    def _compute_billing_terms(self):
        for session in self:
            if session.device_id:
                session.update(session.device_id._ows_billing_terms())
            else:
                session.update(
                    {
                        "billing_unit_s": 60,
                        "billing_rounding": "up",
                        "billing_min_units": 0,
                        "bill_standby": False,
                        "standby_rate": 1.0,
                        "product_id": False,
                        "price_unit": 0.0,
                        "currency_id": self.env.company.currency_id.id,
                    }
                )

    @api.depends_context("uid")
    def _compute_can_edit_terms(self):
        allowed = self.env.user.has_group("ows_iot.group_ows_iot_manager")
        for session in self:
            session.can_edit_terms = allowed

    @api.depends("energy_wh")
    def _compute_energy_kwh(self):
        for session in self:
            session.energy_kwh = session.energy_wh / 1000

    @api.depends("billable_s")
    def _compute_billable_h(self):
        for session in self:
            session.billable_h = session.billable_s / 3600

    @api.depends("billing_unit_s")
    def _compute_billing_unit_min(self):
        for session in self:
            session.billing_unit_min = session.billing_unit_s / 60

    def _inverse_billing_unit_min(self):
        for session in self:
            session.billing_unit_s = round(session.billing_unit_min * 60)

    @api.depends("status", "reviewed_by_id")
    def _compute_review_required(self):
        for session in self:
            session.review_required = session.status == "timeout" and not session.reviewed_by_id

    @api.depends("review_required", "product_id")
    def _compute_billing_hold(self):
        for session in self:
            if session.review_required:
                session.billing_hold = "review"
            elif not session.product_id:
                session.billing_hold = "no_product"
            else:
                session.billing_hold = False

    @api.depends("total_duration_s", "working_duration_s", "standby_duration_s")
    def _compute_hours(self):
        for session in self:
            session.update(session._ows_hours())

    @api.depends(
        "working_duration_s",
        "standby_duration_s",
        "billing_unit_s",
        "billing_rounding",
        "billing_min_units",
        "bill_standby",
        "standby_rate",
        "price_unit",
        "currency_id",
    )
    def _compute_billing(self):
        for session in self:
            session.update(session._ows_billing())

    def _ows_hours(self, changes=None):
        """The hours fields, from the session's seconds (as ``changes`` would set them)."""
        values = {**{name: self[name] for name in DURATION_FIELDS}, **(changes or {})}
        return {
            "total_duration_h": values["total_duration_s"] / 3600,
            "working_duration_h": values["working_duration_s"] / 3600,
            "standby_duration_h": values["standby_duration_s"] / 3600,
        }

    def _ows_billing(self, changes=None):
        """The billing figures, from the session's seconds and terms (as ``changes``
        would set them)."""
        changes = changes or {}
        try:
            seconds, units = billable(
                changes.get("working_duration_s", self.working_duration_s),
                changes.get("standby_duration_s", self.standby_duration_s),
                self.billing_unit_s,
                self.billing_rounding or "up",
                self.billing_min_units,
                self.bill_standby,
                self.standby_rate,
            )
        except ValueError:
            # Terms the device constraints would refuse: nothing to bill.
            seconds, units = 0.0, 0
        amount = units * self.price_unit
        return {
            "billable_s": seconds,
            "billable_units": units,
            "amount": self.currency_id.round(amount) if self.currency_id else amount,
        }

    def _compute_event_count(self):
        counts = dict(
            self.env["ows.iot.event"]._read_group(
                [("session_id", "in", self.ids)], ["session_id"], ["__count"]
            )
        )
        for session in self:
            session.event_count = counts.get(session._origin, 0)

    @api.depends("name", "device_id")
    def _compute_display_name(self):
        for session in self:
            session.display_name = (
                f"{session.name} ({session.device_id.name})" if session.device_id else session.name
            )

    @api.constrains(*BILLING_TERMS)
    def _check_billing_terms(self):
        for session in self:
            if session.billing_unit_s <= 0:
                raise ValidationError(_("The billing unit must be at least one second."))
            if session.billing_min_units < 0:
                raise ValidationError(_("The minimum units must not be negative."))
            if not 0 <= session.standby_rate <= 1:
                raise ValidationError(_("The standby share must be between 0 and 1."))
            if session.price_unit < 0:
                raise ValidationError(_("The price per unit must not be negative."))

    # -- writes ----------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            raise UserError(_("Sessions are created from meter events only."))
        sequence = (
            self.env["ir.sequence"]
            .sudo()
            .search(
                [("code", "=", "mqtt.session"), ("company_id", "in", [self.env.company.id, False])],
                order="company_id",
                limit=1,
            )
        )
        for vals in vals_list:
            if vals.get("name", "/") == "/" and sequence:
                vals["name"] = sequence._next()
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su and set(vals) & (MEASURED_FIELDS | BILLING_STATE_FIELDS):
            raise UserError(
                _("Session figures come from the meter and are changed by the ingestion only.")
            )
        if (
            not self.env.su
            and set(vals) - USER_FIELDS
            and self.env.user.has_group("ows_iot.group_ows_iot_user")
            and not self.env.user.has_group("ows_iot.group_ows_iot_manager")
        ):
            raise UserError(_("IoT Users may only assign the customer of a session."))
        if set(vals) & SETTLED_FIELDS:
            settled = self.filtered(lambda session: session.billing_state != "to_bill")
            if settled:
                raise UserError(
                    _(
                        "Session %(session)s is %(state)s: reset it to bill before changing "
                        "its customer, billing terms or figures.",
                        session=settled[0].display_name,
                        state=dict(self._fields["billing_state"]._description_selection(self.env))[
                            settled[0].billing_state
                        ],
                    )
                )
        if "partner_id" not in vals or self.env.context.get("ows_iot_ingest"):
            return super().write(vals)
        before = {session: session.partner_id for session in self}
        result = super().write(vals)
        for session, old in before.items():
            if session.partner_id != old:
                session._ows_log_customer_change(old, session.partner_id)
        return result

    def _ows_log_customer_change(self, old, new):
        self.ensure_one()
        self.sudo().message_post(
            body=_(
                "Customer changed from %(old)s to %(new)s.",
                old=old.display_name or _("none"),
                new=new.display_name or _("none"),
            ),
            author_id=self.env.user.partner_id.id,
        )

    def action_assign_customer(self):
        """Assign one customer to the selected sessions (a wizard)."""
        return {
            "type": "ir.actions.act_window",
            "name": _("Assign Customer"),
            "res_model": "ows.iot.session.assign.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_session_ids": self.ids},
        }

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billed(self):
        if self.filtered(lambda session: session.billing_state == "billed"):
            raise UserError(_("A billed session cannot be deleted."))

    # -- billing actions -------------------------------------------------------------

    def _ows_check_manager(self):
        """Billing is the managers': IoT Users may write sessions (their customer),
        not bill them."""
        self.check_access("write")
        if not self.env.su and not self.env.user.has_group("ows_iot.group_ows_iot_manager"):
            raise AccessError(_("Only IoT Managers may bill sessions or review them."))

    def _ows_check_billable(self):
        self._ows_check_manager()
        running = self.filtered(lambda session: session.status == "running")
        if running:
            raise UserError(
                _(
                    "Session %(session)s is still running: only ended sessions can be "
                    "billed or made free of charge.",
                    session=running[0].display_name,
                )
            )

    def action_mark_billed(self):
        self._ows_check_billable()
        to_review = self.filtered("review_required")
        if to_review:
            raise UserError(
                _(
                    "Session %(session)s timed out: check its end and clear the review "
                    "before billing it.",
                    session=to_review[0].display_name,
                )
            )
        billed = self.filtered(lambda session: session.billing_state == "billed")
        if billed:
            raise UserError(
                _("Session %(session)s is already billed.", session=billed[0].display_name)
            )
        free = self.filtered(lambda session: session.billing_state == "free")
        if free:
            raise UserError(
                _(
                    "Session %(session)s is free of charge: reset it to bill first.",
                    session=free[0].display_name,
                )
            )
        self.sudo().write({"billing_state": "billed", "billed_date": fields.Datetime.now()})
        return True

    def action_mark_free(self):
        self._ows_check_billable()
        billed = self.filtered(lambda session: session.billing_state == "billed")
        if billed:
            raise UserError(
                _(
                    "Session %(session)s is already billed and cannot be made free.",
                    session=billed[0].display_name,
                )
            )
        self.filtered(lambda session: session.billing_state == "to_bill").sudo().write(
            {"billing_state": "free"}
        )
        return True

    def action_reset_to_bill(self):
        self._ows_check_manager()
        billed = self.filtered(lambda session: session.billing_state == "billed")
        if billed and not self.env.user.has_group("base.group_system"):
            raise UserError(
                _(
                    "Session %(session)s is already billed; only an administrator can "
                    "reopen it, so that it is not billed twice.",
                    session=billed[0].display_name,
                )
            )
        settled = self.filtered(lambda session: session.billing_state != "to_bill")
        settled.sudo().write({"billing_state": "to_bill", "billed_date": False})
        for session in billed:
            session.message_post(body=_("Billing reopened after the session had been billed."))
        return True

    def action_clear_review(self):
        """A manager checked the timed-out session: it may be billed."""
        self._ows_check_manager()
        to_review = self.filtered("review_required")
        to_review.sudo().write({"reviewed_by_id": self.env.user.id})
        for session in to_review:
            session.message_post(body=_("Timed-out session reviewed; it may be billed."))
        return True

    # -- alerts ----------------------------------------------------------------------

    @api.model
    def _cron_alerts(self, now=None):
        """Schedule an activity for the device's responsible user, once per session
        and kind: offline during the session, standby too long, session too long."""
        now = now or fields.Datetime.now()
        Session = self.sudo()
        timed_out = Session.search(
            [
                ("status", "=", "timeout"),
                ("end_time", ">=", now - timedelta(days=1)),
                "|", ("alerts_sent", "=", False), ("alerts_sent", "not ilike", "offline"),
            ]
        )  # fmt: skip
        for session in timed_out:
            session._ows_alert(
                "offline",
                _("%(device)s went offline during a session", device=session.device_id.name),
                _(
                    "The meter fell silent or reported offline while session %(session)s "
                    "ran; it ended at the last message, %(end)s. Check it before billing.",
                    session=session.name,
                    end=session._ows_user_time(session.end_time),
                ),
            )
        running = Session.search([("status", "=", "running")])
        standby_since = running._ows_standby_since()
        for session in running:
            device = session.device_id
            limit_s = device.alert_session_max_h * 3600
            if limit_s and (now - session.start_time).total_seconds() > limit_s:
                session._ows_alert(
                    "long",
                    _("%(device)s: session running long", device=device.name),
                    _(
                        "Session %(session)s has been running since %(start)s, longer "
                        "than the %(hours)s hours configured on the device.",
                        session=session.name,
                        start=session._ows_user_time(session.start_time),
                        hours=round(device.alert_session_max_h, 2),
                    ),
                )
            since = standby_since.get(session.id)
            if (
                device.alert_standby_min
                and since
                and (now - since).total_seconds() > device.alert_standby_min * 60
            ):
                session._ows_alert(
                    "standby",
                    _("%(device)s left in standby", device=device.name),
                    _(
                        "%(device)s has been in standby since %(since)s, longer than the "
                        "%(minutes)s minutes configured on the device. Switch it off?",
                        device=device.name,
                        since=session._ows_user_time(since),
                        minutes=device.alert_standby_min,
                    ),
                )

    def _ows_standby_since(self):
        """session id -> since when it is in standby (running sessions in standby)."""
        in_standby = self.filtered(lambda session: session.current_state == "standby")
        if not in_standby:
            return {}
        self.env["ows.iot.event"].flush_model()
        self.env.cr.execute(
            SQL(
                "SELECT DISTINCT ON (session_id) session_id, state, timestamp "
                "FROM ows_iot_event WHERE session_id = ANY(%s) AND state IS NOT NULL "
                "AND event_type IN ('session_started', 'state_changed') "
                "ORDER BY session_id, timestamp DESC, seq DESC",
                in_standby.ids,
            )
        )
        return {
            session_id: timestamp
            for session_id, state, timestamp in self.env.cr.fetchall()
            if state == "standby"
        }

    def _ows_user_time(self, value):
        user = self.device_id.user_id or self.env.user
        return fields.Datetime.context_timestamp(self.with_user(user), value).strftime(
            "%Y-%m-%d %H:%M"
        )

    def _ows_alert(self, kind, summary, note):
        """One activity on the device for its responsible user, once per session."""
        self.ensure_one()
        sent = set(filter(None, (self.alerts_sent or "").split(",")))
        if kind in sent:
            return
        device = self.device_id
        if device.user_id:
            device.activity_schedule(
                "mail.mail_activity_data_warning",
                summary=summary,
                note=note,
                user_id=device.user_id.id,
            )
        self.write({"alerts_sent": ",".join(sorted(sent | {kind}))})

    def action_view_events(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Events of %(session)s", session=self.display_name),
            "res_model": "ows.iot.event",
            "view_mode": "list,form",
            "domain": [("session_id", "=", self.id)],
        }

    # -- ingestion -------------------------------------------------------------------

    @api.model
    def _ows_apply_events(self, events, infos, errors, existing):
        """Create and update sessions from applied session events.

        Each session follows its newest event (every payload carries the whole
        session), so the order of the events does not matter. ``existing`` maps
        the uuids of the sessions already stored to them. Adds to ``errors`` (event
        id -> message) the events that could not be applied; returns event id ->
        session id for the events to link.
        """
        groups = defaultdict(list)
        for event in events:
            if event["event_type"] in SESSION_EVENT_TYPES:
                groups[event["session_id"]].append(event)
        if not groups:
            return {}
        Session = self.sudo().with_context(
            ows_iot_ingest=True, mail_create_nolog=True, mail_create_nosubscribe=True
        )
        existing = {uuid: session.with_env(Session.env) for uuid, session in existing.items()}
        plans = []
        for session_uuid, group in groups.items():
            plan = self._ows_plan(session_uuid, group, existing.get(session_uuid), infos, errors)
            if plan:
                plans.append(plan)
        try:
            with self.env.cr.savepoint():
                sessions = self._ows_execute(Session, plans)
        except APPLY_ERRORS:
            # One session's failure must not lose the others: apply them one by one.
            sessions = {}
            for plan in plans:
                try:
                    with self.env.cr.savepoint():
                        sessions.update(self._ows_execute(Session, [plan]))
                except APPLY_ERRORS as exc:
                    message = _(
                        "Session %(session)s not applied: %(error)s",
                        session=plan["uuid"],
                        error=exc,
                    )
                    _logger.warning("%s", message)
                    for event in plan["events"]:
                        errors.setdefault(event["id"], message)
        links = {}
        for plan in plans:
            session = sessions.get(plan["uuid"])
            if session:
                for event in plan["events"]:
                    links[event["id"]] = session.id
        return links

    @api.model
    def _ows_plan(self, session_uuid, group, session, infos, errors):
        """What to write for one session, or None when none of its events applies."""
        owner = session.device_id if session else max(group, key=_order_key)["device"]
        foreign = [event for event in group if event["device"] != owner]
        for event in foreign:
            errors[event["id"]] = _(
                "Session %(session)s belongs to device %(device)s.",
                session=session_uuid,
                device=owner.device_id,
            )
        group = [event for event in group if event["device"] == owner]
        if not group:
            return None
        newest = max(group, key=_order_key)
        heartbeats = [e["epoch"] for e in group if e["event_type"] == "session_heartbeat"]
        last_heartbeat = _to_datetime(max(heartbeats)) if heartbeats else None
        if not session:
            vals = self._ows_values(newest, infos[newest["id"]])
            vals.update(session_id=session_uuid, device_id=owner.id)
            if last_heartbeat:
                vals["last_heartbeat"] = last_heartbeat
            return {"uuid": session_uuid, "session": None, "vals": vals, "events": group}
        vals = {}
        stored = (session.last_event_seq, session.last_event_epoch)
        if _order_key(newest) > stored:
            if session.billing_state != "to_bill":
                for event in group:
                    if _order_key(event) > stored:
                        errors[event["id"]] = _(
                            "Session %(session)s is already settled (%(state)s); its figures "
                            "are not changed.",
                            session=session.display_name,
                            state=session.billing_state,
                        )
            else:
                vals = self._ows_values(newest, infos[newest["id"]])
        if (
            last_heartbeat
            and session.billing_state == "to_bill"
            and (not session.last_heartbeat or last_heartbeat > session.last_heartbeat)
        ):
            vals["last_heartbeat"] = last_heartbeat
        if vals.get("member_partner_id") == session.member_partner_id.id:
            del vals["member_partner_id"]
        vals = {name: value for name, value in vals.items() if session[name] != value}
        return {"uuid": session_uuid, "session": session, "vals": vals, "events": group}

    @api.model
    def _ows_values(self, event, info):
        """Session values from one self-sufficient session event."""
        payload = event["payload"]

        def number(key):
            return float(payload.get(key) or 0.0)

        vals = {
            "start_time": _to_datetime(info["start"]),
            "end_time": _to_datetime(info["end"]) if info["end"] is not None else False,
            "status": info["status"],
            "total_duration_s": info["total_s"],
            "working_duration_s": info["working_s"],
            "standby_duration_s": info["standby_s"],
            "start_power_w": number("start_power_w"),
            "end_power_w": number("end_power_w"),
            "current_power_w": number("power_w"),
            "avg_power_w": number("avg_power_w"),
            "peak_power_w": number("peak_power_w"),
            "energy_wh": number("energy_wh"),
            "last_event_seq": event["seq"] or 0,
            "last_event_epoch": event["epoch"],
            "timing": "delayed" if payload.get("timing") == "delayed" else "exact",
        }
        if info["state"]:
            vals["current_state"] = info["state"]
        member = self._ows_member(payload.get("member"), event["device"])
        if member:
            vals["member_partner_id"] = member
        return vals

    @api.model
    def _ows_member(self, member, device):
        """The partner id of an engine member ("<partner id>"), or None when it is no
        partner the device's company may bill."""
        if not isinstance(member, str) or not member.isdigit() or len(member) > 12:
            return None
        partner = self.env["res.partner"].sudo().browse(int(member)).exists()
        if not partner or (partner.company_id and partner.company_id != device.company_id):
            return None
        return partner.id

    @api.model
    def _ows_execute(self, Session, plans):
        """Write the plans; returns session uuid -> session."""
        new = [plan for plan in plans if plan["session"] is None]
        sessions = {}
        if new:
            created = Session.create([plan["vals"] for plan in new])
            sessions.update(zip([plan["uuid"] for plan in new], created, strict=True))
        quiet = {}
        for plan in plans:
            session, vals = plan["session"], plan["vals"]
            if session is None:
                continue
            sessions[plan["uuid"]] = session
            if "status" in vals or "member_partner_id" in vals:
                # A session ending: through write(), so the chatter tracks it; a
                # member: through write(), so that the customer follows.
                session.write(vals)
            elif vals:
                if set(vals).intersection(DURATION_FIELDS):
                    vals = {**vals, **session._ows_hours(vals), **session._ows_billing(vals)}
                quiet[session.id] = vals
        # Heartbeats and state changes of running sessions, the bulk of every batch,
        # with the figures derived from them computed here rather than recomputed.
        write_rows(Session, quiet, computed=DERIVED_FIELDS)
        return sessions
