# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The REST API through a real HTTP server (Odoo's test server, one test transaction).

Every response is also checked against the OpenAPI document in the repository, so the
document cannot drift from what the server answers.
"""

import json
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema

from odoo import Command
from odoo.sql_db import db_connect
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..controllers.validation import MAX_BATCH_EVENTS, MAX_BODY_BYTES
from ..services.events import EVENT_TYPES, MAX_DURATION_S, MAX_SEQ
from ..services.leader import lock_key
from .common import T0, device_event, session_event

DOCUMENT_PATH = Path(__file__).resolve().parents[1] / "controllers" / "openapi.json"
DOCUMENT = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
CONFIG, EVENT, HEALTH, OPENAPI = (
    "/ows/iot/config",
    "/ows/iot/event",
    "/ows/iot/health",
    "/ows/iot/openapi.json",
)
GET_ENDPOINTS = (CONFIG, HEALTH, OPENAPI)
# Own external ids: the demo data may hold devices with the usual ones.
DEVICE_A = "shellypmminig3-api0000000a"
DEVICE_B = "shellyplus1pm-api0000000b"


def iso(epoch):
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def api_event(event):
    """An engine event (epoch timestamp) as a producer posts it (ISO 8601)."""
    return {**event, "timestamp": iso(event["timestamp"])}


def started(device_id=DEVICE_A, seq=1, start=0.0):
    return api_event(session_event(device_id, "session_started", seq, start + 3, start=start))


def online(device_id=DEVICE_A, seq=1, offset=0.0):
    return api_event(device_event(device_id, "device_online", seq, offset))


def response_schema(path, method, status):
    """The JSON schema the document gives for this answer (refs resolved in the document)."""
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    response = responses.get(str(status))
    if response is None:
        return None
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": DOCUMENT["components"]}


@tagged("post_install", "-at_install")
class ApiCase(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.ref("base.main_company")
        cls.company_b = cls.env["res.company"].create({"name": "Second Workshop"})
        Device = cls.env["mqtt.device"]
        cls.device = Device.create(
            {"name": "Shaper Origin", "device_id": DEVICE_A, "mqtt_topic": DEVICE_A}
        )
        cls.device_b = Device.create(
            {
                "name": "Laser B",
                "device_id": DEVICE_B,
                "mqtt_topic": DEVICE_B,
                "company_id": cls.company_b.id,
            }
        )
        cls.manager = cls._user("api_manager", "ows_iot.group_ows_iot_manager", cls.company)
        cls.manager_b = cls._user("api_manager_b", "ows_iot.group_ows_iot_manager", cls.company_b)
        cls.iot_user = cls._user("api_iot_user", "ows_iot.group_ows_iot_user", cls.company)
        cls.key = cls._key(cls.manager)
        cls.key_b = cls._key(cls.manager_b)

    @classmethod
    def _user(cls, login, group, company):
        return new_test_user(
            cls.env,
            login=login,
            groups=f"base.group_user,{group}",
            company_id=company.id,
            company_ids=[Command.set(company.ids)],
            context={"no_reset_password": True},
        )

    @classmethod
    def _key(cls, user, scope="ows_iot", expiration=None):
        return (
            cls.env["res.users.apikeys"]
            .with_user(user)
            .sudo()
            ._generate(scope, "API test", expiration)
        )

    def request(self, method, path, body=None, key=None, headers=None, raw=None):
        """Call the API; checks the answer against the OpenAPI document, returns it."""
        all_headers = {}
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not None:
            data = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        response = self.opener.request(
            method, self.base_url() + path, data=data, headers=all_headers, timeout=30
        )
        self.env.invalidate_all()
        if method in ("GET", "POST") and response.status_code != 405:
            self.assertEqual(response.headers["Content-Type"], "application/json")
            schema = response_schema(path, method, response.status_code)
            self.assertIsNotNone(
                schema, f"{method} {path} answered {response.status_code}, not documented"
            )
            jsonschema.validate(response.json(), schema)
        return response

    def post(self, body, key=None, **kwargs):
        return self.request("POST", EVENT, body, key=self.key if key is None else key, **kwargs)

    def get(self, path, key=None, **kwargs):
        return self.request("GET", path, key=self.key if key is None else key, **kwargs)

    def event_count(self):
        return (
            self.env["ows.iot.event"]
            .sudo()
            .search_count([("device_id", "in", (self.device | self.device_b).ids)])
        )

    def assertRejected(self, response, field, status=400):
        self.assertEqual(response.status_code, status, response.text)
        body = response.json()
        self.assertEqual(body["status"], "error")
        self.assertEqual(body["field"], field, body["message"])
        self.assertNotIn("Traceback", response.text)
        return body


@tagged("post_install", "-at_install")
class TestApiAuthentication(ApiCase):
    def test_missing_authorization_is_401_with_a_bearer_challenge(self):
        for path in GET_ENDPOINTS:
            response = self.request("GET", path)
            self.assertEqual(response.status_code, 401, path)
            self.assertEqual(response.headers["WWW-Authenticate"], 'Bearer realm="ows_iot"')
            self.assertIn("Authorization: Bearer", response.json()["message"])
        count = self.event_count()
        response = self.request("POST", EVENT, online())
        self.assertEqual(response.status_code, 401)
        self.assertEqual(self.event_count(), count)

    def test_other_schemes_and_malformed_headers_are_401(self):
        for header in (
            f"Basic {self.key}",
            f"Token {self.key}",
            "Bearer",
            "Bearer ",
            f"Bearer {self.key} extra",
            f"{self.key}",
        ):
            response = self.get(CONFIG, headers={"Authorization": header})
            self.assertEqual(response.status_code, 401, header)
            self.assertEqual(response.json()["error"], "unauthorized")

    def test_unknown_key_is_401(self):
        for key in ("0" * 40, self.key[:8] + "f" * 32, self.key[:-1], "x" * 300):
            response = self.get(CONFIG, key=key)
            self.assertEqual(response.status_code, 401, key)
            self.assertEqual(response.json()["error"], "unauthorized")

    def test_revoked_key_is_401(self):
        key = self._key(self.manager)
        self.assertEqual(self.get(CONFIG, key=key).status_code, 200)
        self.env["res.users.apikeys"].sudo().search(
            [("user_id", "=", self.manager.id), ("name", "=", "API test")]
        ).unlink()
        self.assertEqual(self.get(CONFIG, key=key).status_code, 401)
        self.assertEqual(self.get(CONFIG, key=self.key).status_code, 401)

    def test_expired_key_is_401(self):
        key = self._key(self.manager, expiration=datetime.now() + timedelta(days=1))
        self.assertEqual(self.get(CONFIG, key=key).status_code, 200)
        self.env.cr.execute(
            "UPDATE res_users_apikeys SET expiration_date = now() - interval '1 hour' "
            "WHERE expiration_date IS NOT NULL AND user_id = %s",
            (self.manager.id,),
        )
        self.assertEqual(self.get(CONFIG, key=key).status_code, 401)

    def test_key_of_an_archived_user_is_401(self):
        self.manager.active = False
        self.assertEqual(self.get(CONFIG).status_code, 401)

    def test_global_rpc_and_ows_iot_keys_are_accepted_other_scopes_are_not(self):
        for scope in (None, "rpc", "ows_iot"):
            self.assertEqual(self.get(CONFIG, key=self._key(self.manager, scope)).status_code, 200)
        other = self._key(self.manager, "odoo.plugin.outlook")
        self.assertEqual(self.get(CONFIG, key=other).status_code, 401)

    def test_key_of_a_user_outside_the_manager_group_is_403(self):
        key = self._key(self.iot_user)
        for path in GET_ENDPOINTS:
            response = self.get(path, key=key)
            self.assertEqual(response.status_code, 403, path)
            self.assertEqual(response.json()["error"], "forbidden")
        count = self.event_count()
        self.assertEqual(self.post(online(), key=key).status_code, 403)
        self.assertEqual(self.event_count(), count)

    def test_a_browser_session_is_not_enough(self):
        self.authenticate("admin", "admin")
        self.assertEqual(self.request("GET", CONFIG).status_code, 401)

    def test_a_key_wins_over_a_browser_session_of_another_user(self):
        self.authenticate("admin", "admin")
        response = self.get(CONFIG, key=self.key_b)
        self.assertEqual(response.status_code, 200)
        self.assertEqual([d["device_id"] for d in response.json()["devices"]], [DEVICE_B])


@tagged("post_install", "-at_install")
class TestApiConfig(ApiCase):
    def test_config_lists_the_active_devices_of_the_key_users_companies(self):
        archived = self.env["mqtt.device"].create(
            {
                "name": "Old lathe",
                "device_id": "old-lathe",
                "mqtt_topic": "old-lathe",
                "active": False,
            }
        )
        self.device.channel = "pm1:0"
        response = self.get(CONFIG)
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["status"], "success")
        devices = {d["device_id"]: d for d in body["devices"]}
        self.assertIn(DEVICE_A, devices)
        self.assertNotIn(DEVICE_B, devices, "another company's device")
        self.assertNotIn(archived.device_id, devices)
        device = devices[DEVICE_A]
        self.assertEqual(device["machine_name"], "Shaper Origin")
        self.assertEqual(device["mqtt_topic"], DEVICE_A)
        self.assertEqual(device["parser_type"], "shelly_gen2")
        self.assertEqual(device["channel"], "pm1:0")
        self.assertEqual(device["company_id"], self.company.id)
        self.assertEqual(
            device["session_config"],
            {
                "strategy": "power_threshold",
                "standby_threshold_w": self.device.standby_threshold_w,
                "working_threshold_w": self.device.working_threshold_w,
                "start_debounce_s": self.device.start_debounce_s,
                "stop_debounce_s": self.device.stop_debounce_s,
                "message_timeout_s": self.device.message_timeout_s,
                "heartbeat_interval_s": self.device.heartbeat_interval_s,
                "max_clock_skew_s": self.device.max_clock_skew_s,
            },
        )

    def test_non_ascii_names_arrive_intact(self):
        self.device.name = "Fräse – Halle 2"
        response = self.get(CONFIG)
        names = [d["machine_name"] for d in response.json()["devices"]]
        self.assertIn("Fräse – Halle 2", names)

    def test_manager_of_both_companies_sees_both(self):
        both = new_test_user(
            self.env,
            login="api_manager_ab",
            groups="base.group_user,ows_iot.group_ows_iot_manager",
            company_id=self.company.id,
            company_ids=[Command.set((self.company | self.company_b).ids)],
        )
        response = self.get(CONFIG, key=self._key(both))
        ids = {d["device_id"] for d in response.json()["devices"]}
        self.assertTrue({DEVICE_A, DEVICE_B} <= ids)


@tagged("post_install", "-at_install")
class TestApiEvents(ApiCase):
    def test_a_new_event_is_201_and_creates_its_row_and_session(self):
        event = started()
        response = self.post(event)
        self.assertEqual(response.status_code, 201, response.text)
        body = response.json()
        self.assertEqual(body["status"], "created")
        self.assertEqual(body["event_uid"], event["event_uid"])
        self.assertTrue(body["processed"])
        row = self.env["ows.iot.event"].sudo().browse(body["id"])
        self.assertEqual(row.event_uid, event["event_uid"])
        self.assertEqual(row.device_id, self.device)
        self.assertEqual(row.timestamp, datetime(2024, 6, 1, 10, 0, 3))
        # Stored with epoch times, as the same event from the MQTT runtime would be.
        self.assertEqual(row.timestamp_epoch, T0 + 3)
        self.assertEqual(row.payload_json["start"], T0)
        session = self.env["mqtt.session"].sudo().search([("session_id", "=", event["session_id"])])
        self.assertEqual(session.device_id, self.device)
        self.assertEqual(session.status, "running")
        self.assertEqual(row.session_id, session)
        self.assertEqual(self.device.running_session_id, session)

    def test_a_known_event_uid_is_409_and_writes_nothing(self):
        event = started()
        self.assertEqual(self.post(event).status_code, 201)
        count = self.event_count()
        changed = {**event, "payload": {**event["payload"], "working_s": 999.0}}
        response = self.post(changed)
        self.assertEqual(response.status_code, 409)
        self.assertEqual(response.json()["status"], "duplicate")
        self.assertEqual(self.event_count(), count)
        session = self.env["mqtt.session"].sudo().search([("session_id", "=", event["session_id"])])
        self.assertEqual(session.working_duration_s, 0.0, "the duplicate changed nothing")

    def test_the_api_and_the_runtime_share_one_ingestion(self):
        from_runtime = started(seq=1)
        from_api = online(seq=2)
        Event = self.env["ows.iot.event"]
        [result] = Event.with_user(self.manager).ingest_events(
            [{**from_runtime, "timestamp": T0 + 3}]
        )
        self.assertEqual(result["status"], "created")
        self.assertEqual(self.post(from_runtime).status_code, 409)
        self.assertEqual(self.post(from_api).status_code, 201)
        [result] = Event.with_user(self.manager).ingest_events([from_api])
        self.assertEqual(result["status"], "duplicate")
        rows = Event.sudo().search([("device_id", "=", self.device.id)])
        self.assertEqual(len(rows), 2)

    def test_a_device_event_without_session_or_payload_is_accepted(self):
        event = online()
        del event["session_id"]
        del event["payload"]
        response = self.post(event)
        self.assertEqual(response.status_code, 201, response.text)
        self.assertTrue(self.device.online)

    def test_an_event_the_session_refuses_is_created_but_not_processed(self):
        other = self.env["mqtt.device"].create(
            {"name": "Other", "device_id": "other-meter", "mqtt_topic": "other-meter"}
        )
        first = started()
        self.assertEqual(self.post(first).status_code, 201)
        # Same session id from another device: recorded, not applied.
        stranger = {**started(other.device_id, seq=1), "session_id": first["session_id"]}
        response = self.post(stranger)
        self.assertEqual(response.status_code, 201, response.text)
        body = response.json()
        self.assertFalse(body["processed"])
        self.assertIn("belongs to device", body["message"])
        row = self.env["ows.iot.event"].sudo().browse(body["id"])
        self.assertFalse(row.processed)
        self.assertEqual(row.processing_error, body["message"])
        self.assertEqual(self.post(stranger).status_code, 409)

    def test_hostile_bodies_are_400_naming_the_field_and_write_nothing(self):
        good = started()
        session_only = {k: v for k, v in good.items() if k != "payload"}
        cases = [
            ("body", b"not json"),
            ("body", b""),
            ("body", b"\xff\xfe{}"),
            ("body", b'"just a string"'),
            ("body", b"42"),
            ("body", b"[]"),
            ("body", b'{"event_uid": NaN}'),
            ("body", b"[" * 5000 + b"]" * 5000),
            ("body", b"1" * 5000),
            ("event_uid", {**good, "event_uid": 42}),
            ("event_uid", {**good, "event_uid": ""}),
            ("event_uid", {**good, "event_uid": "x" * 129}),
            ("event_uid", {k: v for k, v in good.items() if k != "event_uid"}),
            ("event_uid", {**good, "event_uid": "a\u0000b"}),
            ("event_uid", {**good, "event_uid": " padded"}),
            ("event_type", {**good, "event_type": "session_exploded"}),
            ("event_type", {**good, "event_type": ["session_started"]}),
            ("device_id", {**good, "device_id": None}),
            ("device_id", {**good, "device_id": "no-such-meter"}),
            ("session_id", {**good, "session_id": None}),
            ("timestamp", {**good, "timestamp": "yesterday"}),
            ("timestamp", {**good, "timestamp": T0}),
            ("timestamp", {**good, "timestamp": "2024-06-01T10:00:03"}),
            ("timestamp", {**good, "timestamp": "2024-02-30T10:00:03Z"}),
            ("timestamp", {**good, "timestamp": "1970-01-01T00:00:00Z"}),
            ("timestamp", {k: v for k, v in good.items() if k != "timestamp"}),
            ("payload", {**good, "payload": [1, 2]}),
            ("payload.start", session_only),
            ("payload.start", {**good, "payload": {**good["payload"], "start": "soon"}}),
            ("payload.start", {**good, "payload": {**good["payload"], "start": 10**400}}),
            ("payload.end", {**good, "payload": {**good["payload"], "end": T0 + 10}}),
            ("payload.working_s", {**good, "payload": {**good["payload"], "working_s": "10"}}),
            ("payload.working_s", {**good, "payload": {**good["payload"], "working_s": -1}}),
            ("payload.energy_wh", {**good, "payload": {**good["payload"], "energy_wh": 1e300}}),
            ("payload.seq", {**good, "payload": {**good["payload"], "seq": 2**31}}),
            ("payload.seq", {**good, "payload": {**good["payload"], "seq": 1.5}}),
            ("payload.state", {**good, "payload": {**good["payload"], "state": "melting"}}),
            ("payload.status", {**good, "payload": {**good["payload"], "status": "paused"}}),
            ("payload.note", {**good, "payload": {**good["payload"], "note": "nul\u0000"}}),
            ("colour", {**good, "colour": "red"}),
        ]
        count = self.event_count()
        for field, body in cases:
            with self.subTest(field=field, body=str(body)[:80]):
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                response = self.request(
                    "POST",
                    EVENT,
                    key=self.key,
                    raw=raw,
                    headers={"Content-Type": "application/json"},
                )
                self.assertRejected(response, field)
                self.assertEqual(self.event_count(), count)
        self.assertEqual(self.post(good).status_code, 201, "the reference event is valid")

    def test_a_body_over_256_kib_is_400(self):
        event = started()
        event["payload"]["note"] = "x" * MAX_BODY_BYTES
        response = self.post(event)
        body = self.assertRejected(response, "body")
        self.assertIn(str(MAX_BODY_BYTES), body["message"])
        self.assertEqual(self.event_count(), 0)

    def test_a_body_of_exactly_256_kib_is_read(self):
        event = started()
        event["payload"]["note"] = ""
        padding = MAX_BODY_BYTES - len(json.dumps(event).encode())
        event["payload"]["note"] = "x" * padding
        self.assertEqual(len(json.dumps(event).encode()), MAX_BODY_BYTES)
        self.assertEqual(self.post(event).status_code, 201)

    def test_a_body_that_is_not_declared_as_json_is_400(self):
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            response = self.request(
                "POST",
                EVENT,
                key=self.key,
                raw=json.dumps(online()).encode(),
                headers={"Content-Type": content_type},
            )
            self.assertRejected(response, "Content-Type")

    def test_a_chunked_body_is_400(self):
        def chunks():
            yield json.dumps(online()).encode()

        response = self.request(
            "POST", EVENT, key=self.key, raw=chunks(), headers={"Content-Type": "application/json"}
        )
        self.assertRejected(response, "Content-Length")

    def test_every_event_type_is_accepted(self):
        self.assertEqual(len(EVENT_TYPES), 9)
        session = session_event(DEVICE_A, "session_started", 1, 3)
        events = []
        for seq, event_type in enumerate(EVENT_TYPES, start=1):
            if event_type.startswith(("device_", "member_")):
                events.append(online(seq=seq) | {"event_type": event_type})
                continue
            end = 60.0 if event_type in ("session_stopped", "session_timeout") else None
            event = session_event(DEVICE_A, event_type, seq, 3 + seq, end=end)
            event["session_id"] = session["session_id"]
            events.append(api_event(event))
        for event in events:
            response = self.post(event)
            self.assertEqual(response.status_code, 201, (event["event_type"], response.text))


@tagged("post_install", "-at_install")
class TestApiSequenceSpaces(ApiCase):
    """REST events never compete with the MQTT engine's per-device sequence."""

    def set_broker(self, host):
        self.env["ir.config_parameter"].sudo().set_param("ows_iot.mqtt_host", host)

    def set_engine_state(self, device):
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE mqtt_device SET engine_state = '{\"seq\": 2}'::jsonb WHERE id = %s",
            [device.id],
        )
        device.invalidate_recordset(["engine_state"])

    def assert_refused(self, response, device_id=DEVICE_A):
        self.assertEqual(response.status_code, 400, response.text)
        body = response.json()
        self.assertEqual(body["field"], "device_id")
        self.assertIn(f"{device_id!r} is fed by the MQTT runtime", body["message"])

    def test_a_session_of_the_engine_cannot_be_frozen_by_a_huge_seq(self):
        self.set_broker("broker.example")
        Event = self.env["ows.iot.event"].sudo()
        first = session_event(DEVICE_A, "session_started", 1, 3, working=3)
        Event.ingest_events([first], device_ids={DEVICE_A: self.device.id})
        self.set_engine_state(self.device)
        count = self.event_count()
        hostile = api_event(
            session_event(DEVICE_A, "session_heartbeat", MAX_SEQ, 10, working=10, state="standby")
        )
        self.assert_refused(self.post(hostile))
        self.assertEqual(self.event_count(), count)
        # The engine's next event still moves the session and the device on.
        later = session_event(DEVICE_A, "session_stopped", 2, 70, working=60, end=60)
        [result] = Event.ingest_events([later], device_ids={DEVICE_A: self.device.id})
        self.assertEqual(result["status"], "created", result["message"])
        session = self.env["mqtt.session"].sudo().search([("session_id", "=", first["session_id"])])
        self.assertEqual(session.status, "completed")
        self.assertEqual(session.last_event_seq, 2)
        self.assertEqual(self.device.current_state, "idle")

    def test_devices_the_runtime_runs_take_no_rest_events(self):
        # No broker, never run by the engine: a device of the REST producers.
        self.assertEqual(self.post(online(seq=1)).status_code, 201)
        # Active with a broker configured: the leader listens to it.
        self.set_broker("broker.example")
        self.assert_refused(self.post(online(seq=2, offset=1)))
        # Archived: the leader no longer listens.
        self.device.active = False
        self.assertEqual(self.post(online(seq=3, offset=2)).status_code, 201)
        # Once the engine ran it, its sequence stays the engine's, archived or not.
        self.set_engine_state(self.device)
        self.assert_refused(self.post(online(seq=4, offset=3)))
        self.set_broker("")
        self.assert_refused(self.post(online(seq=5, offset=4)))
        # In a batch, only the engine's device is refused.
        body = self.post([online(seq=6, offset=5), online(DEVICE_B, seq=1)], key=self.key_b).json()
        self.assertEqual([r["status"] for r in body["results"]], ["error", "created"])

    def test_numbers_beyond_their_columns_are_400_naming_the_field(self):
        count = self.event_count()
        for field, value in (
            ("working_s", 1e12),
            ("standby_s", MAX_DURATION_S + 1),
            ("interval_working_s", 1e15),
            ("power_w", 1e6),
            ("peak_power_w", 100_001),
            ("energy_wh", 1e11),
            ("seq", MAX_SEQ + 1),
        ):
            with self.subTest(field=field):
                event = started()
                event["payload"][field] = value
                response = self.post(event)
                self.assertEqual(response.status_code, 400, response.text)
                self.assertEqual(response.json()["field"], f"payload.{field}")
        self.assertEqual(self.event_count(), count)
        # At the limits, the session and its billing figures still fit their columns.
        self.device.write({"billing_unit_s": 1, "bill_standby": True, "standby_rate": 1.0})
        half = MAX_DURATION_S // 2
        event = api_event(
            session_event(
                DEVICE_A,
                "session_stopped",
                MAX_SEQ,
                MAX_DURATION_S,
                working=half,
                standby=half,
                end=MAX_DURATION_S,
                power=100_000.0,
            )
        )
        response = self.post(event)
        self.assertEqual(response.status_code, 201, response.text)
        session = self.env["mqtt.session"].sudo().search([("session_id", "=", event["session_id"])])
        self.assertEqual(session.billable_units, MAX_DURATION_S)


@tagged("post_install", "-at_install")
class TestApiBatches(ApiCase):
    def test_a_batch_returns_one_result_per_event_in_order(self):
        first, second = started(seq=1), online(seq=2)
        self.assertEqual(self.post(first).status_code, 201)
        count = self.event_count()
        batch = [
            first,  # known
            second,  # new
            second,  # repeated in the batch
            {**online(seq=3), "device_id": DEVICE_B},  # another company's device
            {**online(seq=4), "timestamp": "not a time"},
            "not an event",
            online(seq=5),
        ]
        response = self.post(batch)
        self.assertEqual(response.status_code, 200, response.text)
        body = response.json()
        self.assertEqual(
            [(r["index"], r["status"]) for r in body["results"]],
            [
                (0, "duplicate"),
                (1, "created"),
                (2, "duplicate"),
                (3, "error"),
                (4, "error"),
                (5, "error"),
                (6, "created"),
            ],
        )
        self.assertEqual((body["created"], body["duplicate"], body["error"]), (2, 2, 3))
        self.assertEqual(
            [r.get("field") for r in body["results"][3:6]], ["device_id", "timestamp", "body"]
        )
        self.assertEqual(body["results"][1]["event_uid"], second["event_uid"])
        self.assertEqual(self.event_count(), count + 2)

    def test_a_batch_of_engine_events_builds_the_session(self):
        session = session_event(DEVICE_A, "session_started", 1, 3)
        events = [
            api_event(session_event(DEVICE_A, "session_started", 1, 3)),
            api_event(session_event(DEVICE_A, "session_heartbeat", 2, 300, working=297.0)),
            api_event(
                session_event(
                    DEVICE_A, "session_stopped", 3, 615, working=500.0, standby=100.0, end=600.0
                )
            ),
        ]
        # Any order: every session event carries the whole session.
        response = self.post(list(reversed(events)))
        self.assertEqual([r["status"] for r in response.json()["results"]], ["created"] * 3)
        record = (
            self.env["mqtt.session"].sudo().search([("session_id", "=", session["session_id"])])
        )
        self.assertEqual(record.status, "completed")
        self.assertEqual(record.working_duration_s, 500.0)
        self.assertEqual(record.standby_duration_s, 100.0)
        self.assertEqual(len(record.event_ids), 3)

    def test_batch_size_limits_are_400(self):
        self.assertRejected(self.post([]), "body")
        too_many = [online(seq=seq) for seq in range(MAX_BATCH_EVENTS + 1)]
        body = self.assertRejected(self.post(too_many), "body")
        self.assertIn(str(MAX_BATCH_EVENTS), body["message"])
        self.assertEqual(self.event_count(), 0)


@tagged("post_install", "-at_install")
class TestApiCompanies(ApiCase):
    def test_a_manager_cannot_post_for_another_companys_device(self):
        response = self.post(online(DEVICE_A), key=self.key_b)
        body = self.assertRejected(response, "device_id")
        self.assertIn("Unknown device_id", body["message"])
        self.assertEqual(self.event_count(), 0)
        self.assertFalse(self.device.online)

    def test_each_manager_posts_for_the_own_companys_device(self):
        self.assertEqual(self.post(online(DEVICE_B), key=self.key_b).status_code, 201)
        self.assertEqual(self.post(online(DEVICE_A, seq=2), key=self.key).status_code, 201)
        rows = (
            self.env["ows.iot.event"]
            .sudo()
            .search([("device_id", "in", (self.device | self.device_b).ids)])
        )
        self.assertEqual(
            {(row.device_id, row.company_id) for row in rows},
            {(self.device_b, self.company_b), (self.device, self.company)},
        )

    def test_the_same_external_id_in_two_companies_resolves_to_the_own_device(self):
        twin = self.env["mqtt.device"].create(
            {
                "name": "Twin",
                "device_id": DEVICE_A,
                "mqtt_topic": f"site-b/{DEVICE_A}",
                "company_id": self.company_b.id,
            }
        )
        body = self.post(online(DEVICE_A), key=self.key_b).json()
        row = self.env["ows.iot.event"].sudo().browse(body["id"])
        self.assertEqual(row.device_id, twin)
        self.assertFalse(self.device.online)


@tagged("post_install", "-at_install")
class TestApiProtocol(ApiCase):
    def test_unsupported_methods_are_405_with_allow(self):
        for method, path, allow in (
            ("DELETE", CONFIG, "GET, HEAD, OPTIONS"),
            ("POST", HEALTH, "GET, HEAD, OPTIONS"),
            ("GET", EVENT, "POST, OPTIONS"),
            ("PUT", EVENT, "POST, OPTIONS"),
            ("PATCH", OPENAPI, "GET, HEAD, OPTIONS"),
        ):
            response = self.request(method, path, key=self.key)
            self.assertEqual(response.status_code, 405, (method, path))
            self.assertEqual(response.headers["Allow"], allow)
            self.assertEqual(response.json()["error"], "method_not_allowed")

    def test_options_lists_the_allowed_methods(self):
        response = self.request("OPTIONS", EVENT)
        self.assertEqual(response.status_code, 204)
        self.assertEqual(response.headers["Allow"], "POST, OPTIONS")

    def test_head_is_get_without_body(self):
        response = self.request("HEAD", CONFIG, key=self.key)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"")

    def test_no_answer_sets_a_session_cookie(self):
        response = self.get(CONFIG)
        self.assertNotIn("session_id", response.cookies)

    def test_an_unexpected_error_is_a_json_500_without_traceback_and_writes_nothing(self):
        ingest_events = type(self.env["ows.iot.event"]).ingest_events

        def write_then_explode(model, events):
            ingest_events(model, events)
            raise RuntimeError("secret internals")

        self.patch(type(self.env["ows.iot.event"]), "ingest_events", write_then_explode)
        count = self.event_count()
        with mute_logger("odoo.addons.ows_iot.controllers.main"):
            response = self.post(online())
        self.assertEqual(response.status_code, 500)
        self.assertEqual(response.json()["error"], "internal_error")
        self.assertNotIn("secret", response.text)
        self.assertNotIn("Traceback", response.text)
        self.assertEqual(self.event_count(), count)


@tagged("post_install", "-at_install")
class TestApiHealth(ApiCase):
    @contextmanager
    def leader_lock(self):
        """Hold the database's leader lock from another connection, as a leader does."""
        with db_connect(self.env.cr.dbname).cursor() as cr:
            key = lock_key(self.env.cr.dbname)
            cr.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                yield
            finally:
                # The pooled connection outlives the cursor: release explicitly.
                cr.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def report(self, **values):
        now = time.time()
        self.env["ows.iot.runtime"]._ows_report(
            {
                "state": "leading",
                "host": "odoo-1",
                "pid": 4242,
                "since": now - 600,
                "broker": "mqtt://127.0.0.1:1883",
                "client_id": "ows-iot-test",
                "connected": True,
                "messages": 120,
                "messages_per_s": 2.5,
                "last_message_at": now - 4,
                "dropped": {"unknown_topic": 3},
                **values,
            }
        )

    def test_health_is_503_while_no_leader_holds_the_lock(self):
        self.report()  # a report alone proves nothing: its writer may be dead
        response = self.get(HEALTH)
        self.assertEqual(response.status_code, 503)
        body = response.json()
        self.assertEqual((body["status"], body["state"]), ("unavailable", "none"))
        self.assertFalse(body["leader"]["active"])
        self.assertFalse(body["broker"]["connected"])

    def test_health_is_200_while_a_connected_leader_reports(self):
        self.report()
        with self.leader_lock():
            response = self.get(HEALTH)
        self.assertEqual(response.status_code, 200, response.text)
        body = response.json()
        self.assertEqual((body["status"], body["state"]), ("ok", "leading"))
        self.assertEqual((body["leader"]["host"], body["leader"]["pid"]), ("odoo-1", 4242))
        self.assertTrue(body["leader"]["lock_holder"])
        self.assertTrue(body["broker"]["connected"])
        self.assertEqual(body["broker"]["address"], "mqtt://127.0.0.1:1883")
        self.assertEqual(body["counters"]["messages"], 120)
        self.assertEqual(body["counters"]["dropped"], {"unknown_topic": 3})
        self.assertLessEqual(body["last_message_age_s"], 60)

    def test_health_is_503_while_the_leader_is_not_connected_to_the_broker(self):
        self.report(connected=False, last_error="Connection refused")
        with self.leader_lock():
            response = self.get(HEALTH)
        self.assertEqual(response.status_code, 503)
        body = response.json()
        self.assertEqual(body["state"], "leading")
        self.assertFalse(body["broker"]["connected"])
        self.assertEqual(body["last_error"], "Connection refused")

    def test_health_is_503_when_the_lock_holder_stopped_reporting(self):
        self.report()
        self.env["ows.iot.runtime"]._ows_get().reported_at = datetime.now() - timedelta(minutes=5)
        with self.leader_lock():
            response = self.get(HEALTH)
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["state"], "stale")


@tagged("post_install", "-at_install")
class TestApiDocument(ApiCase):
    def test_the_served_document_is_the_repository_file(self):
        response = self.get(OPENAPI)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), DOCUMENT)

    def test_the_document_describes_exactly_the_api_routes(self):
        routes = {
            rule.rule
            for rule in self.env["ir.http"].routing_map().iter_rules()
            if rule.rule.startswith("/ows/iot/")
        }
        self.assertEqual(routes, set(DOCUMENT["paths"]))
