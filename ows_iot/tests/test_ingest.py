# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import random
from datetime import datetime, timezone

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import GEN2, T0, OwsIotCase, device_event, engine_events, session_event, utc

# 10 s working at 500 W from t=10, standby 100..200, working 200..400, off at 400.
PROFILE = [(0, 0.0), (10, 500.0), (100, 50.0), (200, 500.0), (400, 0.0)]
SESSION_FIELDS = (
    "session_id",
    "start_time",
    "end_time",
    "status",
    "current_state",
    "total_duration_s",
    "working_duration_s",
    "standby_duration_s",
    "start_power_w",
    "end_power_w",
    "avg_power_w",
    "peak_power_w",
    "energy_wh",
    "last_heartbeat",
    "billable_s",
    "billable_units",
    "amount",
)


@tagged("post_install", "-at_install")
class TestIngest(OwsIotCase):
    def test_engine_session_lands_in_the_database(self):
        events = engine_events(self.device, PROFILE, until=500)
        self.assertEqual(
            [e["event_type"] for e in events],
            [
                "device_online",
                "session_started",
                "state_changed",
                "state_changed",
                "session_heartbeat",
                "state_changed",
                "session_stopped",
            ],
        )
        results = self.ingest(events)
        self.assertEqual([r["status"] for r in results], ["created"] * len(events))
        self.assertTrue(all(r["id"] and r["message"] is None for r in results))

        session = self.session_of(events[1])
        self.assertEqual(len(session), 1)
        self.assertEqual(session.device_id, self.device)
        self.assertEqual(session.company_id, self.company)
        self.assertEqual(session.partner_id, self.customer)
        self.assertEqual(session.status, "completed")
        self.assertEqual(session.current_state, "idle")
        self.assertEqual(session.start_time, utc(T0 + 10))
        self.assertEqual(session.end_time, utc(T0 + 400))
        self.assertEqual(session.working_duration_s, 290.0)
        self.assertEqual(session.standby_duration_s, 100.0)
        self.assertEqual(session.total_duration_s, 390.0)
        self.assertAlmostEqual(session.total_duration_h, 390 / 3600)
        self.assertEqual(session.peak_power_w, 500.0)
        # 290 s at 500 W + 100 s at 50 W = 150,000 Ws = 41.667 Wh
        self.assertAlmostEqual(session.energy_wh, 41.666667, places=5)
        self.assertEqual(session.last_heartbeat, utc(T0 + 310))
        # 290 s at 60 s per unit, rounded up: 5 units at 1.50
        self.assertEqual(session.billable_s, 290.0)
        self.assertEqual(session.billable_units, 5)
        self.assertEqual(session.amount, 7.5)
        self.assertTrue(session.name.startswith("SES/"))

        rows = self.Event.search([("device_id", "=", self.device.id)])
        self.assertEqual(len(rows), 7)
        self.assertTrue(all(rows.mapped("processed")))
        self.assertFalse(any(rows.mapped("processing_error")))
        self.assertEqual(session.event_ids, rows.filtered("session_uid"))
        self.assertEqual(session.event_count, 6)
        online = rows.filtered(lambda e: e.event_type == "device_online")
        self.assertFalse(online.session_id)
        self.assertEqual(online.timestamp, utc(T0))
        changed = rows.filtered(lambda e: e.event_type == "state_changed").sorted("seq")
        self.assertEqual(changed.mapped("state"), ["standby", "working", "stopping"])
        self.assertEqual(changed[0].power_w, 50.0)
        self.assertEqual(changed[0].payload_json["from_state"], "working")
        self.assertIn('"to_state": "standby"', changed[0].payload_text)

        self.assertTrue(self.device.online)
        self.assertEqual(self.device.current_state, "idle")
        self.assertEqual(self.device.current_power_w, 0.0)
        self.assertFalse(self.device.running_session_id)
        self.assertEqual(self.device.last_seen, utc(T0 + 400))
        self.assertEqual(self.device.session_count, 1)
        self.assertAlmostEqual(self.device.total_working_h, 290 / 3600)
        self.assertEqual(self.device.amount_to_bill, 7.5)

    def test_running_session_shows_on_the_device(self):
        events = engine_events(self.device, PROFILE[:3], until=150)
        self.ingest(events)
        session = self.session_of(events[1])
        self.assertEqual(session.status, "running")
        self.assertEqual(session.current_state, "standby")
        self.assertFalse(session.end_time)
        self.assertEqual(self.device.running_session_id, session)
        self.assertEqual(self.device.current_state, "standby")
        self.assertEqual(self.device.current_power_w, 50.0)
        self.assertEqual(self.device.amount_to_bill, 0.0, "running sessions are not to bill yet")

    def test_replay_is_idempotent(self):
        events = engine_events(self.device, PROFILE, until=500)
        self.ingest(events)
        session = self.session_of(events[1])
        before = session.read(SESSION_FIELDS)
        count = self.Event.search_count([])
        again = self.ingest(events)
        self.assertEqual([r["status"] for r in again], ["duplicate"] * len(events))
        self.assertEqual(
            [r["id"] for r in again],
            [self.Event.search([("event_uid", "=", e["event_uid"])]).id for e in events],
        )
        self.assertEqual(self.Event.search_count([]), count)
        self.assertEqual(self.Session.search_count([("device_id", "=", self.device.id)]), 1)
        self.assertEqual(session.read(SESSION_FIELDS), before)

    def test_duplicate_within_a_batch_is_written_once(self):
        event = session_event(GEN2, "session_started", 1, 0, working=0)
        results = self.ingest([event, dict(event)])
        self.assertEqual([r["status"] for r in results], ["created", "duplicate"])
        self.assertIsNone(results[1]["id"])
        self.assertEqual(self.Event.search_count([("event_uid", "=", event["event_uid"])]), 1)

    def test_out_of_order_batches_end_in_the_same_session(self):
        events = engine_events(self.device, PROFILE, until=500)
        self.ingest(events)
        expected = self.session_of(events[1]).read(SESSION_FIELDS)[0]
        expected_device = self.device.read(
            ["online", "current_state", "current_power_w", "last_seen", "running_session_id"]
        )[0]

        twin = self.device.copy({"name": "Twin", "device_id": "twin-1", "mqtt_topic": "twin-1"})
        twin_events = engine_events(twin, PROFILE, until=500)
        shuffled = list(twin_events)
        random.Random(7).shuffle(shuffled)
        # Newest first, one event per batch, then the shuffled whole again.
        for event in reversed(twin_events):
            self.ingest([event])
            if event["event_type"] == "session_stopped":
                # the stop came first: later, older events never reopen the session
                self.assertEqual(self.session_of(event).status, "completed")
        self.ingest(shuffled)
        got = self.session_of(twin_events[1]).read(SESSION_FIELDS)[0]
        for name in SESSION_FIELDS:
            if name not in ("id", "session_id"):
                self.assertEqual(got[name], expected[name], name)
        got_device = twin.read(list(expected_device))[0]
        for name in ("online", "current_state", "current_power_w", "last_seen"):
            self.assertEqual(got_device[name], expected_device[name], name)
        self.assertFalse(twin.running_session_id)

    def test_shuffled_batches_of_a_long_day(self):
        profile = []
        for hour in range(6):
            base = hour * 3600
            # a steady meter still reports every minute, well within the message timeout
            profile += [(base, 0.0)]
            profile += [(base + t, 800.0) for t in range(60, 1200, 60)]
            profile += [(base + t, 30.0) for t in range(1200, 1500, 60)]
            profile += [(base + 1500, 0.0)]
        events = engine_events(self.device, profile, until=6 * 3600)
        self.ingest(events)
        sessions_in_order = self.Session.search([("device_id", "=", self.device.id)])
        self.assertEqual(len(sessions_in_order), 6)
        totals = sorted(
            sessions_in_order.mapped(
                lambda s: (s.start_time, s.working_duration_s, s.standby_duration_s)
            )
        )

        twin = self.device.copy({"name": "Twin", "device_id": "twin-2", "mqtt_topic": "twin-2"})
        twin_events = engine_events(twin, profile, until=6 * 3600)
        random.Random(3).shuffle(twin_events)
        for start in range(0, len(twin_events), 5):
            self.ingest(twin_events[start : start + 5])
        twin_sessions = self.Session.search([("device_id", "=", twin.id)])
        self.assertEqual(
            sorted(
                twin_sessions.mapped(
                    lambda s: (s.start_time, s.working_duration_s, s.standby_duration_s)
                )
            ),
            totals,
        )
        self.assertEqual(set(twin_sessions.mapped("status")), {"completed"})
        # each session: 1140 s working, 300 s standby
        self.assertEqual(set(twin_sessions.mapped("working_duration_s")), {1140.0})
        self.assertEqual(set(twin_sessions.mapped("standby_duration_s")), {300.0})

    def test_unknown_device_is_rejected_next_to_good_events(self):
        good = session_event(GEN2, "session_started", 1, 0)
        unknown = session_event("shelly-nobody", "session_started", 1, 0)
        results = self.ingest([unknown, good])
        self.assertEqual(results[0]["status"], "error")
        self.assertIsNone(results[0]["id"])
        self.assertIn("Unknown device_id 'shelly-nobody'", results[0]["message"])
        self.assertEqual(results[1]["status"], "created")
        self.assertFalse(self.Event.search([("event_uid", "=", unknown["event_uid"])]))
        self.assertTrue(self.session_of(good))

    def test_broken_event_is_stored_with_its_error(self):
        good = session_event(GEN2, "session_started", 1, 0, start=0)
        broken = session_event(GEN2, "session_heartbeat", 2, 300, start=0, working=300)
        del broken["payload"]["start"]
        negative = session_event(GEN2, "session_heartbeat", 3, 600, start=0, working=-5)
        running_with_end = session_event(GEN2, "session_heartbeat", 4, 700, start=0, end=650)
        running_with_end["payload"]["status"] = "running"
        later = session_event(GEN2, "session_heartbeat", 5, 900, start=0, working=900)
        results = self.ingest([good, broken, negative, running_with_end, later])
        self.assertEqual(
            [r["status"] for r in results], ["created", "error", "error", "error", "created"]
        )
        self.assertEqual(results[1]["message"], "payload.start is required for session events")
        self.assertEqual(
            results[2]["message"], "payload.working_s must be a finite number, not negative"
        )
        self.assertEqual(
            results[3]["message"], "payload.end must be null while the session is running"
        )
        row = self.Event.browse(results[1]["id"])
        self.assertFalse(row.processed)
        self.assertEqual(row.processing_error, "payload.start is required for session events")
        self.assertFalse(row.session_id)
        session = self.session_of(good)
        self.assertEqual(session.working_duration_s, 900.0)
        self.assertEqual(
            set(session.event_ids.mapped("event_uid")), {later["event_uid"], good["event_uid"]}
        )

    def test_schema_errors_name_the_field(self):
        good = session_event(GEN2, "session_started", 1, 0)
        cases = [
            ("not an event", "event must be a JSON object"),
            ({**good, "event_uid": ""}, "event_uid must be a non-empty string"),
            ({**good, "event_uid": 42}, "event_uid must be a non-empty string"),
            ({**good, "event_uid": "x" * 129}, "event_uid must be at most 128 characters"),
            ({**good, "event_type": "session_paused"}, "event_type must be one of"),
            ({**good, "device_id": None}, "device_id must be a non-empty string"),
            ({**good, "session_id": None}, "session_id must be a non-empty string"),
            ({k: v for k, v in good.items() if k != "timestamp"}, "timestamp is required"),
            ({**good, "timestamp": "yesterday"}, "timestamp is not an ISO 8601 timestamp"),
            ({**good, "timestamp": True}, "timestamp must be epoch seconds or an ISO 8601 string"),
            ({**good, "timestamp": float("nan")}, "timestamp is out of range"),
            ({**good, "timestamp": 12.0}, "timestamp is out of range"),
            ({**good, "payload": [1, 2]}, "payload must be a JSON object"),
            (
                {**good, "payload": {**good["payload"], "x": float("inf")}},
                "payload must be plain JSON (no NaN or Infinity)",
            ),
        ]
        results = self.ingest([case for case, _message in cases])
        for (case, message), result in zip(cases, results, strict=True):
            self.assertEqual(result["status"], "error", case)
            self.assertIsNone(result["id"])
            self.assertIn(message, result["message"])
        self.assertFalse(self.Event.search([("device_id", "=", self.device.id)]))

    def test_iso_timestamps_are_accepted(self):
        event = session_event(GEN2, "session_stopped", 1, 400, start=10, working=390, end=400)
        event["timestamp"] = datetime.fromtimestamp(T0 + 400, tz=timezone.utc).isoformat()
        event["payload"]["start"] = "2024-06-01T10:00:10Z"
        event["payload"]["end"] = "2024-06-01T10:06:40"  # naive: UTC
        [result] = self.ingest([event])
        self.assertEqual(result["status"], "created", result["message"])
        row = self.Event.browse(result["id"])
        self.assertEqual(row.timestamp, utc(T0 + 400))
        self.assertEqual(row.timestamp_epoch, T0 + 400)
        session = row.session_id
        self.assertEqual(session.start_time, utc(T0 + 10))
        self.assertEqual(session.end_time, utc(T0 + 400))

    def test_device_events_drive_online_and_last_seen(self):
        self.ingest([device_event(GEN2, "device_online", 1, 0)])
        self.assertTrue(self.device.online)
        self.assertEqual(self.device.last_seen, utc(T0))
        self.ingest([device_event(GEN2, "device_offline", 3, 50)])
        self.assertFalse(self.device.online)
        self.assertEqual(self.device.last_seen, utc(T0), "an offline notice proves nothing alive")
        # a late, older online event does not bring the device back
        self.ingest([device_event(GEN2, "device_online", 2, 20)])
        self.assertFalse(self.device.online)
        self.assertEqual(self.device.last_seen, utc(T0 + 20))

    def test_timeout_ends_the_session_and_clears_power(self):
        events = engine_events(self.device, PROFILE[:2], until=10 + 301)
        self.assertEqual(events[-2]["event_type"], "session_timeout")
        self.assertEqual(events[-1]["event_type"], "device_offline")
        self.ingest(events)
        session = self.session_of(events[1])
        self.assertEqual(session.status, "timeout")
        self.assertEqual(session.end_time, utc(T0 + 10))
        self.assertFalse(self.device.online)
        self.assertEqual(self.device.current_power_w, 0.0)
        self.assertEqual(self.device.current_state, "idle")
        self.assertFalse(self.device.running_session_id)

    def test_delayed_timing_is_marked_on_the_session(self):
        started = session_event(GEN2, "session_started", 1, 0)
        self.ingest([started])
        self.assertEqual(self.session_of(started).timing, "exact")
        stop = session_event(GEN2, "session_stopped", 2, 60, working=60, end=60, timing="delayed")
        self.ingest([stop])
        self.assertEqual(self.session_of(stop).timing, "delayed")

    def test_archived_device_still_finishes_its_session(self):
        self.ingest([session_event(GEN2, "session_started", 1, 0)])
        self.device.active = False
        stop = session_event(GEN2, "session_stopped", 2, 60, working=60, end=60)
        [result] = self.ingest([stop])
        self.assertEqual(result["status"], "created", result["message"])
        self.assertEqual(self.session_of(stop).status, "completed")

    def test_the_runtime_names_the_device_record_of_a_shared_external_id(self):
        # The same meter id in another company, archived there: the leader ran the
        # engine for this database's active device and says which record it means.
        twin = self.Device.create(
            {
                "name": "Shaper Origin (old workshop)",
                "device_id": GEN2,
                "mqtt_topic": f"old/{GEN2}",
                "company_id": self.company_b.id,
                "active": False,
            }
        )
        events = engine_events(self.device, PROFILE, until=500)
        [ambiguous, *_rest] = self.Event.sudo().ingest_events(events)
        self.assertIn("ambiguous", ambiguous["message"])
        results = self.Event.sudo().ingest_events(events, device_ids={GEN2: self.device.id})
        self.assertEqual({r["status"] for r in results}, {"created"}, results)
        session = self.session_of(next(e for e in events if e["session_id"]))
        self.assertEqual(session.device_id, self.device)
        self.assertEqual(session.status, "completed")
        self.assertFalse(self.Event.search_count([("device_id", "=", twin.id)]))
        # Only the runtime (superuser) may name records; a manager's call is refused.
        with self.assertRaises(AccessError):
            self.Event.with_user(self.iot_manager).ingest_events(events, device_ids={GEN2: twin.id})

    def test_session_cannot_move_to_another_device(self):
        event = session_event(GEN2, "session_started", 1, 0)
        self.ingest([event])
        other = self.device.copy({"name": "Other", "device_id": "other", "mqtt_topic": "other"})
        hijack = dict(event, device_id="other", event_uid="hijack-1")
        [result] = self.ingest([hijack])
        self.assertEqual(result["status"], "error")
        self.assertIn(f"belongs to device {GEN2}", result["message"])
        self.assertFalse(other.running_session_id)
        self.assertEqual(self.session_of(event).device_id, self.device)

    def test_settled_session_is_not_changed_and_reprocessing_applies_later(self):
        session = self.make_session(working=600)
        session.action_mark_billed()
        late = session_event(
            GEN2,
            "session_stopped",
            99,
            0,
            session_start=self.next_seq * 100_000.0,
            start=self.next_seq * 100_000.0,
            working=1200,
            end=self.next_seq * 100_000.0 + 1200,
        )
        [result] = self.ingest([late])
        self.assertEqual(result["status"], "error")
        self.assertIn("already settled", result["message"])
        self.assertEqual(session.working_duration_s, 600.0)
        row = self.Event.browse(result["id"])
        self.assertFalse(row.processed)
        self.assertEqual(row.session_id, session, "the event still links to its session")

        session.with_user(self.admin).action_reset_to_bill()
        action = row.with_user(self.iot_manager).action_reprocess()
        self.assertEqual(action["params"]["type"], "success")
        self.assertTrue(row.processed)
        self.assertFalse(row.processing_error)
        self.assertEqual(session.working_duration_s, 1200.0)

    def test_ambiguous_device_id_across_companies(self):
        self.device_b.device_id = GEN2
        [result] = self.ingest([session_event(GEN2, "session_started", 1, 0)])
        self.assertEqual(result["status"], "error")
        self.assertIn("ambiguous", result["message"])
        # a manager sees only their company's device: no ambiguity
        [result] = self.ingest([session_event(GEN2, "session_started", 1, 0)], self.iot_manager)
        self.assertEqual(result["status"], "created", result["message"])
        self.assertEqual(self.Event.browse(result["id"]).device_id, self.device)

    def test_managers_ingest_for_their_companies_only(self):
        event_b = session_event("shellyplus1pm-b", "session_started", 1, 0)
        [result] = self.ingest([event_b], self.iot_manager)
        self.assertEqual(result["status"], "error")
        self.assertIn("Unknown device_id", result["message"])
        [result] = self.ingest([event_b], self.manager_b)
        self.assertEqual(result["status"], "created")
        self.assertEqual(self.session_of(event_b).company_id, self.company_b)
        self.assertEqual(self.Event.browse(result["id"]).company_id, self.company_b)
        for user in (self.iot_user, self.employee):
            with self.assertRaises(AccessError):
                self.ingest([session_event(GEN2, "session_started", 1, 0)], user)

    def test_concurrently_inserted_uid_counts_as_duplicate(self):
        event = session_event(GEN2, "session_started", 1, 0)
        other = session_event(GEN2, "session_started", 1, 0, start=5000)
        with self.other_transaction_device() as (cr, device_id):
            cr.execute(
                """INSERT INTO ows_iot_event (event_uid, event_type, timestamp, device_id,
                       company_id, processed)
                   VALUES (%s, 'session_started', now() at time zone 'UTC', %s, %s, true)""",
                (event["event_uid"], device_id, self.company.id),
            )
            cr.commit()  # pylint: disable=invalid-commit  # the other writer
            results = self.ingest([event, other])
            self.assertEqual([r["status"] for r in results], ["duplicate", "created"])
            self.assertFalse(self.session_of(event))
            self.assertTrue(self.session_of(other))

    def test_batches_are_written_in_bulk(self):
        events = []
        for number in range(10):
            start = number * 10_000.0
            for seq in range(1, 31):
                events.append(
                    session_event(
                        GEN2,
                        "session_heartbeat",
                        number * 100 + seq,
                        start + seq * 60,
                        start=start,
                        working=seq * 60.0,
                    )
                )
        queries = self.env.cr.sql_log_count
        results = self.ingest(events)
        self.env.flush_all()
        queries = self.env.cr.sql_log_count - queries
        self.assertEqual({r["status"] for r in results}, {"created"})
        self.assertEqual(self.Session.search_count([("device_id", "=", self.device.id)]), 10)
        # 300 events, 10 sessions: the query count follows the sessions, not the events
        self.assertLess(queries, 120, f"{queries} queries for 300 events")

    def test_event_log_is_immutable(self):
        [result] = self.ingest([session_event(GEN2, "session_started", 1, 0)])
        row = self.Event.browse(result["id"])
        with self.assertRaises(UserError):
            row.write({"power_w": 1.0})
        with self.assertRaises(UserError):
            row.with_context(ows_iot_ingest=True).write({"processing_error": "changed"})
        with self.assertRaises(UserError):
            row.unlink()
        with self.assertRaises(UserError):
            self.Event.create({"event_uid": "hand-made", "event_type": "device_online"})
        with self.assertRaises(AccessError):
            row.with_user(self.iot_manager).unlink()

    def test_not_a_list(self):
        with self.assertRaises(UserError):
            self.ingest({"event_uid": "x"})

    @mute_logger("odoo.sql_db", "odoo.addons.ows_iot.models.mqtt_session")
    def test_a_failing_session_does_not_fail_the_batch(self):
        good = session_event(GEN2, "session_started", 1, 0, start=0)
        raced = session_event(GEN2, "session_started", 2, 0, start=777)
        with self.other_transaction_device() as (cr, device_id):
            # Another transaction creates the second session at the same time.
            cr.execute(
                """INSERT INTO mqtt_session (name, session_id, device_id, company_id,
                       start_time, status, billing_state)
                   VALUES ('raced', %s, %s, %s, now() at time zone 'UTC', 'running',
                       'to_bill')""",
                (raced["session_id"], device_id, self.company.id),
            )
            cr.commit()  # pylint: disable=invalid-commit  # the other writer
            results = self.ingest([good, raced])
            self.assertEqual(results[0]["status"], "created", results[0]["message"])
            self.assertEqual(results[1]["status"], "error")
            self.assertIn("not applied", results[1]["message"])
            self.assertTrue(self.session_of(good))
            row = self.Event.browse(results[1]["id"])
            self.assertFalse(row.processed)
            self.assertIn("not applied", row.processing_error)
