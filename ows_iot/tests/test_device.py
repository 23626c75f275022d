# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from psycopg2 import IntegrityError

from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..services.config import DeviceConfig
from .common import GEN2, OwsIotCase


@tagged("post_install", "-at_install")
class TestDevice(OwsIotCase):
    def test_defaults_match_the_engine(self):
        device = self.Device.create({"name": "Plug", "device_id": "plug-1", "mqtt_topic": "plug-1"})
        config = device._ows_engine_config()
        self.assertIsInstance(config, DeviceConfig)
        # the engine gets the company's badges (none here)
        self.assertEqual(config, DeviceConfig(device_id="plug-1", mqtt_topic="plug-1", badges=()))
        self.assertEqual(device.company_id, self.env.company)
        self.assertEqual(device.currency_id, self.env.company.currency_id)
        self.assertEqual(device.current_state, "idle")
        self.assertFalse(device.online)

    def test_engine_config_carries_every_setting(self):
        device = self.Device.create(
            {
                "name": "Generic",
                "device_id": " sensor-7 ",
                "mqtt_topic": "/lab/sensor-7/",
                "parser_type": "json_path",
                "power_path": "sensor.power",
                "channel": "",
                "standby_threshold_w": 5,
                "working_threshold_w": 40.5,
                "start_debounce_s": 0,
                "stop_debounce_s": 30,
                "message_timeout_s": 120,
                "heartbeat_interval_s": 60,
                "max_clock_skew_s": 10,
            }
        )
        self.assertEqual(device.device_id, "sensor-7")
        self.assertEqual(device.mqtt_topic, "lab/sensor-7")
        self.assertEqual(
            device._ows_engine_config().to_dict(),
            {
                "device_id": "sensor-7",
                "mqtt_topic": "lab/sensor-7",
                "parser_type": "json_path",
                "channel": None,
                "power_path": "sensor.power",
                "standby_threshold_w": 5.0,
                "working_threshold_w": 40.5,
                "start_debounce_s": 0,
                "stop_debounce_s": 30,
                "message_timeout_s": 120,
                "heartbeat_interval_s": 60,
                "max_clock_skew_s": 10,
                "badge_topic": None,
                "badge_path": None,
                "badges": (),
            },
        )

    def test_constraints_explain_themselves(self):
        cases = [
            (
                {"working_threshold_w": 10, "standby_threshold_w": 20},
                "must be at least the standby",
            ),
            ({"standby_threshold_w": -1, "working_threshold_w": 5}, "must not be negative"),
            ({"start_debounce_s": -1}, "debounce times and clock skew must not be negative"),
            ({"stop_debounce_s": -3}, "debounce times and clock skew must not be negative"),
            ({"message_timeout_s": 0}, "message timeout and heartbeat interval must be positive"),
            ({"heartbeat_interval_s": -60}, "must be positive"),
            ({"billing_unit_s": 0}, "the billing unit must be at least one second"),
            ({"billing_min_units": -1}, "the minimum units must not be negative"),
            ({"standby_rate": 1.5}, "the standby share must be between 0 and 1"),
            ({"standby_rate": -0.1}, "the standby share must be between 0 and 1"),
            ({"price_unit": -2}, "the price per unit must not be negative"),
            ({"mqtt_topic": "shellies/+/relay"}, "must not contain the wildcards"),
            ({"mqtt_topic": "shellies/#"}, "must not contain the wildcards"),
            ({"parser_type": "json_path"}, "a generic JSON device needs a power path"),
            ({"mqtt_topic": "///"}, "mqtt_topic must be a non-empty string"),
        ]
        for vals, message in cases:
            with (
                self.subTest(vals=vals),
                self.assertRaisesRegex(ValidationError, message),
                self.env.cr.savepoint(),
            ):
                self.device.write(vals)
        # the device stayed as it was
        self.assertEqual(self.device.working_threshold_w, 100.0)
        self.assertEqual(self.device.mqtt_topic, GEN2)

    def test_device_id_is_unique_per_company(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.cr.savepoint():
            self.Device.create({"name": "Clone", "device_id": GEN2, "mqtt_topic": "clone"})
        other = self.Device.create(
            {
                "name": "Same meter id, other company",
                "device_id": GEN2,
                "mqtt_topic": "b",
                "company_id": self.company_b.id,
            }
        )
        self.assertEqual(other.device_id, GEN2)

    def test_price_follows_the_product(self):
        product = self.env["product.product"].create(
            {"name": "Laser time", "type": "service", "list_price": 2.25}
        )
        self.device.product_id = product
        self.assertEqual(self.device.price_unit, 2.25)
        self.device.price_unit = 2.0
        self.assertEqual(self.device.price_unit, 2.0, "the price stays editable")

    def test_session_totals(self):
        self.make_session(working=3600, standby=1800)
        self.make_session(working=1800)
        self.make_session(working=60, end=False)
        self.assertEqual(self.device.session_count, 3)
        self.assertAlmostEqual(self.device.total_duration_h, (5400 + 1800 + 60) / 3600)
        self.assertAlmostEqual(self.device.total_working_h, (3600 + 1800 + 60) / 3600)
        self.assertAlmostEqual(self.device.total_standby_h, 0.5)
        # completed sessions to bill: 60 + 30 units at 1.50
        self.assertEqual(self.device.amount_to_bill, 135.0)
        action = self.device.action_view_sessions()
        self.assertEqual(self.Session.search(action["domain"]), self.device.session_ids)

    def test_broker_settings(self):
        Settings = self.env["res.config.settings"]
        defaults = Settings._ows_iot_broker_settings()
        self.assertEqual(defaults["host"], "")
        self.assertEqual(defaults["port"], 1883)
        self.assertEqual(defaults["qos"], 1)
        self.assertEqual(defaults["keepalive"], 60)
        self.assertFalse(defaults["tls"])
        self.assertTrue(defaults["client_id"].startswith("ows-iot-"))
        self.assertLessEqual(len(defaults["client_id"]), 23)

        settings = Settings.with_user(self.admin).create(
            {
                "ows_iot_mqtt_host": " broker.example.com ",
                "ows_iot_mqtt_port": 8883,
                "ows_iot_mqtt_username": "odoo",
                "ows_iot_mqtt_password": "s3cret",
                "ows_iot_mqtt_tls": True,
                "ows_iot_mqtt_ca_file": "/etc/ssl/ows/ca.pem",
                "ows_iot_mqtt_client_id": "ows-iot-test",
                "ows_iot_mqtt_qos": "1",
                "ows_iot_mqtt_keepalive": 30,
            }
        )
        settings.execute()
        params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.get_param("ows_iot.mqtt_host"), "broker.example.com")
        self.assertEqual(params.get_param("ows_iot.mqtt_password"), "s3cret")
        got = Settings._ows_iot_broker_settings()
        self.assertEqual(
            {k: got[k] for k in ("host", "port", "username", "password", "tls", "ca_file")},
            {
                "host": "broker.example.com",
                "port": 8883,
                "username": "odoo",
                "password": "s3cret",
                "tls": True,
                "ca_file": "/etc/ssl/ows/ca.pem",
            },
        )
        self.assertEqual((got["client_id"], got["qos"], got["keepalive"]), ("ows-iot-test", 1, 30))
        self.assertEqual(Settings.with_user(self.admin).create({}).ows_iot_mqtt_password, "s3cret")

        with self.assertRaisesRegex(ValidationError, "port must be between 1 and 65535"):
            Settings.with_user(self.admin).create({"ows_iot_mqtt_port": 70000})

    def test_only_qos_1_is_offered_and_older_values_count_as_1(self):
        Settings = self.env["res.config.settings"].with_user(self.admin)
        qos_field = Settings.fields_get(["ows_iot_mqtt_qos"])["ows_iot_mqtt_qos"]
        self.assertEqual([value for value, _label in qos_field["selection"]], ["1"])
        params = self.env["ir.config_parameter"].sudo()
        for stored in ("0", "2"):
            params.set_param("ows_iot.mqtt_qos", stored)
            # The settings form still opens, showing what the leader uses.
            self.assertEqual(Settings.create({}).ows_iot_mqtt_qos, "1")
            self.assertEqual(Settings._ows_iot_broker_settings()["qos"], 1)

    def test_topic_prefixes_must_not_nest_across_companies_and_archives(self):
        archived = self.Device.create(
            {
                "name": "Old Lathe",
                "device_id": "old-lathe",
                "mqtt_topic": "workshop/lathe",
                "company_id": self.company_b.id,
                "active": False,
            }
        )
        for topic in ("workshop/lathe", "/workshop/lathe/", "workshop", "workshop/lathe/spindle"):
            with (
                self.subTest(topic=topic),
                self.assertRaisesRegex(
                    ValidationError,
                    r"overlaps with workshop/lathe of the device Old Lathe \(old-lathe",
                ),
                self.cr.savepoint(),
            ):
                self.Device.create({"name": "New", "device_id": "new-1", "mqtt_topic": topic})
        # Changing a topic is checked as well, and names the other device.
        with (
            self.assertRaisesRegex(ValidationError, "of the device Shaper Origin"),
            self.cr.savepoint(),
        ):
            archived.write({"mqtt_topic": f"{GEN2}/status"})
        with (
            self.assertRaisesRegex(ValidationError, "of the device Old Lathe"),
            self.cr.savepoint(),
        ):
            self.device_b.write({"mqtt_topic": "workshop"})
        # Nesting goes by path segments: a longer name is another topic.
        for number, topic in enumerate(("workshop/lathe2", "workshop2", "workshop/mill")):
            with self.subTest(topic=topic):
                self.Device.create(
                    {"name": "New", "device_id": f"new-{number}", "mqtt_topic": topic}
                )
        # Two new devices in one batch that clash with each other.
        with self.assertRaisesRegex(ValidationError, "overlaps"), self.cr.savepoint():
            self.Device.create(
                [
                    {"name": "A", "device_id": "a-1", "mqtt_topic": "hall/a"},
                    {"name": "B", "device_id": "b-1", "mqtt_topic": "hall"},
                ]
            )
