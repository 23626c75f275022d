"""Zigbee2MQTT: a device's state JSON and its availability.

``<base>/<friendly name>`` carries the device's whole state as JSON: ``power``, or
``power_l1``..``power_l3`` of three-phase meters (summed; Zigbee2MQTT republishes
every attribute's latest value, so each phase is held). A channel names another
property. ``<base>/<name>/availability`` is ``{"state": "online"|"offline"}``, or
plain ``online``/``offline`` in the legacy format: an offline notice is never a sign
of life. ``/set`` and ``/get`` are commands from others to the device. With
``last_seen`` in epoch format (or ISO 8601 with a zone) the device has a time.
"""

from __future__ import annotations

from datetime import datetime

from .base import (
    LIVENESS,
    OFFLINE,
    ONLINE,
    Discovered,
    Drop,
    Family,
    Parsed,
    check_power,
    check_timestamp,
    decode_json,
)

PHASES = ("power_l1", "power_l2", "power_l3")
COMMANDS = ("set", "get")


def _last_seen(value):
    if value is None:
        return None
    if value.__class__ is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Drop("bad_timestamp") from None
        if moment.tzinfo is None:
            return None  # ISO_8601_local: no zone, no clock we can trust
        return check_timestamp(moment.timestamp())
    if value.__class__ is bool or not isinstance(value, int | float):
        raise Drop("bad_timestamp")
    return check_timestamp(value / 1000)


def parse_zigbee2mqtt(subtopic: str, payload: bytes, channel: str | None) -> Parsed:
    if subtopic == "":
        state = decode_json(payload)
        if state.__class__ is not dict:
            raise Drop("wrong_type")
        device_ts = _last_seen(state.get("last_seen"))
        if channel:
            value = state.get(channel)
            if value is None:
                return Parsed(device_ts=device_ts)
            return Parsed(check_power(value), device_ts, None, channel)
        value = state.get("power")
        if value is not None:
            return Parsed(check_power(value), device_ts, None, "power")
        phases = {name: check_power(state[name]) for name in PHASES if state.get(name) is not None}
        if phases:
            return Parsed(check_power(sum(phases.values())), device_ts, None, "power_l1..3")
        return Parsed(device_ts=device_ts)
    if subtopic == "availability":
        text = payload.strip()
        if text.startswith(b"{"):
            data = decode_json(text)
            text = data.get("state") if isinstance(data, dict) else None
            if not isinstance(text, str):
                raise Drop("wrong_type")
            text = text.encode()
        text = text.lower()
        if text == b"online":
            return ONLINE
        if text == b"offline":
            return OFFLINE
        raise Drop("wrong_type")
    if subtopic.partition("/")[0] in COMMANDS:
        raise Drop("unknown_topic")
    return LIVENESS


def _exposed(items, found: list[str]) -> None:
    for item in items or ():
        if not isinstance(item, dict):
            continue
        prop = item.get("property")
        if prop in ("power", *PHASES) and prop not in found:
            found.append(prop)
        _exposed(item.get("features"), found)


class Zigbee2Mqtt(Family):
    parser_type = "zigbee2mqtt"
    label = "Zigbee2MQTT"
    discovery_filters = ("+/bridge/devices",)

    def will(self, subtopic, config):
        return subtopic == "availability"

    def parse(self, subtopic, payload, config, component):
        return parse_zigbee2mqtt(subtopic, payload, config.channel)

    def discover(self, topic, payload):
        if not topic.endswith("/bridge/devices"):
            return []
        base = topic[: -len("/bridge/devices")]
        try:
            devices = decode_json(payload)
        except Drop:
            return []
        found = []
        for device in devices if isinstance(devices, list) else ():
            if not isinstance(device, dict) or device.get("type") == "Coordinator":
                continue
            name, ieee = device.get("friendly_name"), device.get("ieee_address")
            if not isinstance(name, str) or not isinstance(ieee, str) or not name:
                continue
            definition = (
                device.get("definition") if isinstance(device.get("definition"), dict) else {}
            )
            components: list[str] = []
            _exposed(definition.get("exposes"), components)
            if not components:
                continue  # not a meter
            model = " ".join(
                str(definition[k])
                for k in ("vendor", "model")
                if isinstance(definition.get(k), str)
            )
            found.append(
                Discovered(
                    key=f"{self.parser_type}:{ieee}",
                    parser_type=self.parser_type,
                    device_id=ieee,
                    mqtt_topic=f"{base}/{name}",
                    model=model,
                    name=name,
                    components=components,
                )
            )
        return found
