# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import json

from odoo.tests import Form, tagged

from ..services.ingestor import Ingestor
from ..services.parsers import discover
from .common import T0, OwsIotCase

PRO3EM = "shellypro3em-08f9e0e5a1b2"
FULL_STATUS = json.dumps(
    {
        "src": PRO3EM,
        "dst": f"{PRO3EM}/events",
        "method": "NotifyFullStatus",
        "params": {
            "ts": T0,
            "em1:0": {"id": 0, "act_power": 400.0, "voltage": 230.2},
            "em1:1": {"id": 1, "act_power": 440.0, "voltage": 230.1},
            "em1:2": {"id": 2, "act_power": 210.0, "voltage": 229.4},
            "sys": {"mac": "08F9E0E5A1B2", "uptime": 1234},
        },
    }
).encode()
TASMOTA_CONFIG = json.dumps(
    {
        "ip": "192.168.1.30",
        "dn": "Compressor",
        "hn": "tasmota-A1B2C3-0451",
        "mac": "A4CF12A1B2C3",
        "md": "Sonoff Pow R2",
        "t": "tasmota_A1B2C3",
        "ft": "%prefix%/%topic%/",
        "tp": ["cmnd", "stat", "tele"],
        "ver": 1,
    }
).encode()


@tagged("post_install", "-at_install")
class TestDiscovery(OwsIotCase):
    def _heard(self, *messages):
        ingestor = Ingestor([])
        ingestor.discovery = True
        for topic, payload in messages:
            ingestor.discover(topic, payload, T0)
        return self.env["ows.iot.discovered.meter"]._ows_record(ingestor.take_discovered())

    def test_discovered_meters_are_listed_until_a_device_is_created_for_them(self):
        meters = self._heard(
            (f"{PRO3EM}/events/rpc", FULL_STATUS),
            ("tasmota/discovery/A4CF12A1B2C3/config", TASMOTA_CONFIG),
        )
        self.assertEqual(len(meters), 2)
        pro3em = meters.filtered(lambda m: m.parser_type == "shelly_gen2")
        self.assertEqual(pro3em.mqtt_topic, PRO3EM)
        self.assertEqual(pro3em.channel, "em1:*")
        self.assertEqual(pro3em.components, "em1:0, em1:1, em1:2")
        Meter = self.env["ows.iot.discovered.meter"]
        self.assertEqual(Meter.search([("is_configured", "=", False)]) & meters, meters)

        action = pro3em.action_create_device()
        with Form(self.env["mqtt.device"].with_context(**action["context"])) as form:
            self.assertEqual(form.parser_type, "shelly_gen2")
            self.assertEqual(form.mqtt_topic, PRO3EM)
            self.assertEqual(form.channel, "em1:*")
            form.name = "CNC router"
        device = form.record
        self.assertEqual(device.device_id, PRO3EM)
        self.assertTrue(pro3em.is_configured)
        self.assertEqual(Meter.search([("is_configured", "=", False)]) & meters, meters - pro3em)

        # The device created runs: its three phases are summed.
        ingestor = Ingestor([device._ows_engine_config()])
        ingestor.process(f"{PRO3EM}/events/rpc", FULL_STATUS, T0)
        self.assertAlmostEqual(ingestor.engines[PRO3EM].power, 1050.0)

        tasmota = meters - pro3em
        action = tasmota.action_create_device()
        with Form(self.env["mqtt.device"].with_context(**action["context"])) as form:
            self.assertEqual(form.parser_type, "tasmota")
            self.assertEqual(form.full_topic, "%prefix%/%topic%/")
        self.assertEqual(
            Ingestor([form.record._ows_engine_config()]).topic_filters(),
            {"tele/tasmota_A1B2C3/#", "stat/tasmota_A1B2C3/#"},
        )

    def test_a_meter_heard_again_is_updated_in_place(self):
        first = self._heard(("tasmota/discovery/A4CF12A1B2C3/config", TASMOTA_CONFIG))
        again = self._heard(("tasmota/discovery/A4CF12A1B2C3/config", TASMOTA_CONFIG))
        self.assertEqual(first, again)
        self.assertEqual(discover("tasmota/discovery/A4CF12A1B2C3/config", b"{oops"), [])

    def test_discovery_is_a_setting(self):
        Meter = self.env["ows.iot.discovered.meter"]
        self.assertFalse(Meter._ows_discovery_enabled())
        settings = self.env["res.config.settings"].create({"ows_iot_discovery": True})
        settings.execute()
        self.assertTrue(Meter._ows_discovery_enabled())


@tagged("post_install", "-at_install")
class TestTestMessage(OwsIotCase):
    def _test(self, device, topic, payload):
        action = device.action_open_test_message()
        wizard = self.env["mqtt.device.test.message"].browse(action["res_id"])
        wizard.write({"topic": topic, "payload": payload})
        wizard.action_test()
        return wizard

    def test_the_form_shows_what_the_parser_reads(self):
        device = self.Device.create(
            {
                "name": "Compressor",
                "device_id": "compressor",
                "mqtt_topic": "tasmota_A1B2C3",
                "parser_type": "tasmota",
            }
        )
        action = device.action_open_test_message()
        wizard = self.env["mqtt.device.test.message"].browse(action["res_id"])
        self.assertEqual(wizard.topic, "tele/tasmota_A1B2C3/SENSOR")
        wizard = self._test(
            device, "tele/tasmota_A1B2C3/SENSOR", '{"ENERGY": {"Power": [100, 200]}}'
        )
        self.assertEqual((wizard.result_kind, wizard.result_power_w), ("power", 300.0))
        self.assertEqual(wizard.result_component, "ENERGY.Power")
        wizard = self._test(device, "tele/tasmota_A1B2C3/LWT", "Offline")
        self.assertEqual(wizard.result_kind, "offline")
        wizard = self._test(device, "tele/other/SENSOR", "{}")
        self.assertEqual(wizard.result_kind, "drop")
        self.assertTrue(wizard.result_drop.startswith("unknown_topic"))

    def test_a_path_reading_a_boolean_or_a_text_is_refused(self):
        device = self.Device.create(
            {
                "name": "PLC",
                "device_id": "plc-1",
                "mqtt_topic": "factory/plc1",
                "parser_type": "json_path",
                "power_path": "$.running",
            }
        )
        for payload in ('{"running": true}', '{"running": "1"}'):
            wizard = self._test(device, "factory/plc1", payload)
            self.assertEqual(wizard.result_kind, "drop")
            self.assertTrue(wizard.result_drop.startswith("wrong_type"))
        wizard = self._test(device, "factory/plc1", '{"running": 1200.5}')
        self.assertEqual((wizard.result_kind, wizard.result_power_w), ("power", 1200.5))

    def test_gen2_reading_keeps_the_device_timestamp(self):
        frame = {"method": "NotifyStatus", "params": {"ts": T0, "switch:0": {"apower": 12.5}}}
        wizard = self._test(self.device, f"{self.device.mqtt_topic}/events/rpc", json.dumps(frame))
        self.assertEqual(wizard.result_kind, "power")
        self.assertEqual(wizard.result_component, "switch:0")
        self.assertEqual(wizard.result_timestamp.isoformat(), "2024-06-01T10:00:00")
