"""Shelly Gen1: plain-number power topics, JSON light status, ``online``.

``shellies/<id>/<group>/<i>/power`` for relays, meters, lights, rollers and the
color/white channels of the RGBW2, Bulb, Duo and Vintage; ``relay/power`` of the
Shelly 2 (SHSW-21, no channel index); ``color|white|light/<i>/status`` JSON with
``power``; ``online`` is the last will; ``info`` and ``announce`` (and every
other state topic) prove the device alive. A channel ``emeter/*`` means all
phases of a Shelly 3EM. Commands (``.../command``, ``.../set``) are published
to the device, not by it.
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
    is_all_phases,
    parse_online,
    plain_power,
)

GEN1_POWER_GROUPS = ("relay", "emeter", "light", "roller", "meter", "color", "white")
GEN1_STATUS_GROUPS = ("color", "white", "light")
COMMAND_LEAVES = ("command", "set")
# What an announcing model reports power on, and the channel to configure for it.
GEN1_MODELS = {
    "SHSW-PM": ("Shelly 1PM", ["relay:0"], None),
    "SHSW-21": ("Shelly 2", ["relay"], "relay"),
    "SHSW-25": ("Shelly 2.5", ["relay:0", "relay:1"], None),
    "SHPLG-S": ("Shelly Plug S", ["relay:0"], None),
    "SHPLG-1": ("Shelly Plug", ["relay:0"], None),
    "SHPLG2-1": ("Shelly Plug", ["relay:0"], None),
    "SHEM": ("Shelly EM", ["emeter:0", "emeter:1"], None),
    "SHEM-3": ("Shelly 3EM", ["emeter:0", "emeter:1", "emeter:2"], "emeter/*"),
    "SHRGBW2": ("Shelly RGBW2", ["color:0", "white:0"], None),
    "SHBLB-1": ("Shelly Bulb", ["color:0", "white:0"], None),
    "SHBDUO-1": ("Shelly Duo", ["light:0"], None),
    "SHVIN-1": ("Shelly Vintage", ["light:0"], None),
    "SHDM-1": ("Shelly Dimmer", ["light:0"], None),
    "SHDM-2": ("Shelly Dimmer 2", ["light:0"], None),
}


def _wanted(name: str, channel: str | None) -> bool:
    if channel is None:
        return True
    channel = channel.replace("/", ":")
    if is_all_phases(channel):
        return name.partition(":")[0] == channel[:-1].rstrip(":")
    return name == channel


def _reading(name: str, power: float, channel: str | None) -> Parsed:
    if is_all_phases(channel):
        group = name.partition(":")[0]
        return Parsed(power, None, None, f"{group}:*", {name: power})
    return Parsed(power, None, None, name)


def parse_shelly_gen1(subtopic: str, payload: bytes, channel: str | None) -> Parsed:
    parts = subtopic.split("/")
    if parts[-1] in COMMAND_LEAVES or parts[0] == "command":
        # Published to the device, not by it.
        raise Drop("unknown_topic")
    if subtopic == "online":
        return parse_online(payload)
    group = parts[0]
    if len(parts) == 2 and subtopic == "relay/power":
        # Shelly 2 (SHSW-21): one meter for both relays, no channel index.
        if not _wanted("relay", channel):
            return LIVENESS
        return _reading("relay", plain_power(payload), channel)
    if len(parts) != 3 or group not in GEN1_POWER_GROUPS:
        return LIVENESS
    name = f"{group}:{parts[1]}"
    if parts[2] == "power":
        if not _wanted(name, channel):
            return LIVENESS
        return _reading(name, plain_power(payload), channel)
    if parts[2] == "status" and group in GEN1_STATUS_GROUPS:
        status = decode_json(payload)
        if status.__class__ is not dict:
            raise Drop("wrong_type")
        value = status.get("power")
        if value is None or not _wanted(name, channel):
            return LIVENESS
        return _reading(name, check_power(value), channel)
    return LIVENESS


class ShellyGen1(Family):
    parser_type = "shelly_gen1"
    label = "Shelly Gen1"
    discovery_filters = ("shellies/announce",)

    def parse(self, subtopic, payload, config, component):
        return parse_shelly_gen1(subtopic, payload, config.channel or component)

    def discover(self, topic, payload):
        if topic != "shellies/announce":
            return []
        try:
            data = decode_json(payload)
        except Drop:
            return []
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            return []
        device_id = data["id"]
        model = data.get("model") if isinstance(data.get("model"), str) else ""
        label, components, channel = GEN1_MODELS.get(model, (model, [], None))
        return [
            Discovered(
                key=f"{self.parser_type}:{device_id}",
                parser_type=self.parser_type,
                device_id=device_id,
                mqtt_topic=f"shellies/{device_id}",
                model=f"{label} ({model})" if label != model else model,
                name=device_id,
                channel=channel,
                components=list(components),
            )
        ]
