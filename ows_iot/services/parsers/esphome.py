"""ESPHome's MQTT client: plain-number sensor states and the ``status`` last will.

A node publishes under its topic prefix (``mqtt_topic``): each sensor on
``<node>/sensor/<object id>/state`` as a plain number, ``<node>/status`` as
``online``/``offline`` (birth message and last will). The channel names the power
sensor's object id (default ``power``), so the voltage and current sensors of the
same node are not read as power; they prove the node alive. ``.../command`` topics
are commands to the node.
"""

from __future__ import annotations

from .base import LIVENESS, Drop, Family, Parsed, parse_words, plain_power

DEFAULT_SENSOR = "power"


def parse_esphome(subtopic: str, payload: bytes, channel: str | None) -> Parsed:
    if subtopic == "status":
        return parse_words(payload, b"online", b"offline")
    parts = subtopic.split("/")
    if parts[-1] == "command":
        raise Drop("unknown_topic")
    if len(parts) == 3 and parts[0] == "sensor" and parts[2] == "state":
        if parts[1] != (channel or DEFAULT_SENSOR):
            return LIVENESS
        return Parsed(plain_power(payload), None, None, f"sensor/{parts[1]}")
    return LIVENESS


class Esphome(Family):
    parser_type = "esphome"
    label = "ESPHome"

    def will(self, subtopic, config):
        return subtopic == "status"

    def parse(self, subtopic, payload, config, component):
        return parse_esphome(subtopic, payload, config.channel)

    def check_config(self, config):
        if config.channel and "/" in config.channel:
            return "an ESPHome channel is the power sensor's object id, e.g. power"
        return None
