# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import json
from contextlib import contextmanager
from datetime import datetime, timezone

from odoo import Command
from odoo.sql_db import db_connect
from odoo.tests import TransactionCase, new_test_user

from ..services.events import event_uuid, session_uuid
from ..services.ingestor import Ingestor

T0 = 1_717_236_000.0  # 2024-06-01 10:00:00 UTC
# Not the demo data's meter: tests run on databases with demo data too.
GEN2 = "shellypmminig3-0a1b2c3d4e5f"


def utc(epoch):
    """The naive UTC datetime Odoo stores for an epoch (whole seconds)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).replace(tzinfo=None, microsecond=0)


def gen2_frame(device_id, offset, watts):
    """A Shelly Gen2 NotifyStatus frame carrying power, at T0 + offset."""
    frame = {
        "src": device_id,
        "dst": f"{device_id}/events",
        "method": "NotifyStatus",
        "params": {"ts": T0 + offset, "pm1:0": {"id": 0, "apower": watts}},
    }
    return f"{device_id}/events/rpc", json.dumps(frame).encode(), T0 + offset


def engine_events(device, profile, until=None):
    """Run a power profile [(offset, watts), ...] through the real engine.

    Returns the events as dicts in the schema the ingestion takes.
    """
    ingestor = Ingestor([device._ows_engine_config()])
    events = []
    for offset, watts in profile:
        topic, payload, received = gen2_frame(device.device_id, offset, watts)
        events += ingestor.process(topic, payload, received)
    if until is not None:
        events += ingestor.advance(T0 + until)
    return [event.to_dict() for event in events]


def session_event(
    device_id,
    event_type,
    seq,
    offset,
    *,
    start=0.0,
    working=0.0,
    standby=0.0,
    end=None,
    state=None,
    power=0.0,
    session_start=None,
    **payload,
):
    """A hand-made session event; the session is identified by its start."""
    start_at = T0 + (start if session_start is None else session_start)
    session_id = session_uuid(device_id, round(start_at * 1000))
    status = {"session_stopped": "completed", "session_timeout": "timeout"}.get(
        event_type, "running"
    )
    body = {
        "start": T0 + start,
        "end": None if end is None else T0 + end,
        "status": status,
        "state": state or ("idle" if end is not None else "working"),
        "power_w": power,
        "working_s": working,
        "standby_s": standby,
        "total_s": working + standby,
        "energy_wh": 0.0,
        "start_power_w": power,
        "end_power_w": None if end is None else power,
        "avg_power_w": power,
        "peak_power_w": power,
        "seq": seq,
    }
    body.update(payload)
    return {
        "event_uid": event_uuid(device_id, session_id, seq),
        "event_type": event_type,
        "device_id": device_id,
        "session_id": session_id,
        "timestamp": T0 + offset,
        "payload": body,
    }


def device_event(device_id, event_type, seq, offset):
    return {
        "event_uid": event_uuid(device_id, None, seq),
        "event_type": event_type,
        "device_id": device_id,
        "session_id": None,
        "timestamp": T0 + offset,
        "payload": {"reason": "message", "seq": seq},
    }


class OwsIotCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.ref("base.main_company")
        cls.company_b = cls.env["res.company"].create({"name": "Second Workshop"})
        cls.Device = cls.env["mqtt.device"]
        cls.Session = cls.env["mqtt.session"]
        cls.Event = cls.env["ows.iot.event"]
        cls.customer = cls.env["res.partner"].create({"name": "Maker Space Member"})
        # Without a product, sessions are held back from the amounts to bill.
        cls.machine_time = cls.env["product.product"].create(
            {"name": "Machine time", "type": "service", "list_price": 1.5}
        )
        cls.device = cls.Device.create(
            {
                "name": "Shaper Origin",
                "device_id": GEN2,
                "mqtt_topic": GEN2,
                "company_id": cls.company.id,
                "product_id": cls.machine_time.id,
                "price_unit": 1.5,
                "partner_id": cls.customer.id,
            }
        )
        cls.device_b = cls.Device.create(
            {
                "name": "Laser B",
                "device_id": "shellyplus1pm-b",
                "mqtt_topic": "shellyplus1pm-b",
                "company_id": cls.company_b.id,
            }
        )
        cls.iot_user = new_test_user(
            cls.env,
            login="iot_user",
            groups="base.group_user,ows_iot.group_ows_iot_user",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        cls.iot_manager = new_test_user(
            cls.env,
            login="iot_manager",
            groups="base.group_user,ows_iot.group_ows_iot_manager",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        cls.manager_b = new_test_user(
            cls.env,
            login="iot_manager_b",
            groups="base.group_user,ows_iot.group_ows_iot_manager",
            company_id=cls.company_b.id,
            company_ids=[Command.set(cls.company_b.ids)],
        )
        cls.employee = new_test_user(
            cls.env, login="plain_employee", groups="base.group_user", company_id=cls.company.id
        )
        cls.admin = new_test_user(
            cls.env,
            login="settings_admin",
            groups="base.group_user,base.group_system",
            company_id=cls.company.id,
            company_ids=[Command.set((cls.company | cls.company_b).ids)],
        )

    def ingest(self, events, user=None):
        Event = self.Event.with_user(user) if user else self.Event
        return Event.ingest_events(events)

    def session_of(self, event):
        return self.Session.search([("session_id", "=", event["session_id"])])

    def make_session(self, device=None, working=600.0, standby=0.0, end=True):
        """A completed (or running) session of ``device`` with the given seconds."""
        device = device or self.device
        seq = self.next_seq = getattr(self, "next_seq", 0) + 1
        start = seq * 100_000.0
        event = session_event(
            device.device_id,
            "session_stopped" if end else "session_heartbeat",
            seq,
            start + working + standby,
            start=start,
            working=working,
            standby=standby,
            end=start + working + standby if end else None,
        )
        [result] = self.ingest([event])
        self.assertEqual(result["status"], "created", result["message"])
        return self.session_of(event)

    @contextmanager
    def other_transaction_device(self):
        """A device committed by another connection, invisible to the test's snapshot.

        Yields (cursor, device id) of that connection; everything it wrote is removed
        afterwards. Used to play a concurrent writer.
        """
        self.Event.search([])  # the test transaction's snapshot is taken now
        with db_connect(self.env.cr.dbname).cursor() as cr:
            cr.execute(
                """INSERT INTO mqtt_device (name, device_id, mqtt_topic, company_id,
                       parser_type, session_strategy, billing_rounding, currency_id,
                       active, billing_unit_s)
                   VALUES ('elsewhere', 'elsewhere', 'elsewhere', %s, 'shelly_gen2',
                       'power_threshold', 'up', %s, true, 60)
                   RETURNING id""",
                (self.company.id, self.company.currency_id.id),
            )
            device_id = cr.fetchone()[0]
            cr.commit()  # pylint: disable=invalid-commit  # the other writer
            try:
                yield cr, device_id
            finally:
                cr.rollback()
                cr.execute("DELETE FROM ows_iot_event WHERE device_id = %s", (device_id,))
                cr.execute("DELETE FROM mqtt_session WHERE device_id = %s", (device_id,))
                cr.execute("DELETE FROM mqtt_device WHERE id = %s", (device_id,))
                cr.commit()  # pylint: disable=invalid-commit  # the other writer
