"""Tasmota: ``SENSOR`` telemetry, ``STATUS10``, ``STATE`` and the ``LWT`` last will.

A Tasmota device publishes under its FullTopic, ``%prefix%/%topic%/`` by default
(``tele/<topic>/SENSOR``) or ``%topic%/%prefix%/`` (``<topic>/tele/SENSOR``); the
device's ``mqtt_topic`` is Tasmota's ``%topic%`` and ``full_topic`` the pattern.
``ENERGY.Power`` is a number, or a list on multi-channel meters: summed, or the
element at the index the channel names (``0`` is the first). ``tele/STATE`` and
every other state topic prove the device alive; ``tele/LWT`` is ``Online`` or
``Offline``. ``cmnd`` topics are commands to the device. Tasmota's ``Time`` is
local time without a zone: the receive time is used.
"""

from __future__ import annotations

from .base import (
    LIVENESS,
    Discovered,
    Drop,
    Family,
    Parsed,
    check_power,
    decode_json,
    parse_words,
    sum_power,
)

DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"
PREFIXES = ("tele", "stat")


def _energy_power(energy, channel: str | None) -> Parsed:
    if energy.__class__ is not dict:
        return LIVENESS
    value = energy.get("Power")
    if value is None:
        return LIVENESS
    if value.__class__ is list:
        if channel:
            index = int(channel)
            if not 0 <= index < len(value):
                return LIVENESS
            return Parsed(check_power(value[index]), None, None, f"ENERGY.Power.{index}")
        return Parsed(sum_power(value), None, None, "ENERGY.Power")
    return Parsed(check_power(value), None, None, "ENERGY.Power")


def parse_tasmota(subtopic: str, payload: bytes, channel: str | None) -> Parsed:
    prefix, _, leaf = subtopic.partition("/")
    if prefix == "cmnd":
        raise Drop("unknown_topic")
    if subtopic == "tele/LWT":
        return parse_words(payload, b"online", b"offline")
    if subtopic == "tele/SENSOR":
        data = decode_json(payload)
        if data.__class__ is not dict:
            raise Drop("wrong_type")
        return _energy_power(data.get("ENERGY"), channel)
    if subtopic == "stat/STATUS10":
        data = decode_json(payload)
        if data.__class__ is not dict:
            raise Drop("wrong_type")
        sensors = data.get("StatusSNS")
        if sensors.__class__ is not dict:
            return LIVENESS
        return _energy_power(sensors.get("ENERGY"), channel)
    if prefix in PREFIXES and leaf:
        return LIVENESS  # tele/STATE, stat/RESULT, stat/POWER, ...
    raise Drop("unknown_topic")


def tasmota_routes(topic: str, full_topic: str | None) -> dict[str, str]:
    """Topic prefixes of a device and the lead (``tele``, ``stat``) of each."""
    pattern = (full_topic or DEFAULT_FULL_TOPIC).strip("/")
    topic = topic.strip("/")
    if "%prefix%" not in pattern or "%topic%" not in pattern:
        pattern = DEFAULT_FULL_TOPIC.strip("/")
    if pattern.index("%prefix%") < pattern.index("%topic%"):
        return {
            pattern.replace("%prefix%", lead).replace("%topic%", topic): lead for lead in PREFIXES
        }
    head = pattern[: pattern.index("%prefix%")].rstrip("/")
    return {head.replace("%topic%", topic): ""}


class Tasmota(Family):
    parser_type = "tasmota"
    label = "Tasmota"
    discovery_filters = ("tasmota/discovery/+/config", "tasmota/discovery/+/sensors")

    def routes(self, config):
        return tasmota_routes(config.mqtt_topic, config.full_topic)

    def will(self, subtopic, config):
        return subtopic == "tele/LWT"

    def parse(self, subtopic, payload, config, component):
        return parse_tasmota(subtopic, payload, config.channel)

    def check_config(self, config):
        if config.channel and not config.channel.isdigit():
            return "a Tasmota channel is the index of a power list (0 is the first), or empty"
        pattern = config.full_topic or DEFAULT_FULL_TOPIC
        if "%prefix%" not in pattern or "%topic%" not in pattern:
            return "a Tasmota full topic contains %prefix% and %topic%"
        return None

    def discover(self, topic, payload):
        parts = topic.split("/")
        if len(parts) != 4 or parts[:2] != ["tasmota", "discovery"]:
            return []
        try:
            data = decode_json(payload)
        except Drop:
            return []
        if not isinstance(data, dict):
            return []
        mac = parts[2]
        key = f"{self.parser_type}:{mac}"
        if parts[3] == "sensors":
            energy = (
                (data.get("sn") or {}).get("ENERGY") if isinstance(data.get("sn"), dict) else None
            )
            if not isinstance(energy, dict) or "Power" not in energy:
                return []
            power = energy["Power"]
            count = len(power) if isinstance(power, list) else 1
            components = (
                ["ENERGY.Power"] if count == 1 else [f"ENERGY.Power.{i}" for i in range(count)]
            )
            return [Discovered(key, self.parser_type, "", "", components=components)]
        if parts[3] != "config" or not isinstance(data.get("t"), str) or not data["t"]:
            return []
        name = data.get("dn") if isinstance(data.get("dn"), str) else ""
        model = data.get("md") if isinstance(data.get("md"), str) else ""
        full_topic = data.get("ft") if isinstance(data.get("ft"), str) else None
        return [
            Discovered(
                key,
                self.parser_type,
                data["t"],
                data["t"],
                model=model,
                name=name or data["t"],
                full_topic=full_topic or DEFAULT_FULL_TOPIC,
            )
        ]
