"""Shelly Gen2/Gen3/Gen4 (Plus, Pro, Mini, Gen4): RPC frames and status topics.

``<prefix>/events/rpc`` carries JSON-RPC notifications (``NotifyStatus`` with the
changed part of each component and ``params.ts``, ``NotifyFullStatus``,
``NotifyEvent``); ``<prefix>/status/<component>`` a component's full status;
``<prefix>/online`` is the last will. Components with power: ``pm1``, ``switch``,
``cover``, ``light``, ``rgb``, ``rgbw``, ``cct`` (``apower``), ``em1``
(``act_power``), ``em`` (``total_act_power``). A channel ``em1:*`` (any type with
``:*``) means all components of that type, e.g. the three phases of a Pro 3EM in
its monophase profile.
"""

from __future__ import annotations

from .base import (
    LIVENESS,
    MAX_TIMESTAMP,
    Discovered,
    Drop,
    Family,
    Parsed,
    check_power,
    check_timestamp,
    decode_json,
    is_all_phases,
    parse_online,
)

# Gen2+ component types that carry a power value, and the key holding it.
GEN2_POWER_FIELDS = {
    "pm1": "apower",
    "switch": "apower",
    "cover": "apower",
    "light": "apower",
    "rgb": "apower",
    "rgbw": "apower",
    "cct": "apower",
    "em1": "act_power",
    "em": "total_act_power",
}
GEN2_NOTIFY_COMPONENTS = ("NotifyStatus", "NotifyFullStatus")


def _component_power(name: str, status, channel: str | None):
    """Power of one component status, or None when it carries none we use."""
    if channel is not None and name != channel:
        return None
    field = GEN2_POWER_FIELDS.get(name.partition(":")[0])
    if field is None or status.__class__ is not dict:
        return None
    value = status.get(field)
    if value is None:
        return None
    return check_power(value)


def _phases(items, group: str, device_ts=None) -> Parsed:
    """The components of one type (``em1`` of ``em1:*``) as held phases."""
    phases = {}
    for name, status in items:
        if name.partition(":")[0] == group:
            power = _component_power(name, status, None)
            if power is not None:
                phases[name] = power
    if not phases:
        return Parsed(device_ts=device_ts)
    return Parsed(sum(phases.values()), device_ts, None, f"{group}:*", phases)


def parse_shelly_gen2(subtopic: str, payload: bytes, channel: str | None) -> Parsed:
    if subtopic == "events/rpc":
        frame = decode_json(payload)
        if frame.__class__ is not dict:
            raise Drop("wrong_type")
        params = frame.get("params")
        if params is None:
            return LIVENESS
        if params.__class__ is not dict:
            raise Drop("wrong_type")
        device_ts = params.get("ts")
        if device_ts is not None and not (
            device_ts.__class__ is float and 0 <= device_ts < MAX_TIMESTAMP
        ):
            device_ts = check_timestamp(device_ts)
        if frame.get("method") not in GEN2_NOTIFY_COMPONENTS:
            return Parsed(device_ts=device_ts)
        if is_all_phases(channel):
            return _phases(params.items(), channel[:-1].rstrip(":"), device_ts)
        if channel is not None:
            status = params.get(channel)
            power = None if status is None else _component_power(channel, status, None)
            return Parsed(power, device_ts, None, channel)
        for name, status in params.items():
            power = _component_power(name, status, None)
            if power is not None:
                return Parsed(power, device_ts, None, name)
        return Parsed(device_ts=device_ts)
    if subtopic.startswith("status/"):
        name = subtopic[7:]
        status = decode_json(payload)
        if status.__class__ is not dict:
            raise Drop("wrong_type")
        if is_all_phases(channel):
            parsed = _phases([(name, status)], channel[:-1].rstrip(":"))
            return parsed if parsed.phases else LIVENESS
        power = _component_power(name, status, channel)
        return Parsed(power, None, None, name) if power is not None else LIVENESS
    if subtopic == "online":
        return parse_online(payload)
    raise Drop("unknown_topic")


def power_components(params: dict) -> list[str]:
    """The components of a full status that report power, in the device's order."""
    found = []
    for name, status in params.items():
        field = GEN2_POWER_FIELDS.get(name.partition(":")[0])
        if field is not None and isinstance(status, dict) and field in status:
            found.append(name)
    return found


def suggested_channel(components: list[str]) -> str | None:
    """``em1:*`` for a meter with several em1 phases, else the first component."""
    em1 = [name for name in components if name.startswith("em1:")]
    if len(em1) > 1:
        return "em1:*"
    return components[0] if components else None


def model_of(device_id: str) -> str:
    """``shellypro3em-a0b1c2d3e4f5`` -> ``shellypro3em``."""
    return device_id.rsplit("-", 1)[0] if "-" in device_id else device_id


class ShellyGen2(Family):
    parser_type = "shelly_gen2"
    label = "Shelly Gen2/Gen3/Gen4 (RPC)"
    discovery_filters = ("+/events/rpc", "+/online")

    def parse(self, subtopic, payload, config, component):
        return parse_shelly_gen2(subtopic, payload, config.channel or component)

    def discover(self, topic, payload):
        prefix, _, rest = topic.rpartition("/")
        if rest == "online":
            # Only the prefix is known; Shelly's default prefix is its device id.
            if not prefix.lower().startswith("shelly") or payload.strip().lower() != b"true":
                return []
            return [self._found(prefix, prefix, [])]
        prefix = topic[: -len("/events/rpc")] if topic.endswith("/events/rpc") else ""
        if not prefix or b"NotifyFullStatus" not in payload:
            return []
        try:
            frame = decode_json(payload)
        except Drop:
            return []
        if not isinstance(frame, dict) or frame.get("method") != "NotifyFullStatus":
            return []
        params = frame.get("params")
        if not isinstance(params, dict):
            return []
        device_id = frame.get("src") if isinstance(frame.get("src"), str) else prefix
        return [self._found(device_id, prefix, power_components(params))]

    def _found(self, device_id, prefix, components):
        return Discovered(
            key=f"{self.parser_type}:{device_id}",
            parser_type=self.parser_type,
            device_id=device_id,
            mqtt_topic=prefix,
            model=model_of(device_id),
            name=device_id,
            channel=suggested_channel(components),
            components=components,
        )
