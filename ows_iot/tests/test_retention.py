# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.tests import tagged

from ..models.ows_iot_event import RETENTION_PARAM
from .common import OwsIotCase, engine_events, session_event

# Working from 10 s, standby 100..200, working 200..400, off at 400; the run is in 2024,
# long before any retention's cutoff.
PROFILE = [(0, 0.0), (10, 500.0), (100, 50.0), (200, 500.0), (400, 0.0)]
TOTALS = ("total_duration_s", "working_duration_s", "standby_duration_s", "energy_wh", "amount")


@tagged("post_install", "-at_install")
class TestEventRetention(OwsIotCase):
    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param(RETENTION_PARAM, "90")

    def types_of(self, device):
        return sorted(self.Event.search([("device_id", "=", device.id)]).mapped("event_type"))

    def test_old_heartbeats_of_finished_sessions_go_and_the_session_stays(self):
        events = engine_events(self.device, PROFILE, until=500)
        self.ingest(events)
        session = self.session_of(events[1])
        totals = session.read(TOTALS)[0]
        self.assertIn("session_heartbeat", self.types_of(self.device))

        removed = self.Event._cron_purge_old_events()

        self.assertEqual(removed, 4)  # one heartbeat, three level changes
        self.assertEqual(
            self.types_of(self.device), ["device_online", "session_started", "session_stopped"]
        )
        session.invalidate_recordset()
        self.assertEqual(session.read(TOTALS)[0], totals)
        self.assertEqual(session.status, "completed")

    def test_running_sessions_keep_their_events(self):
        start = session_event(self.device.device_id, "session_started", 1, 0.0)
        beat = session_event(self.device.device_id, "session_heartbeat", 2, 60.0, working=60.0)
        self.ingest([start, beat])
        self.assertEqual(self.session_of(start).status, "running")

        self.assertEqual(self.Event._cron_purge_old_events(), 0)
        self.assertEqual(self.types_of(self.device), ["session_heartbeat", "session_started"])

    def test_recent_events_and_zero_retention_keep_everything(self):
        self.ingest(engine_events(self.device, PROFILE, until=500))
        before = self.types_of(self.device)
        # The run is about 2.5 years old: a 10-year retention keeps it.
        self.env["ir.config_parameter"].sudo().set_param(RETENTION_PARAM, "3650")
        self.assertEqual(self.Event._cron_purge_old_events(), 0)
        self.env["ir.config_parameter"].sudo().set_param(RETENTION_PARAM, "0")
        self.assertEqual(self.Event._cron_purge_old_events(), 0)
        self.assertEqual(self.types_of(self.device), before)

    def test_unreadable_setting_falls_back_to_the_default(self):
        self.env["ir.config_parameter"].sudo().set_param(RETENTION_PARAM, "ninety")
        self.assertEqual(self.Event._ows_retention_days(), 90)
        self.env["ir.config_parameter"].sudo().set_param(RETENTION_PARAM, "-5")
        self.assertEqual(self.Event._ows_retention_days(), 0)

    def test_small_batches_remove_the_whole_backlog(self):
        for device in (self.device, self.device_b):
            self.ingest(engine_events(device, PROFILE, until=500))
        self.assertEqual(self.Event._cron_purge_old_events(batch_size=1), 8)
        for device in (self.device, self.device_b):
            self.assertNotIn("session_heartbeat", self.types_of(device))

    def test_a_spent_time_budget_reports_the_rest_for_the_next_run(self):
        self.ingest(engine_events(self.device, PROFILE, until=500))
        self.assertEqual(self.Event._cron_purge_old_events(batch_size=1, time_budget_s=0), 0)
        self.assertEqual(self.Event._cron_purge_old_events(batch_size=1), 4)

    def test_the_cron_is_scheduled_daily(self):
        cron = self.env.ref("ows_iot.ir_cron_ows_iot_purge_events")
        self.assertTrue(cron.active)
        self.assertEqual((cron.interval_number, cron.interval_type), (1, "days"))

    def test_a_sessions_events_are_indexed_with_their_time(self):
        self.env.cr.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ows_iot_event'"
        )
        indexes = dict(self.env.cr.fetchall())
        self.assertIn(
            '(session_id, "timestamp" DESC, id DESC)',
            indexes.get("ows_iot_event_session_time_idx", ""),
        )
        self.assertNotIn("ows_iot_event__session_id_index", indexes)
