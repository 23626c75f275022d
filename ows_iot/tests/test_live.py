# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Live views: the leader's commit sends one bus notification naming what changed,
and the board's data."""

import json
import threading
import time

from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools.translate import code_translations

from odoo.addons.bus.models.bus import channel_with_db, json_dump

from ..runtime.supervisor import DatabaseRuntime, LeaderTerm
from ..services.ingestor import Ingestor
from ..services.leader import NEW_TERM_SQL
from .common import T0, gen2_frame
from .test_runtime import RuntimeCase

SAW = "shellypmminig3-live00000001"
LIVE = "ows_iot/live"


class LeaderFeed:
    """A leader's engine fed message by message: what one commit would write."""

    def __init__(self, device):
        self.device = device
        self.ingestor = Ingestor([device._ows_engine_config()])

    def readings(self, profile):
        """(events as dicts, {device_id: snapshot}) after [(offset, watts), ...]."""
        events = []
        for offset, watts in profile:
            topic, payload, received = gen2_frame(self.device.device_id, offset, watts)
            events += self.ingestor.process(topic, payload, received)
        return self._result(events)

    def advance(self, offset):
        return self._result(self.ingestor.advance(T0 + offset))

    def _result(self, events):
        state = self.ingestor.snapshot_device(self.device.device_id)
        return [e.to_dict() for e in events], {self.device.device_id: json.loads(json.dumps(state))}


class LeaderCase(RuntimeCase):
    def setUp(self):
        super().setUp()
        self.runtime = DatabaseRuntime(self.env.cr.dbname)
        self.addCleanup(self.runtime.lock.release)
        self.term = LeaderTerm(self.runtime, self.runtime.lock, threading.Event(), time.time())
        self.term.registry = self.registry
        # The leader's cursors share the test transaction (see TestLeaderCommit).
        self.registry.enter_test_mode(self.env.cr)
        self.addCleanup(self.registry.leave_test_mode)
        self.assertTrue(self.runtime.lock.acquire())
        self.env.cr.execute(NEW_TERM_SQL)
        self.term.term_number = self.env.cr.fetchone()[0]
        self.device = self.make_device(SAW, stop_debounce_s=15)
        self.term.ids = {SAW: self.device.id}
        self.feed = LeaderFeed(self.device)
        self.group = self.env.ref("ows_iot.group_ows_iot_user")
        self.env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM bus_bus")
        self.last_bus_id = self.env.cr.fetchone()[0]

    def notifications(self):
        """The ows_iot/live notifications sent since the last call, as payloads."""
        self.env.cr.precommit.run()  # what a commit does first: the bus rows
        channel = json_dump(channel_with_db(self.env.cr.dbname, self.group))
        rows = (
            self.env["bus.bus"]
            .sudo()
            .search([("id", ">", self.last_bus_id), ("channel", "=", channel)], order="id")
        )
        if rows:
            self.last_bus_id = rows[-1].id
        messages = [json.loads(row.message) for row in rows]
        self.assertEqual({m["type"] for m in messages} - {LIVE}, set())
        return [m["payload"] for m in messages]

    def commit(self, events, states):
        self.term._commit(events, states)
        return self.notifications()


@tagged("post_install", "-at_install")
class TestLiveNotifications(LeaderCase):
    def test_one_notification_per_commit_however_many_messages(self):
        """Forty readings in one commit: a session starts, the power moves forty
        times, and the commit sends one notification with the last power."""
        profile = [(offset, 500.0 + offset) for offset in range(0, 40)]
        events, states = self.feed.readings(profile)
        self.assertTrue(any(e["event_type"] == "session_started" for e in events))
        notifications = self.commit(events, states)
        self.assertEqual(len(notifications), 1)
        session = self.Session.search([("device_id", "=", self.device.id)])
        self.assertEqual(session.status, "running")
        self.assertEqual(
            notifications[0],
            {
                "devices": [
                    {
                        "id": self.device.id,
                        "power_w": 539.0,
                        "state": "working",
                        "online": True,
                        "running_session_id": session.id,
                        "last_seen": "2024-06-01 10:00:39",
                    }
                ],
                "sessions": [{"id": session.id, "device_id": self.device.id, "status": "running"}],
            },
        )
        self.device.invalidate_recordset()
        self.assertEqual(self.device.current_power_w, 539.0)

    def test_a_power_change_alone_is_notified_a_steady_reading_is_not(self):
        self.commit(*self.feed.readings([(0, 500.0), (5, 500.0)]))
        # The same power again: "Last seen" moves, nothing a live view shows changes.
        events, states = self.feed.readings([(10, 500.0)])
        self.assertFalse(events)
        self.assertEqual(self.commit(events, states), [])
        # A new power without any event: notified, with the power.
        events, states = self.feed.readings([(12, 720.0)])
        self.assertFalse(events)
        (notification,) = self.commit(events, states)
        self.assertEqual(notification["sessions"], [])
        self.assertEqual(
            [(d["id"], d["power_w"]) for d in notification["devices"]], [(self.device.id, 720.0)]
        )

    def test_a_redelivered_commit_sends_nothing(self):
        events, states = self.feed.readings([(0, 500.0), (5, 500.0)])
        self.assertEqual(len(self.commit(events, states)), 1)
        newer = self.feed.readings([(8, 650.0)])
        self.assertEqual(len(self.commit(*newer)), 1)
        # The older commit again (its acknowledgement was lost): events known,
        # power not moved back, nothing to show.
        self.assertEqual(self.commit([], states), [])
        self.device.invalidate_recordset()
        self.assertEqual(self.device.current_power_w, 650.0)

    def test_a_session_ending_is_notified_with_its_status(self):
        self.commit(*self.feed.readings([(0, 500.0), (5, 500.0)]))
        events, states = self.feed.readings([(20, 0.0)])
        more, states = self.feed.advance(40)
        (notification,) = self.commit(events + more, states)
        session = self.Session.search([("device_id", "=", self.device.id)])
        self.assertEqual(session.status, "completed")
        self.assertEqual(
            notification["sessions"],
            [{"id": session.id, "device_id": self.device.id, "status": "completed"}],
        )
        (device,) = notification["devices"]
        self.assertEqual((device["state"], device["running_session_id"]), ("idle", False))
        self.assertEqual(device["power_w"], 0.0)

    def test_a_device_gone_silent_shows_no_power(self):
        self.commit(*self.feed.readings([(0, 500.0), (5, 500.0)]))
        (notification,) = self.commit(*self.feed.advance(5 + 61))
        (device,) = notification["devices"]
        self.assertFalse(device["online"])
        self.assertEqual(device["power_w"], 0.0)
        self.assertEqual(notification["sessions"][0]["status"], "timeout")

    def test_the_minute_cron_notifies_the_sessions_it_brings_up_to_date(self):
        session, _state = self.running(self.device)
        self.age(session)
        self.notifications()
        self.Runtime._cron_flush()
        (notification,) = self.notifications()
        self.assertIn(session.id, [s["id"] for s in notification["sessions"]])
        # Nothing older than a minute to flush: no notification.
        self.Runtime._cron_flush()
        self.assertEqual(self.notifications(), [])

    def test_only_iot_users_receive_it(self):
        """The notification goes to the IoT users' group channel, which the bus
        subscribes IoT users to and nobody else."""
        self.commit(*self.feed.readings([(0, 500.0), (5, 500.0)]))
        user = new_test_user(self.env, "live_iot_user", groups="ows_iot.group_ows_iot_user")
        clerk = new_test_user(self.env, "live_clerk", groups="base.group_user")
        self.assertIn(self.group, user.groups_id)
        self.assertNotIn(self.group, clerk.groups_id)


@tagged("post_install", "-at_install")
class TestBoardData(RuntimeCase):
    def setUp(self):
        super().setUp()
        self.Device.search([]).write({"active": False})
        self.saw = self.make_device(SAW, name="Panel Saw", location="Wood Shop")
        self.laser = self.make_device(
            "shellypmminig3-live00000002",
            name="Laser",
            location="Makerspace",
            out_of_order=True,
            out_of_order_reason="Lens broken",
        )
        self.session, _state = self.running(self.saw)
        self.user = new_test_user(
            self.env, "board_user", groups="ows_iot.group_ows_iot_user", tz="Europe/Berlin"
        )

    def test_tiles_show_what_runs_now(self):
        data = self.Device.with_user(self.user).get_board_data()
        self.assertEqual(data["locations"], ["Makerspace", "Wood Shop"])
        self.assertEqual([c["id"] for c in data["companies"]], [self.env.company.id])
        tiles = {tile["name"]: tile for tile in data["tiles"]}
        saw, laser = tiles["Panel Saw"], tiles["Laser"]
        self.assertEqual(saw["session"]["id"], self.session.id)
        self.assertEqual(saw["session"]["start"], "2024-06-01 10:00:00")
        self.assertEqual(saw["state_label"], "Standby")
        self.assertTrue(saw["online"])
        self.assertFalse(laser["session"])
        self.assertTrue(laser["out_of_order"])
        self.assertEqual(laser["out_of_order_reason"], "Lens broken")
        self.assertEqual(laser["state_label"], "Out of order")

    def test_tiles_filter_by_location_and_company(self):
        Device = self.Device.with_user(self.user)
        by_location = Device.get_board_data(location="Wood Shop")
        self.assertEqual([t["name"] for t in by_location["tiles"]], ["Panel Saw"])
        # The filters keep listing every location to choose from.
        self.assertEqual(by_location["locations"], ["Makerspace", "Wood Shop"])
        other = self.env["res.company"].create({"name": "Other Workshop"})
        self.assertFalse(Device.get_board_data(company_ids=[other.id])["tiles"])

    def test_the_german_board_speaks_german(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.env["ir.module.module"]._load_module_terms(["ows_iot"], ["de_DE"], overwrite=True)
        self.user.lang = "de_DE"
        tiles = {t["name"]: t for t in self.Device.with_user(self.user).get_board_data()["tiles"]}
        self.assertEqual(tiles["Laser"]["state_label"], "Außer Betrieb")
        # The board's and the timeline's own words reach the web client in German,
        # those shared with the backend's views included.
        web = {
            m["id"]: m["string"]
            for m in code_translations.get_web_translations("ows_iot", "de_DE")["messages"]
        }
        for english, german in [
            ("Machine Board", "Maschinenübersicht"),
            ("Wall Screen", "Wandbildschirm"),
            ("Machine", "Maschine"),
            ("Running", "Läuft"),
            ("Timed out", "Zeitüberschreitung"),
            ("Offline", "Offline"),
            ("running", "läuft"),
        ]:
            self.assertEqual(web.get(english), german, english)


@tagged("post_install", "-at_install")
class TestKioskRoute(HttpCase):
    def test_the_wall_screen_address_opens_the_board_full_screen(self):
        new_test_user(self.env, "wall_screen", groups="ows_iot.group_ows_iot_user")
        self.authenticate("wall_screen", "wall_screen")
        response = self.url_open("/ows_iot/board", allow_redirects=False)
        self.assertEqual(response.status_code, 303)
        self.assertTrue(
            response.headers["Location"].endswith(
                "/odoo/action-ows_iot.mqtt_device_action_board_kiosk"
            )
        )
        action = self.env.ref("ows_iot.mqtt_device_action_board_kiosk")
        self.assertEqual(action.tag, "ows_iot.board")
        self.assertIn("kiosk", action.context)
