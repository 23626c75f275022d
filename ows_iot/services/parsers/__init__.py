"""Turn raw MQTT messages into what the engine needs: a timestamp, power, liveness.

One module per meter family, each a :class:`~.base.Family` (topic filters and
routes for a device, parse, last will, discovery), found by ``parser_type`` in
:data:`FAMILIES`. Adding a family is one new module and one line here; the
ingestor does not branch on parser types.
"""

from __future__ import annotations

from .base import (
    LIVENESS,
    MAX_ABS_POWER_W,
    MAX_PAYLOAD_BYTES,
    MAX_TIMESTAMP,
    Discovered,
    Drop,
    Family,
    Parsed,
    check_power,
    check_timestamp,
    decode_json,
    parse_online,
)
from .esphome import Esphome, parse_esphome
from .json_path import JsonPath, compile_path, parse_json_path
from .shelly_gen1 import GEN1_POWER_GROUPS, ShellyGen1, parse_shelly_gen1
from .shelly_gen2 import GEN2_NOTIFY_COMPONENTS, GEN2_POWER_FIELDS, ShellyGen2, parse_shelly_gen2
from .tasmota import DEFAULT_FULL_TOPIC, Tasmota, parse_tasmota
from .zigbee2mqtt import Zigbee2Mqtt, parse_zigbee2mqtt

FAMILIES: dict[str, Family] = {
    family.parser_type: family
    for family in (ShellyGen2(), ShellyGen1(), Tasmota(), Zigbee2Mqtt(), Esphome(), JsonPath())
}
PARSER_TYPES = tuple(FAMILIES)


def family(parser_type: str) -> Family:
    return FAMILIES[parser_type]


def discovery_filters() -> set[str]:
    return {f for family in FAMILIES.values() for f in family.discovery_filters}


def discover(topic: str, payload: bytes) -> list[Discovered]:
    """What the announcements on this topic say about meters (any family)."""
    found = []
    for family in FAMILIES.values():
        if family.discovery_filters and _matches_any(topic, family.discovery_filters):
            found += family.discover(topic, payload)
    return found


def is_announcement(topic: str) -> bool:
    """Whether a topic is one of the discovery filters' (announcements, not readings)."""
    return _matches_any(topic, discovery_filters())


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest)."""
    filter_parts, parts = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(filter_parts):
        if part == "#":
            return True
        if index >= len(parts) or (part != "+" and part != parts[index]):
            return False
    return len(parts) == len(filter_parts)


def _matches_any(topic: str, filters) -> bool:
    return any(topic_matches(f, topic) for f in filters)


__all__ = [
    "DEFAULT_FULL_TOPIC",
    "FAMILIES",
    "GEN1_POWER_GROUPS",
    "GEN2_NOTIFY_COMPONENTS",
    "GEN2_POWER_FIELDS",
    "LIVENESS",
    "MAX_ABS_POWER_W",
    "MAX_PAYLOAD_BYTES",
    "MAX_TIMESTAMP",
    "PARSER_TYPES",
    "Discovered",
    "Drop",
    "Family",
    "Parsed",
    "check_power",
    "check_timestamp",
    "compile_path",
    "decode_json",
    "discover",
    "discovery_filters",
    "family",
    "is_announcement",
    "parse_esphome",
    "parse_json_path",
    "parse_online",
    "parse_shelly_gen1",
    "parse_shelly_gen2",
    "parse_tasmota",
    "parse_zigbee2mqtt",
    "topic_matches",
]
