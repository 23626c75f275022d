# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from .ows_iot_event import DEFAULT_RETENTION_DAYS, RETENTION_PARAM

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_KEEPALIVE = 60
DEFAULT_QOS = 1


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    ows_iot_mqtt_host = fields.Char(
        string="MQTT Broker Host",
        config_parameter="ows_iot.mqtt_host",
        help="Host name or address of the MQTT broker. Empty: no broker is contacted.",
    )
    ows_iot_mqtt_port = fields.Integer(
        string="MQTT Broker Port",
        config_parameter="ows_iot.mqtt_port",
        default=DEFAULT_PORT,
        help="Usually 1883, or 8883 with TLS.",
    )
    ows_iot_mqtt_username = fields.Char(
        string="MQTT Username", config_parameter="ows_iot.mqtt_username"
    )
    ows_iot_mqtt_password = fields.Char(
        string="MQTT Password",
        config_parameter="ows_iot.mqtt_password",
        groups="base.group_system",
    )
    ows_iot_mqtt_tls = fields.Boolean(
        string="Use TLS", config_parameter="ows_iot.mqtt_tls", help="Encrypt the connection."
    )
    ows_iot_mqtt_ca_file = fields.Char(
        string="CA Certificate File",
        config_parameter="ows_iot.mqtt_ca_file",
        help="Path on the Odoo server to the CA certificate(s) that signed the broker's "
        "certificate. Empty: the system's trusted CAs.",
    )
    ows_iot_mqtt_cert_file = fields.Char(
        string="Client Certificate File",
        config_parameter="ows_iot.mqtt_cert_file",
        help="Path on the Odoo server to a client certificate, if the broker requires one.",
    )
    ows_iot_mqtt_key_file = fields.Char(
        string="Client Key File",
        config_parameter="ows_iot.mqtt_key_file",
        help="Path on the Odoo server to the client certificate's private key.",
    )
    ows_iot_mqtt_client_id = fields.Char(
        string="MQTT Client ID",
        config_parameter="ows_iot.mqtt_client_id",
        help="Fixed client id of the connection, which keeps the broker session across "
        "restarts. Empty: derived from the database.",
    )
    ows_iot_mqtt_keepalive = fields.Integer(
        string="Keepalive (s)", config_parameter="ows_iot.mqtt_keepalive", default=DEFAULT_KEEPALIVE
    )
    # Only QoS 1: a QoS 2 message is acknowledged on arrival, before what it produced
    # is committed, so a crash would lose it; QoS 0 is never redelivered.
    ows_iot_mqtt_qos = fields.Selection(
        [("1", "1 - at least once")],
        string="MQTT QoS",
        config_parameter="ows_iot.mqtt_qos",
        default=str(DEFAULT_QOS),
        help="Quality of service of the subscriptions: always 1, so that a message is "
        "acknowledged only after it is saved. Devices must publish at QoS 1 too: a "
        "message published at QoS 0 is lost if Odoo stops before saving it.",
    )

    ows_iot_discovery = fields.Boolean(
        string="Meter Discovery",
        config_parameter="ows_iot.discovery",
        help="Listen to the announcements of meters and list those not configured yet "
        "under IoT > Configuration > Discovered meters.",
    )
    ows_iot_event_retention_days = fields.Integer(
        string="Keep heartbeats (days)",
        config_parameter=RETENTION_PARAM,
        default=DEFAULT_RETENTION_DAYS,
        help="Heartbeat and level-change events of finished sessions older than this are "
        "removed every night; session starts, stops, timeouts and online notices are kept, "
        "and so are the sessions' totals. 0 keeps every event.",
    )

    @api.model
    def get_values(self):
        res = super().get_values()
        # Databases set up when QoS 0 and 2 were offered may still store them.
        res["ows_iot_mqtt_qos"] = str(DEFAULT_QOS)
        return res

    @api.constrains("ows_iot_mqtt_port", "ows_iot_mqtt_keepalive", "ows_iot_event_retention_days")
    def _check_ows_iot_mqtt(self):
        for settings in self:
            if not 1 <= settings.ows_iot_mqtt_port <= 65535:
                raise ValidationError(_("The MQTT broker port must be between 1 and 65535."))
            if settings.ows_iot_mqtt_keepalive <= 0:
                raise ValidationError(_("The MQTT keepalive must be a positive number of seconds."))
            if settings.ows_iot_event_retention_days < 0:
                raise ValidationError(
                    _("The heartbeat retention must be 0 (keep all) or a number of days.")
                )

    def action_ows_iot_test_connection(self):
        """Connect once with the settings as entered, unsaved; the leader's own
        connection is left alone (the test uses a client id of its own)."""
        self.ensure_one()
        # Imported here: the runtime is only needed for this button.
        from ..runtime.supervisor import broker_settings, make_settings
        from ..services.broker_check import check_connection
        from ..services.mqtt_client import SettingsError

        values = broker_settings(self.env)
        tls = self.ows_iot_mqtt_tls
        values.update(
            host=(self.ows_iot_mqtt_host or "").strip(),
            port=self.ows_iot_mqtt_port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
            username=self.ows_iot_mqtt_username or None,
            password=self.sudo().ows_iot_mqtt_password or None,
            tls=tls,
            ca_file=self.ows_iot_mqtt_ca_file or None,
            cert_file=self.ows_iot_mqtt_cert_file or None,
            key_file=self.ows_iot_mqtt_key_file or None,
            client_id=self.ows_iot_mqtt_client_id or values["client_id"],
            keepalive=self.ows_iot_mqtt_keepalive or DEFAULT_KEEPALIVE,
        )
        try:
            result = check_connection(make_settings(values))
        except SettingsError as exc:
            ok, message = False, _("The settings cannot work: %(error)s", error=exc)
        else:
            ok = result.ok
            reasons = {
                None: _("Connection works"),
                "credentials": _("Wrong user name or password"),
                "tls": _("TLS error"),
                "refused": _("Connection refused"),
                "unreachable": _("Broker not reachable"),
                "timeout": _("No answer"),
                "protocol": _("Refused by the broker"),
            }
            message = f"{reasons[result.reason]}: {result.detail}"
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("MQTT broker"),
                "message": message,
                "type": "success" if ok else "danger",
                "sticky": not ok,
            },
        }

    @api.model
    def _ows_iot_broker_settings(self):
        """The broker settings as the MQTT client takes them, defaults applied."""
        params = self.env["ir.config_parameter"].sudo()

        def integer(key, default):
            try:
                return int(params.get_param(key) or default)
            except ValueError:
                return default

        tls = params.get_param("ows_iot.mqtt_tls") in ("True", "true", "1")
        database_uuid = params.get_param("database.uuid") or self.env.cr.dbname
        return {
            "host": (params.get_param("ows_iot.mqtt_host") or "").strip(),
            "port": integer("ows_iot.mqtt_port", DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
            "username": params.get_param("ows_iot.mqtt_username") or None,
            "password": params.get_param("ows_iot.mqtt_password") or None,
            "tls": tls,
            "ca_file": params.get_param("ows_iot.mqtt_ca_file") or None,
            "cert_file": params.get_param("ows_iot.mqtt_cert_file") or None,
            "key_file": params.get_param("ows_iot.mqtt_key_file") or None,
            "client_id": params.get_param("ows_iot.mqtt_client_id")
            or f"ows-iot-{database_uuid[:12]}",
            "keepalive": integer("ows_iot.mqtt_keepalive", DEFAULT_KEEPALIVE),
            # Whatever an older version stored (0 or 2): the only QoS that is acked
            # after the commit.
            "qos": DEFAULT_QOS,
        }
