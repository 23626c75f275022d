# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""REST check-in and check-out: good and hostile input, through a real HTTP server."""

from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from ..services import badge
from .test_api import ApiCase

CHECKIN, CHECKOUT = "/ows/iot/checkin", "/ows/iot/checkout"


@tagged("post_install", "-at_install")
class TestApiCheckin(ApiCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.alice = Partner.create({"name": "Alice Maker", "ows_badge_id": "04A1B2C3"})
        cls.stranger = Partner.create(
            {"name": "Stranger", "ows_badge_id": "5555", "company_id": cls.company_b.id}
        )

    def setUp(self):
        super().setUp()
        self.published = []
        published = self.published
        device_class = type(self.env["mqtt.device"])
        patcher = patch.object(
            device_class,
            "_ows_publish",
            lambda self, topic, payload: published.append((topic, payload)),
        )
        patcher.start()
        self.addCleanup(patcher.stop)

    def checkin(self, body, path=CHECKIN, **kwargs):
        return self.request("POST", path, body, key=kwargs.pop("key", self.key), **kwargs)

    def refused(self):
        runtime = self.env["ows.iot.runtime"]._ows_get()
        runtime.invalidate_recordset(["checkin_refused"])
        return dict(runtime.checkin_refused or {})

    def test_check_in_by_badge_publishes_the_members_command(self):
        response = self.checkin({"device_id": self.device.device_id, "badge": "04a1b2c3"})
        self.assertEqual(response.status_code, 202, response.text)
        body = response.json()
        self.assertEqual((body["partner_id"], body["action"]), (self.alice.id, "check_in"))
        [(topic, payload)] = self.published
        self.assertEqual(topic, f"{self.device.mqtt_topic}/{badge.CHECKIN_SUBTOPIC}")
        self.assertEqual(badge.parse_command(payload), ("check_in", str(self.alice.id)))

    def test_check_in_by_partner_and_check_out(self):
        response = self.checkin({"device_id": self.device.device_id, "partner_id": self.alice.id})
        self.assertEqual(response.status_code, 202, response.text)
        response = self.checkin({"device_id": self.device.device_id}, CHECKOUT)
        self.assertEqual(response.status_code, 202, response.text)
        self.assertEqual(badge.parse_command(self.published[-1][1]), ("check_out", None))

    def test_hostile_input_is_refused_clearly_and_counted(self):
        before = self.refused()
        device_id = self.device.device_id
        cases = [
            ([], 400, "body"),
            ({"device_id": 12, "badge": "04A1B2C3"}, 400, "device_id"),
            ({"device_id": device_id}, 400, "badge"),
            ({"device_id": device_id, "badge": 1234}, 400, "badge"),
            ({"device_id": device_id, "badge": ""}, 400, "badge"),
            ({"device_id": device_id, "badge": "x" * 65}, 400, "badge"),
            ({"device_id": device_id, "partner_id": "7"}, 400, "partner_id"),
            ({"device_id": device_id, "partner_id": True}, 400, "partner_id"),
            ({"device_id": device_id, "partner_id": -1}, 400, "partner_id"),
            ({"device_id": device_id, "badge": "04A1B2C3", "partner_id": 1}, 400, "badge"),
            ({"device_id": device_id, "badge": "04A1B2C3", "admin": True}, 400, "admin"),
            ({"device_id": "lathe-9", "badge": "04A1B2C3"}, 404, "device_id"),
            ({"device_id": device_id, "badge": "DEADBEEF"}, 404, "badge"),
            # the badge of another company's member is unknown here
            ({"device_id": device_id, "badge": "5555"}, 404, "badge"),
            ({"device_id": device_id, "partner_id": 2**31 - 1}, 404, "partner_id"),
            ({"device_id": device_id, "partner_id": self.stranger.id}, 400, "partner_id"),
            # a device of another company is not visible to the key's user
            ({"device_id": self.device_b.device_id, "badge": "5555"}, 404, "device_id"),
        ]
        for body, status, field in cases:
            with self.subTest(body=body):
                response = self.checkin(body)
                answer = self.assertRejected(response, field, status)
                self.assertTrue(answer["message"])
        response = self.request(
            "POST",
            CHECKIN,
            raw="{not json",
            key=self.key,
            headers={"Content-Type": "application/json"},
        )
        self.assertRejected(response, "body")
        self.assertEqual(self.published, [])
        counted = self.refused()
        self.assertEqual(counted.get("invalid_request", 0) - before.get("invalid_request", 0), 13)
        self.assertEqual(counted.get("unknown_device", 0) - before.get("unknown_device", 0), 2)
        self.assertEqual(counted.get("unknown_badge", 0) - before.get("unknown_badge", 0), 2)
        self.assertEqual(counted.get("unknown_partner", 0) - before.get("unknown_partner", 0), 1)
        health = self.get("/ows/iot/health").json()
        self.assertEqual(health["counters"]["checkin_refused"], counted)

    def test_same_authentication_as_the_other_endpoints(self):
        body = {"device_id": self.device.device_id, "badge": "04A1B2C3"}
        self.assertEqual(self.request("POST", CHECKIN, body).status_code, 401)
        self.assertEqual(self.checkin(body, key="0" * 40).status_code, 401)
        user_key = self._key(self.iot_user)
        self.assertEqual(self.checkin(body, key=user_key).status_code, 403)
        self.assertEqual(self.request("GET", CHECKIN, key=self.key).status_code, 405)
        self.assertEqual(self.published, [])

    @mute_logger("odoo.addons.ows_iot.controllers.main")
    def test_broker_unavailable_is_503(self):
        patch.stopall()
        self.env["ir.config_parameter"].sudo().set_param("ows_iot.mqtt_host", "")
        response = self.checkin({"device_id": self.device.device_id, "badge": "04A1B2C3"})
        self.assertEqual(response.status_code, 503, response.text)
        self.assertEqual(response.json()["error"], "broker_unavailable")
