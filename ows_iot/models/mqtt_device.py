# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import dataclasses

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL, format_amount

from ..services.billing import ROUNDING_MODES
from ..services.config import ConfigError, DeviceConfig
from ..services.events import STATES

PARSER_TYPES = [
    ("shelly_gen2", "Shelly Gen2/Gen3/Gen4 (RPC)"),
    ("shelly_gen1", "Shelly Gen1"),
    ("json_path", "Generic JSON (power path)"),
]
SESSION_STRATEGIES = [("power_threshold", "Power thresholds")]
BILLING_ROUNDINGS = list(
    zip(ROUNDING_MODES, ["Round up", "Round to nearest", "Round down"], strict=True)
)
SESSION_STATES = [
    (state, label)
    for state, label in zip(
        STATES, ["Idle", "Starting", "Standby", "Working", "Stopping"], strict=True
    )
]
# Device fields that make up the session configuration handed to the engine: the
# engine's own configuration fields, named alike on the device.
# The bus notification of a commit that changed what the live views show.
LIVE_NOTIFICATION = "ows_iot/live"
ENGINE_FIELDS = tuple(field.name for field in dataclasses.fields(DeviceConfig))
# Device fields copied onto each session as its billing terms.
BILLING_TERMS = (
    "billing_unit_s",
    "billing_rounding",
    "billing_min_units",
    "bill_standby",
    "standby_rate",
    "product_id",
    "price_unit",
    "currency_id",
)


class MqttDevice(models.Model):
    _name = "mqtt.device"
    _description = "IoT Device"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "name, id"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True, help="The machine this meter measures.")
    device_id = fields.Char(
        string="Device ID",
        required=True,
        index=True,
        tracking=True,
        copy=False,
        help="External id of the meter as it identifies itself, e.g. shellypmminig3-48f6eeb73a1c.",
    )
    active = fields.Boolean(default=True, tracking=True)
    company_id = fields.Many2one(
        "res.company", required=True, index=True, default=lambda self: self.env.company
    )
    mqtt_topic = fields.Char(
        string="MQTT Topic Prefix",
        required=True,
        tracking=True,
        help="Topic prefix the meter publishes under, without wildcards, "
        "e.g. shellypmminig3-48f6eeb73a1c or shellies/shellyplug-s-7C87CEB4A1B2.",
    )
    parser_type = fields.Selection(
        PARSER_TYPES,
        required=True,
        default="shelly_gen2",
        tracking=True,
        help="How the meter's messages are read.",
    )
    channel = fields.Char(
        help="Component that carries the power, e.g. pm1:0, switch:0, em1:0 "
        "(Gen1: relay/0 or emeter/0). Empty: the first component that reports power.",
    )
    power_path = fields.Char(
        help="For generic JSON: dotted path to the power value in W, e.g. sensor.power.",
    )

    # Session detection (SPEC section 5)
    session_strategy = fields.Selection(
        SESSION_STRATEGIES,
        required=True,
        default="power_threshold",
        help="How sessions are detected from the readings.",
    )
    standby_threshold_w = fields.Float(
        string="Standby Threshold (W)",
        default=20.0,
        tracking=True,
        help="From this power on the machine counts as switched on (standby).",
    )
    working_threshold_w = fields.Float(
        string="Working Threshold (W)",
        default=100.0,
        tracking=True,
        help="From this power on the machine counts as working. "
        "Must be at least the standby threshold.",
    )
    start_debounce_s = fields.Integer(
        string="Start Debounce (s)",
        default=3,
        help="Power must stay above the standby threshold this long before a session "
        "starts. The session then starts at the first reading above it.",
    )
    stop_debounce_s = fields.Integer(
        string="Stop Debounce (s)",
        default=15,
        help="Power must stay below the standby threshold this long before a session "
        "stops. The session then ends at the first reading below it.",
    )
    message_timeout_s = fields.Integer(
        string="Message Timeout (s)",
        default=300,
        help="A running session times out when the meter sends nothing for this long. "
        "Shelly meters report on change, so a steady load may be silent for a minute.",
    )
    heartbeat_interval_s = fields.Integer(
        string="Heartbeat Interval (s)",
        default=300,
        help="How often the totals of a running session are written.",
    )
    max_clock_skew_s = fields.Integer(
        string="Max Clock Skew (s)",
        default=60,
        help="The meter's own timestamp is used when it is this close to the receive "
        "time; otherwise the receive time.",
    )

    # Billing (SPEC section 7)
    billing_unit_s = fields.Integer(
        string="Billing Unit (s)",
        default=60,
        tracking=True,
        help="Length of one billed unit in seconds, e.g. 60 (minutes) or 900 (quarter hours).",
    )
    billing_unit_min = fields.Float(
        string="Billing Unit (min)",
        digits=(12, 2),
        compute="_compute_billing_unit_min",
        inverse="_inverse_billing_unit_min",
        help="Length of one billed unit in minutes, e.g. 1 (minutes) or 15 (quarter hours).",
    )
    billing_rounding = fields.Selection(
        BILLING_ROUNDINGS,
        string="Rounding",
        required=True,
        default="up",
        tracking=True,
        help="How the billable time is rounded to whole units.",
    )
    billing_min_units = fields.Integer(
        string="Minimum Units",
        default=0,
        tracking=True,
        help="A session with billable time is billed at least this many units.",
    )
    bill_standby = fields.Boolean(
        default=False,
        tracking=True,
        help="Also bill the time the machine was on but not working.",
    )
    standby_rate = fields.Float(
        string="Standby Share",
        default=1.0,
        digits=(3, 2),
        tracking=True,
        help="Share of the price charged for standby time: 1 bills it like working "
        "time, 0.5 at half the price.",
    )
    product_id = fields.Many2one(
        "product.product",
        check_company=True,
        domain=[("type", "=", "service")],
        tracking=True,
        help="Service product the machine time is sold as.",
    )
    currency_id = fields.Many2one(
        "res.currency",
        compute="_compute_currency_id",
        store=True,
        readonly=False,
        required=True,
        precompute=True,
    )
    # Float, not Monetary: a price per second or minute often needs more decimals
    # than the currency has; the amount is rounded to the currency.
    price_unit = fields.Float(
        string="Price per Unit",
        digits="Product Price",
        compute="_compute_price_unit",
        store=True,
        readonly=False,
        precompute=True,
        tracking=True,
        help="Price of one billing unit, in the device's currency; taken from the "
        "product's sales price.",
    )
    partner_id = fields.Many2one(
        "res.partner",
        string="Default Customer",
        check_company=True,
        tracking=True,
        help="Customer new sessions of this machine are assigned to.",
    )

    user_id = fields.Many2one(
        "res.users",
        string="Responsible",
        default=lambda self: self.env.user,
        tracking=True,
        help="Receives the alerts of this machine as activities.",
    )
    alert_standby_min = fields.Integer(
        string="Standby Alert (min)",
        default=0,
        help="Alert the responsible user when the machine stays in standby this many "
        "minutes during a session. 0: no alert.",
    )
    alert_session_max_h = fields.Float(
        string="Session Alert (h)",
        default=0.0,
        help="Alert the responsible user when a session runs longer than this. 0: no alert.",
    )

    location = fields.Char(
        tracking=True,
        help="Where the machine stands (a room, a workshop); the board filters on it.",
    )
    out_of_order = fields.Boolean(
        string="Out of Order",
        tracking=True,
        help="The machine must not be used (broken, in maintenance); marked on the board.",
    )
    out_of_order_reason = fields.Char(string="Out-of-Order Reason", tracking=True)

    # Live state, written by the ingestion
    online = fields.Boolean(readonly=True, copy=False)
    last_seen = fields.Datetime(readonly=True, copy=False)
    current_power_w = fields.Float(string="Current Power (W)", readonly=True, copy=False)
    current_state = fields.Selection(SESSION_STATES, readonly=True, copy=False, default="idle")
    running_session_id = fields.Many2one("mqtt.session", readonly=True, copy=False)
    # Per live field, the (seq, epoch) of the newest event applied to it, so that an
    # older event arriving late never overwrites a newer state.
    live_marks = fields.Json(readonly=True, copy=False, groups="base.group_system")
    engine_state = fields.Json(
        readonly=True,
        copy=False,
        groups="base.group_system",
        help="Snapshot of the session engine for this device, checkpointed by the "
        "ingestion runtime and restored on takeover.",
    )

    session_ids = fields.One2many("mqtt.session", "device_id", readonly=True)
    session_count = fields.Integer(compute="_compute_session_totals")
    total_duration_h = fields.Float(string="Total Hours", compute="_compute_session_totals")
    total_working_h = fields.Float(string="Working Hours", compute="_compute_session_totals")
    total_standby_h = fields.Float(string="Standby Hours", compute="_compute_session_totals")
    total_energy_wh = fields.Float(string="Energy (Wh)", compute="_compute_session_totals")
    total_energy_kwh = fields.Float(
        string="Total Energy (kWh)", digits=(16, 2), compute="_compute_session_totals"
    )
    amount_to_bill = fields.Monetary(
        compute="_compute_session_totals",
        help="Ended sessions to bill, without those held back (no product, to review).",
    )
    held_session_count = fields.Integer(
        string="Sessions Held Back",
        compute="_compute_session_totals",
        help="Ended sessions to bill that are kept out of the amount to bill: timed out "
        "and not reviewed yet, or without a product.",
    )

    _sql_constraints = [
        (
            "device_id_company_uniq",
            "unique(company_id, device_id)",
            "A device with this Device ID already exists in this company.",
        ),
    ]

    @api.depends("company_id")
    def _compute_currency_id(self):
        for device in self:
            device.currency_id = (device.company_id or self.env.company).currency_id

    @api.depends("billing_unit_s")
    def _compute_billing_unit_min(self):
        for device in self:
            device.billing_unit_min = device.billing_unit_s / 60

    def _inverse_billing_unit_min(self):
        for device in self:
            device.billing_unit_s = round(device.billing_unit_min * 60)

    @api.depends("product_id")
    def _compute_price_unit(self):
        for device in self:
            if device.product_id:
                device.price_unit = device.product_id.lst_price
            elif not device.price_unit:
                device.price_unit = 0.0

    def _compute_session_totals(self):
        groups = self.env["mqtt.session"]._read_group(
            [("device_id", "in", self.ids)],
            ["device_id"],
            [
                "__count",
                "total_duration_s:sum",
                "working_duration_s:sum",
                "standby_duration_s:sum",
                "energy_wh:sum",
            ],
        )
        totals = {device.id: values for device, *values in groups}
        to_bill, held = {}, {}
        for device, hold, amount, count in self.env["mqtt.session"]._read_group(
            [
                ("device_id", "in", self.ids),
                ("billing_state", "=", "to_bill"),
                ("status", "!=", "running"),
            ],
            ["device_id", "billing_hold"],
            ["amount:sum", "__count"],
        ):
            if hold:
                held[device] = held.get(device, 0) + count
            else:
                to_bill[device] = amount
        for device in self:
            count, total_s, working_s, standby_s, energy = totals.get(
                device._origin.id, (0, 0.0, 0.0, 0.0, 0.0)
            )
            device.session_count = count
            device.total_duration_h = total_s / 3600
            device.total_working_h = working_s / 3600
            device.total_standby_h = standby_s / 3600
            device.total_energy_wh = energy
            device.total_energy_kwh = energy / 1000
            device.amount_to_bill = to_bill.get(device._origin, 0.0)
            device.held_session_count = held.get(device._origin, 0)

    @api.constrains(
        "standby_threshold_w",
        "working_threshold_w",
        "start_debounce_s",
        "stop_debounce_s",
        "message_timeout_s",
        "heartbeat_interval_s",
        "max_clock_skew_s",
    )
    def _check_session_parameters(self):
        for device in self:
            if device.standby_threshold_w < 0 or device.working_threshold_w < 0:
                raise ValidationError(
                    _("%(device)s: power thresholds must not be negative.", device=device.name)
                )
            if device.working_threshold_w < device.standby_threshold_w:
                raise ValidationError(
                    _(
                        "%(device)s: the working threshold (%(working)s W) must be at least "
                        "the standby threshold (%(standby)s W).",
                        device=device.name,
                        working=device.working_threshold_w,
                        standby=device.standby_threshold_w,
                    )
                )
            if (
                device.start_debounce_s < 0
                or device.stop_debounce_s < 0
                or device.max_clock_skew_s < 0
            ):
                raise ValidationError(
                    _(
                        "%(device)s: debounce times and clock skew must not be negative.",
                        device=device.name,
                    )
                )
            if device.message_timeout_s <= 0 or device.heartbeat_interval_s <= 0:
                raise ValidationError(
                    _(
                        "%(device)s: message timeout and heartbeat interval must be positive.",
                        device=device.name,
                    )
                )

    @api.constrains("billing_unit_s", "billing_min_units", "standby_rate", "price_unit")
    def _check_billing_parameters(self):
        for device in self:
            if device.billing_unit_s <= 0:
                raise ValidationError(
                    _(
                        "%(device)s: the billing unit must be at least one second.",
                        device=device.name,
                    )
                )
            if device.billing_min_units < 0:
                raise ValidationError(
                    _("%(device)s: the minimum units must not be negative.", device=device.name)
                )
            if not 0 <= device.standby_rate <= 1:
                raise ValidationError(
                    _(
                        "%(device)s: the standby share must be between 0 and 1 "
                        "(0 %% to 100 %% of the price).",
                        device=device.name,
                    )
                )
            if device.price_unit < 0:
                raise ValidationError(
                    _("%(device)s: the price per unit must not be negative.", device=device.name)
                )

    @api.constrains("mqtt_topic", "parser_type", "channel", "power_path", "device_id")
    def _check_engine_config(self):
        for device in self:
            if device.mqtt_topic and any(char in device.mqtt_topic for char in "+#"):
                raise ValidationError(
                    _(
                        "%(device)s: the MQTT topic prefix must not contain the wildcards + or #.",
                        device=device.name,
                    )
                )
            if device.parser_type == "json_path" and not device.power_path:
                raise ValidationError(
                    _(
                        "%(device)s: a generic JSON device needs a power path.",
                        device=device.name,
                    )
                )
            # Whatever the checks above miss, the engine would refuse at runtime.
            try:
                device._ows_engine_config()
            except ConfigError as exc:
                raise ValidationError(
                    _("%(device)s: %(error)s", device=device.name, error=exc)
                ) from exc

    @api.constrains("mqtt_topic")
    def _check_mqtt_topic_owned_once(self):
        """A topic belongs to one device: no prefix may equal or nest in another's.

        Checked across all companies and archived devices too: the leader listens
        to one broker for the whole database, and an archived device may come back.
        Prefixes nest path segment by segment (``a/b`` in ``a``, not ``ab`` in ``a``).
        """
        self.env["mqtt.device"].flush_model(["mqtt_topic", "name", "device_id", "company_id"])
        for device in self:
            prefix = (device.mqtt_topic or "").strip("/")
            if not prefix:
                continue
            segments = prefix.split("/")
            ancestors = ["/".join(segments[:count]) for count in range(1, len(segments) + 1)]
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM mqtt_device WHERE id != %s AND "
                    "(btrim(mqtt_topic, '/') = ANY(%s) OR btrim(mqtt_topic, '/') LIKE %s) "
                    "ORDER BY id LIMIT 1",
                    device.id,
                    ancestors,
                    escaped + "/%",
                )
            )
            row = self.env.cr.fetchone()
            if row is None:
                continue
            other = self.sudo().with_context(active_test=False).browse(row[0])
            raise ValidationError(
                _(
                    "%(device)s: the MQTT topic prefix %(topic)s overlaps with %(other_topic)s "
                    "of the device %(other)s (%(other_id)s, %(company)s%(archived)s). A topic "
                    "prefix must not equal or contain another device's.",
                    device=device.name,
                    topic=prefix,
                    other_topic=other.mqtt_topic.strip("/"),
                    other=other.name,
                    other_id=other.device_id,
                    company=other.company_id.name,
                    archived="" if other.active else _(", archived"),
                )
            )

    def _ows_fed_by_mqtt(self):
        """The devices of ``self`` whose events belong to the MQTT runtime's engine.

        Such a device's sessions and live state follow the engine's per-device
        sequence (payload ``seq``); an event from elsewhere with a higher one would
        freeze them. A device belongs to the engine once the engine has run it (it
        has a snapshot, kept even when archived), and while it is active with a
        broker configured (the leader listens to it, even before its first message).
        """
        if not self:
            return self
        broker = (
            self.env["ir.config_parameter"].sudo().get_param("ows_iot.mqtt_host") or ""
        ).strip()
        self.flush_model(["engine_state", "active"])
        self.env.cr.execute(
            SQL(
                "SELECT id FROM mqtt_device WHERE id = ANY(%s) "
                "AND (engine_state IS NOT NULL OR (%s AND active IS TRUE))",
                self.ids,
                bool(broker),
            )
        )
        return self.browse(row[0] for row in self.env.cr.fetchall())

    @api.model
    def _ows_normalize_vals(self, vals):
        for key in ("device_id", "mqtt_topic", "channel", "power_path"):
            if isinstance(vals.get(key), str):
                vals[key] = vals[key].strip()
        if isinstance(vals.get("mqtt_topic"), str):
            vals["mqtt_topic"] = vals["mqtt_topic"].strip("/")
        return vals

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._ows_normalize_vals(vals)
        return super().create(vals_list)

    def write(self, vals):
        self._ows_normalize_vals(vals)
        result = super().write(vals)
        terms = set(BILLING_TERMS).intersection(vals)
        if terms:
            # Sessions not yet billed follow the device's terms; billed and free
            # sessions keep the terms they were settled with.
            sessions = (
                self.env["mqtt.session"]
                .sudo()
                .search([("device_id", "in", self.ids), ("billing_state", "=", "to_bill")])
            )
            for device in self:
                device_sessions = sessions.filtered(lambda s, d=device: s.device_id == d)
                if device_sessions:
                    device_sessions.with_context(ows_iot_ingest=True).write(
                        device._ows_billing_terms()
                    )
        return result

    def _ows_billing_terms(self):
        """The billing terms a session of this device is settled with."""
        self.ensure_one()
        values = {}
        for name in BILLING_TERMS:
            value = self[name]
            values[name] = value.id if isinstance(value, models.BaseModel) else value
        return values

    def _ows_engine_config(self):
        """The device's session configuration as the engine takes it."""
        self.ensure_one()
        return DeviceConfig.from_dict(
            {name: (self[name] if self[name] is not False else None) for name in ENGINE_FIELDS}
        )

    def action_view_sessions(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Sessions of %(device)s", device=self.name),
            "res_model": "mqtt.session",
            "view_mode": "list,form,pivot,graph",
            "domain": [("device_id", "=", self.id)],
            "context": {"default_device_id": self.id},
        }

    # -- ingestion -------------------------------------------------------------------

    def _ows_running_sessions(self):
        """device -> its latest running session (empty when none)."""
        running = (
            self.env["mqtt.session"]
            .sudo()
            .search(
                [("device_id", "in", self.ids), ("status", "=", "running")],
                order="start_time desc, id desc",
            )
        )
        latest = {}
        for session in running:
            latest.setdefault(session.device_id, session)
        return {device: latest.get(device, running.browse()) for device in self}

    # -- live views ------------------------------------------------------------------
    # The ingestion runtime calls _ows_notify_live inside each commit; the bus sends
    # the notification once that transaction commits, to the channel of the IoT
    # users' group (every IoT user and manager, never a portal user). It names what
    # changed and carries the devices' new live values; the web client reloads what
    # it shows of them through the ORM, so record rules still decide what it sees.

    @api.model
    def _ows_live_payload(self, device_ids, session_uuids):
        """The notification of one commit: the devices it changed, with their live
        values, and the sessions it started, updated or ended."""
        Session = self.env["mqtt.session"].sudo().with_context(active_test=False)
        sessions = Session.search([("session_id", "in", sorted(session_uuids))], order="id")
        devices = (
            self.sudo()
            .with_context(active_test=False)
            .browse(sorted(set(device_ids) | set(sessions.device_id.ids)))
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
