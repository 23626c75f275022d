"""Builders of real-format Shelly messages for the engine tests."""

import json

from ows_iot.services.config import DeviceConfig
from ows_iot.services.ingestor import Ingestor

GEN2 = "shellypmminig3-48f6eeb73a1c"
GEN1 = "shellyplug-s-7C87CEB4A1B2"
T0 = 1_700_000_000.0


def gen2_config(**overrides) -> DeviceConfig:
    values = {"device_id": GEN2, "mqtt_topic": GEN2, "parser_type": "shelly_gen2"}
    values.update(overrides)
    return DeviceConfig(**values)


def gen1_config(**overrides) -> DeviceConfig:
    values = {"device_id": GEN1, "mqtt_topic": f"shellies/{GEN1}", "parser_type": "shelly_gen1"}
    values.update(overrides)
    return DeviceConfig(**values)


def rpc(power=None, ts=None, component="pm1:0", method="NotifyStatus", prefix=GEN2, energy=None):
    """A `<prefix>/events/rpc` frame; power None gives an energy-only frame."""
    status = {"id": 0}
    if power is not None:
        status["apower"] = power
    if energy is not None or power is None:
        status["aenergy"] = {"total": energy or 1234.5, "by_minute": [0, 0, 0], "minute_ts": 1}
    params = {component: status}
    if ts is not None:
        params["ts"] = ts
    frame = {"src": prefix, "dst": f"{prefix}/events", "method": method, "params": params}
    return f"{prefix}/events/rpc", json.dumps(frame).encode()


def online(value: bool, prefix=GEN2):
    return f"{prefix}/online", b"true" if value else b"false"


class Run:
    """Feeds messages at receive times (offsets from T0) and keeps every event."""

    def __init__(self, *configs):
        self.ingestor = Ingestor(configs or [gen2_config()])
        self.events = []

    def at(self, offset, message):
        topic, payload = message
        self.events += self.ingestor.process(topic, payload, T0 + offset)
        return self

    def power(self, offset, watts, **kwargs):
        """A Gen2 NotifyStatus carrying its own ts equal to the receive time."""
        return self.at(offset, rpc(watts, ts=T0 + offset, **kwargs))

    def until(self, offset):
        self.events += self.ingestor.advance(T0 + offset)
        return self

    def types(self):
        return [e.event_type for e in self.events]

    def of_type(self, event_type):
        return [e for e in self.events if e.event_type == event_type]

    def ended(self):
        return [e for e in self.events if e.event_type in ("session_stopped", "session_timeout")]
