# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import UTC, datetime

from odoo import _, api, fields, models

from .mqtt_device import PARSER_TYPES

DISCOVERY_PARAM = "ows_iot.discovery"


class OwsIotDiscoveredMeter(models.Model):
    """A meter that introduced itself on the broker (Shelly announce and full
    status, Tasmota discovery, Zigbee2MQTT's device list).

    The leader keeps what it hears in memory and writes it with its commits, one
    row per meter, updated in place; "Create device" opens a device form filled
    with what the meter said.
    """

    _name = "ows.iot.discovered.meter"
    _description = "Discovered Meter"
    _order = "last_seen desc, id desc"

    key = fields.Char(required=True, readonly=True, index=True, copy=False)
    name = fields.Char(readonly=True)
    model = fields.Char(readonly=True)
    meter_id = fields.Char(string="Meter ID", readonly=True, help="The id the meter announced.")
    parser_type = fields.Selection(PARSER_TYPES, string="Meter Type", readonly=True)
    mqtt_topic = fields.Char(string="MQTT Topic Prefix", readonly=True)
    channel = fields.Char(readonly=True, help="The channel to configure: all phases of a 3EM.")
    full_topic = fields.Char(readonly=True)
    components = fields.Char(
        string="Power Components", readonly=True, help="What the meter reports power on."
    )
    last_seen = fields.Datetime(readonly=True)
    is_configured = fields.Boolean(
        string="Configured",
        compute="_compute_is_configured",
        search="_search_is_configured",
        help="A device with this meter's id or topic exists.",
    )

    _sql_constraints = [
        ("key_unique", "unique(key)", "A meter is listed once."),
    ]

    @api.model
    def _ows_configured(self):
        """(device ids, topic prefixes) of every device, archived ones included."""
        devices = self.env["mqtt.device"].sudo().with_context(active_test=False).search([])
        ids = {d.device_id for d in devices if d.device_id}
        topics = {d.mqtt_topic.strip("/") for d in devices if d.mqtt_topic}
        return ids, topics

    @api.depends("meter_id", "mqtt_topic")
    def _compute_is_configured(self):
        ids, topics = self._ows_configured()
        for meter in self:
            meter.is_configured = meter.meter_id in ids or (meter.mqtt_topic or "") in topics

    def _search_is_configured(self, operator, value):
        if operator not in ("=", "!="):
            raise NotImplementedError(_("Search on Configured supports = and != only."))
        ids, topics = self._ows_configured()
        domain = ["|", ("meter_id", "in", list(ids)), ("mqtt_topic", "in", list(topics))]
        positive = (operator == "=") == bool(value)
        return domain if positive else ["!", *domain]

    @api.model
    def _ows_discovery_enabled(self):
        param = self.env["ir.config_parameter"].sudo().get_param(DISCOVERY_PARAM)
        return str(param or "").strip().lower() in ("1", "true", "yes")

    @api.model
    def _prepare_discovered_vals(self, entry):
        """Row values of one discovery (a dict of services.parsers.Discovered, with
        ``last_seen`` in epoch seconds)."""
        vals = {"key": entry["key"]}
        for name, field in (
            ("name", "name"),
            ("model", "model"),
            ("device_id", "meter_id"),
            ("mqtt_topic", "mqtt_topic"),
            ("channel", "channel"),
            ("full_topic", "full_topic"),
        ):
            if entry.get(name):
                vals[field] = entry[name]
        if entry.get("parser_type") in dict(PARSER_TYPES):
            vals["parser_type"] = entry["parser_type"]
        if entry.get("components"):
            vals["components"] = ", ".join(entry["components"])
        if entry.get("last_seen"):
            moment = datetime.fromtimestamp(entry["last_seen"], UTC).replace(tzinfo=None)
            vals["last_seen"] = moment.replace(microsecond=0)
        return vals

    @api.model
    def _ows_record(self, found):
        """Write what the leader heard since its last commit: one row per meter."""
        if not found:
            return self.browse()
        vals_list = [self._prepare_discovered_vals(entry) for entry in found]
        existing = {
            m.key: m for m in self.sudo().search([("key", "in", [v["key"] for v in vals_list])])
        }
        meters = self.browse()
        for vals in vals_list:
            meter = existing.get(vals["key"])
            if meter:
                meter.write(vals)
            else:
                meter = existing[vals["key"]] = self.sudo().create(vals)
            meters |= meter
        return meters

    def _prepare_device_vals(self):
        """The device form's defaults for this meter."""
        self.ensure_one()
        vals = {
            "name": self.name or self.meter_id or self.mqtt_topic,
            "device_id": self.meter_id or self.mqtt_topic,
            "parser_type": self.parser_type or "shelly_gen2",
            "mqtt_topic": self.mqtt_topic,
        }
        if self.channel:
            vals["channel"] = self.channel
        if self.full_topic and self.parser_type == "tasmota":
            vals["full_topic"] = self.full_topic
        return vals

    def action_create_device(self):
        """Open a new device form filled with what the meter announced."""
        self.ensure_one()
        context = {f"default_{name}": value for name, value in self._prepare_device_vals().items()}
        return {
            "type": "ir.actions.act_window",
            "name": _("New device"),
            "res_model": "mqtt.device",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
            "context": context,
        }
