# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.tests import HttpCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestManagerTour(HttpCase):
    def test_manager_creates_device_and_prints_billing_report(self):
        """In the browser: create a device, find it in the kanban, open its
        sessions and print the billing report."""
        manager = new_test_user(
            self.env,
            login="iot_tour_manager",
            groups="base.group_user,ows_iot.group_ows_iot_manager",
            tz="Europe/Berlin",
        )
        self.start_tour("/odoo", "ows_iot_manager_tour", login=manager.login, timeout=180)
        device = self.env["mqtt.device"].search([("device_id", "=", "shellyplus1pm-tour01")])
        self.assertEqual(device.name, "Tour Laser Cutter")
        self.assertEqual(device.price_unit, 2.5)
        self.assertEqual(device.session_ids.amount, 75.0)
