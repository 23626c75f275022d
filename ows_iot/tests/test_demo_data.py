# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The demo data leaves its machines ready for new jobs (the Docker demo's simulator)."""

from odoo import fields
from odoo.tests import TransactionCase, tagged

from ..services.ingestor import Ingestor

DEMO_DEVICES = ("ows_iot.mqtt_device_demo_shaper_origin", "ows_iot.mqtt_device_demo_printer")


@tagged("post_install", "-at_install")
class TestDemoData(TransactionCase):
    def test_the_first_job_after_the_demo_data_starts_a_new_session(self):
        devices = [self.env.ref(xmlid, raise_if_not_found=False) for xmlid in DEMO_DEVICES]
        devices = [device for device in devices if device]
        if not devices:
            self.skipTest("installed without demo data")
        now = fields.Datetime.now().timestamp()
        for device in devices:
            sessions = self.env["mqtt.session"].search([("device_id", "=", device.id)])
            self.assertTrue(sessions, device.name)
            self.assertNotIn("running", sessions.mapped("status"), device.name)
            # The leader goes on from the engine state the demo data stored.
            ingestor = Ingestor([device._ows_engine_config()])
            ingestor.restore_device(device.device_id, device.engine_state)
            events = []
            for second in range(0, 60, 5):
                ts, topic, payload = device._ows_demo_message(device, now + second, 720.0)
                events += ingestor.process(topic, payload, ts)
            started = [event for event in events if event.event_type == "session_started"]
            self.assertEqual(len(started), 1, device.name)
            self.assertNotIn(started[0].session_id, sessions.mapped("session_id"), device.name)
