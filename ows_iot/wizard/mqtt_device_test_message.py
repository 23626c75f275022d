# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import UTC, datetime

from odoo import _, api, fields, models

from ..services.config import ConfigError
from ..services.trial import try_message

# A topic to start from, per parser type ({t} is the device's topic).
SAMPLE_TOPICS = {
    "shelly_gen2": "{t}/events/rpc",
    "shelly_gen1": "{t}/relay/0/power",
    "tasmota": "tele/{t}/SENSOR",
    "zigbee2mqtt": "{t}",
    "esphome": "{t}/sensor/power/state",
    "json_path": "{t}",
}


class MqttDeviceTestMessage(models.TransientModel):
    _name = "mqtt.device.test.message"
    _description = "Test a Message"

    device_id = fields.Many2one("mqtt.device", required=True, ondelete="cascade")
    topic = fields.Char(required=True)
    payload = fields.Text(help="The message as the meter publishes it (JSON or plain text).")
    tested = fields.Boolean(readonly=True)
    result_kind = fields.Selection(
        [
            ("power", "Power reading"),
            ("liveness", "Sign of life, no power"),
            ("online", "Online"),
            ("offline", "Offline (last will)"),
            ("drop", "Dropped"),
        ],
        string="Result",
        readonly=True,
    )
    result_power_w = fields.Float(string="Power (W)", readonly=True, digits=(12, 2))
    result_timestamp = fields.Datetime(
        string="Device Timestamp",
        readonly=True,
        help="The device's own time in the message; empty: the receive time is used.",
    )
    result_component = fields.Char(string="Component", readonly=True)
    result_phases = fields.Char(string="Phases", readonly=True)
    result_drop = fields.Char(string="Drop Reason", readonly=True)

    @api.model
    def _prepare_test_message_vals(self, device):
        """Values of a new test for ``device``: a topic to start from."""
        sample = SAMPLE_TOPICS.get(device.parser_type, "{t}")
        return {"device_id": device.id, "topic": sample.format(t=device.mqtt_topic or "")}

    def _action_reopen(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Test a message"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }

    def _ows_drop_reasons(self):
        """What a dropped message's reason means, for the form."""
        return {
            "unknown_topic": _("the topic is not this device's, or it is a command to the device"),
            "wrong_type": _("the value is not a number (a text or a boolean is no power)"),
            "malformed_json": _("the payload is not valid JSON"),
            "non_finite": _("the power is NaN or infinite"),
            "absurd_power": _("the power is beyond ±100 kW"),
            "bad_timestamp": _("the device's timestamp is not a time"),
            "oversized": _("the payload is larger than 64 KiB"),
        }

    def _ows_result_vals(self, result):
        """Form values of a parser result (see services.trial.try_message)."""
        vals = {
            "tested": True,
            "result_power_w": 0.0,
            "result_timestamp": False,
            "result_component": result.get("component") or False,
            "result_phases": False,
            "result_drop": False,
        }
        if result["drop"]:
            reason = result["drop"]
            explanation = self._ows_drop_reasons().get(reason)
            vals["result_kind"] = "drop"
            vals["result_drop"] = f"{reason}: {explanation}" if explanation else reason
        elif result["online"] is not None:
            vals["result_kind"] = "online" if result["online"] else "offline"
        elif result["power_w"] is not None:
            vals["result_kind"] = "power"
            vals["result_power_w"] = result["power_w"]
        else:
            vals["result_kind"] = "liveness"
        if result["device_ts"] is not None:
            moment = datetime.fromtimestamp(result["device_ts"], UTC).replace(tzinfo=None)
            vals["result_timestamp"] = moment.replace(microsecond=0)
        if result["phases"]:
            vals["result_phases"] = ", ".join(
                f"{name}: {watts:g} W" for name, watts in sorted(result["phases"].items())
            )
        return vals

    def action_test(self):
        self.ensure_one()
        try:
            config = self.device_id._ows_engine_config()
        except ConfigError as exc:
            vals = {"tested": True, "result_kind": "drop", "result_drop": str(exc)}
        else:
            payload = (self.payload or "").encode()
            vals = self._ows_result_vals(try_message(config, self.topic or "", payload))
        self.write(vals)
        return self._action_reopen()
