"""Try one message against one device configuration: what would the parser read?

The device form's "Test a message" shows this: the reading (power, the device's
timestamp, the component, the phases), the online/offline notice, or the reason
the message would be dropped. It goes the ingestor's own way: the same routes and
the same parser, without an engine.
"""

from __future__ import annotations

from .config import DeviceConfig
from .ingestor import Ingestor
from .parsers import MAX_PAYLOAD_BYTES, Drop, family


def try_message(config: DeviceConfig, topic: str, payload: bytes) -> dict:
    """``{"subtopic", "power_w", "device_ts", "component", "phases", "online",
    "liveness", "will", "drop"}`` for one message to ``config``'s device."""
    result = {
        "subtopic": None,
        "power_w": None,
        "device_ts": None,
        "component": None,
        "phases": None,
        "online": None,
        "liveness": False,
        "will": False,
        "drop": None,
    }
    topic = (topic or "").strip()
    if len(payload) > MAX_PAYLOAD_BYTES:
        result["drop"] = "oversized"
        return result
    route = Ingestor([config]).route(topic)
    if route is None:
        result["drop"] = "unknown_topic"
        return result
    subtopic = result["subtopic"] = route[1]
    parser = family(config.parser_type)
    try:
        parsed = parser.parse(subtopic, payload, config, None)
    except Drop as drop:
        result["drop"] = drop.reason
        return result
    result.update(
        power_w=parsed.power_w,
        device_ts=parsed.device_ts,
        component=parsed.component,
        phases=dict(parsed.phases) if parsed.phases is not None else None,
        online=parsed.online,
        liveness=parsed.online is not False,
        will=parser.will(subtopic, config) and parsed.online is False,
    )
    return result
