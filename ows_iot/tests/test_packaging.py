# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A missing paho-mqtt does not look like a working ingestion."""

from unittest.mock import patch

from odoo.tests import TransactionCase, tagged

from ..models import ows_iot_runtime


@tagged("post_install", "-at_install")
class TestPahoMissing(TransactionCase):
    def test_the_ingestion_status_says_when_paho_is_missing(self):
        status = self.env["ows.iot.runtime"]._ows_get()
        with patch.object(ows_iot_runtime, "paho_missing", return_value="missing"):
            status.invalidate_recordset(["display_state"])
            self.assertIn(
                "paho-mqtt is not installed: nothing is ingested (pip install 'paho-mqtt>=2,<3')",
                status.display_state,
            )
        status.invalidate_recordset(["display_state"])
        self.assertNotIn("paho-mqtt", status.display_state)
