# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Demo sessions: a week of realistic meter messages, run through the real engine.

The demo data does not write sessions itself. It plays Shelly messages into the
session engine and hands the events to the one ingestion path, exactly as the MQTT
runtime does, so the demo sessions, events and live fields agree with each other.
"""

import json
import random
from datetime import datetime, timedelta

import pytz

from odoo import api, fields, models

from ..services.ingestor import Ingestor

DEMO_TIMEZONE = "Europe/Berlin"
DEMO_DAYS = 7
INGEST_BATCH = 500


def _shaper_session(rng):
    """Phases (seconds, watts, relative noise) of a CNC routing job."""
    phases = [(rng.randint(180, 600), rng.uniform(24, 32), 0.05)]  # switched on, setup
    for _cut in range(rng.randint(2, 5)):
        phases.append((rng.randint(420, 1500), rng.uniform(430, 720), 0.12))  # routing
        phases.append((rng.randint(120, 480), rng.uniform(24, 32), 0.05))  # bit change
    return phases


def _printer_session(rng):
    """Phases of a 3D print: heat-up, print, cool-down with the fans on."""
    return [
        (rng.randint(240, 420), rng.uniform(190, 230), 0.04),
        (rng.randint(2400, 14400), rng.uniform(70, 110), 0.15),
        (rng.randint(300, 720), rng.uniform(11, 16), 0.08),
    ]


PROFILES = {"shaper": _shaper_session, "printer": _printer_session}


class MqttDevice(models.Model):
    _inherit = "mqtt.device"

    @api.model
    def _ows_demo_generate_sessions(self, demo_devices, days=DEMO_DAYS):
        """Feed ``days`` of meter messages, up to now, through engine and ingestion.

        ``demo_devices`` is a list of ``{"device": id, "profile": name of PROFILES,
        "customers": [partner ids]}``. Every third session goes to one of the extra
        customers; sessions older than three days are billed, one of them is free.
        The last session of a ``shaper`` device ended ten minutes ago and nothing is
        left running: the next job on the meter starts a session of its own, also
        when a simulator plays the same meter (the Docker Compose demo).
        """
        now = fields.Datetime.now().replace(tzinfo=pytz.utc).timestamp()
        tz = pytz.timezone(DEMO_TIMEZONE)
        Event = self.env["ows.iot.event"].sudo()
        for spec in demo_devices:
            device = self.browse(spec["device"])
            rng = random.Random(f"{device.device_id}-demo")
            messages = self._ows_demo_messages(device, spec["profile"], rng, now, days, tz)
            ingestor = Ingestor([device._ows_engine_config()])
            events = []
            for ts, topic, payload in messages:
                events += ingestor.process(topic, payload, ts + 0.2)
            events += ingestor.advance(now)
            # The engine's state as the runtime checkpoints it: a leader (or the cron)
            # goes on from where the demo data left each meter.
            device.sudo().engine_state = ingestor.snapshot_device(device.device_id)
            payloads = [event.to_dict() for event in events]
            for start in range(0, len(payloads), INGEST_BATCH):
                Event.ingest_events(payloads[start : start + INGEST_BATCH])
            self._ows_demo_settle(device, spec.get("customers") or [], now)
        return True

    @api.model
    def _ows_demo_settle(self, device, customer_ids, now):
        """Spread sessions over customers and bill the older ones, as a manager would."""
        sessions = self.env["mqtt.session"].search(
            [("device_id", "=", device.id)], order="start_time, id"
        )
        for index, session in enumerate(sessions):
            if customer_ids and index % 3 == 2:
                session.partner_id = customer_ids[(index // 3) % len(customer_ids)]
        ended = sessions.filtered(lambda session: session.status != "running")
        cutoff = datetime.fromtimestamp(now - 3 * 86400, pytz.utc).replace(tzinfo=None)
        old = ended.filtered(lambda session: session.start_time < cutoff)
        if old:
            old[:1].action_mark_free()
            old[1:].action_mark_billed()

    @api.model
    def _ows_demo_messages(self, device, profile, rng, now, days, tz):
        """(time, topic, payload) of the sessions of ``days`` days, oldest first."""
        today = datetime.fromtimestamp(now, tz).date()
        # The last session of a shaper starts an hour before now.
        horizon = now - 3600 if profile == "shaper" else now - 300
        messages = []
        timeout_pending = profile == "shaper"
        for back in range(days, -1, -1):
            day = today - timedelta(days=back)
            weekend = day.weekday() >= 5
            count = rng.choice((0, 0, 1)) if weekend else rng.choice((1, 2, 2, 3))
            cursor = tz.localize(datetime.combine(day, datetime.min.time()).replace(hour=8))
            cursor = cursor.timestamp() + rng.randint(0, 3600)
            for _session in range(count):
                phases = PROFILES[profile](rng)
                length = sum(phase[0] for phase in phases)
                if cursor + length + 900 > horizon:
                    break
                timeout = timeout_pending and back <= 3
                timeout_pending = timeout_pending and not timeout
                messages += self._ows_demo_session(device, phases, cursor, rng, timeout)
                cursor += length + rng.randint(1800, 7200)
        if profile == "shaper":
            # Switched on an hour ago, off again ten minutes ago.
            start = now - 3600
            phases = [(420, 27.0, 0.05), (900, 610.0, 0.12), (300, 29.0, 0.05), (1380, 655.0, 0.12)]
            messages += self._ows_demo_session(device, phases, start, rng)
        # Plugged in and idle: a recent sign of life.
        messages.append(self._ows_demo_message(device, now - 60, 0.0))
        return messages

    @api.model
    def _ows_demo_session(self, device, phases, start, rng, timeout=False, running=False):
        """Messages of one session: readings while it runs, then off (or gone)."""
        messages = [self._ows_demo_online(device, start - 5, True)]
        t = start
        for duration, watts, noise in phases:
            end = t + duration
            while t < end:
                power = max(0.0, watts * (1 + rng.uniform(-noise, noise)))
                messages.append(self._ows_demo_message(device, t, round(power, 1)))
                t += rng.randint(20, 60)
            t = end
        if running:
            return messages
        if timeout:
            # The power strip is switched off with the machine: its last will.
            messages.append(self._ows_demo_online(device, t + 2, False))
            return messages
        messages.append(self._ows_demo_message(device, t, 0.0))
        messages.append(self._ows_demo_message(device, t + 60, 0.0))
        return messages

    @api.model
    def _ows_demo_message(self, device, ts, watts):
        if device.parser_type == "shelly_gen1":
            channel = (device.channel or "relay:0").replace(":", "/")
            return ts, f"{device.mqtt_topic}/{channel}/power", str(watts).encode()
        component = device.channel or "pm1:0"
        frame = {
            "src": device.device_id,
            "dst": f"{device.mqtt_topic}/events",
            "method": "NotifyStatus",
            "params": {"ts": round(ts, 2), component: {"id": 0, "apower": watts}},
        }
        return ts, f"{device.mqtt_topic}/events/rpc", json.dumps(frame).encode()

    @api.model
    def _ows_demo_online(self, device, ts, online):
        return ts, f"{device.mqtt_topic}/online", b"true" if online else b"false"
