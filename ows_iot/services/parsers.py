"""Turn raw MQTT messages into what the engine needs: a timestamp, power, liveness.

A parser never raises on bad input: it raises :class:`Drop` with a short reason,
which the ingestor counts. Parsers are plain functions over one message; the
choice of the component (configured channel, or the first one that carries power)
is passed in and returned, so the caller can keep it sticky per device.
"""

from __future__ import annotations

import json
import math

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ABS_POWER_W = 100_000.0
MAX_TIMESTAMP = 1e11  # year 5138: anything beyond is not a clock reading

# Gen2+ component types that carry a power value, and the key holding it.
GEN2_POWER_FIELDS = {
    "pm1": "apower",
    "switch": "apower",
    "cover": "apower",
    "light": "apower",
    "em1": "act_power",
    "em": "total_act_power",
}
GEN2_NOTIFY_COMPONENTS = ("NotifyStatus", "NotifyFullStatus")
GEN1_POWER_GROUPS = ("relay", "emeter", "light", "roller", "meter")

_loads = json.loads
_scan_once = json.JSONDecoder().scan_once
_isfinite = math.isfinite


class Drop(Exception):
    """The message is dropped; ``reason`` is the counter it is counted under."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Parsed:
    """What one message says about its device.

    ``power_w`` is None when the message carries no power reading for the device's
    component (it still proves the device alive). ``online`` is True/False for the
    device's online/last-will notice, else None.
    """

    __slots__ = ("component", "device_ts", "online", "power_w")

    def __init__(self, power_w=None, device_ts=None, online=None, component=None):
        self.power_w = power_w
        self.device_ts = device_ts
        self.online = online
        self.component = component


LIVENESS = Parsed()


def check_power(value) -> float:
    # bool is an int subclass, but `true` is no power reading.
    if value.__class__ is bool or not isinstance(value, int | float):
        raise Drop("wrong_type")
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise Drop("absurd_power") from None
    if not _isfinite(value):
        raise Drop("non_finite")
    if value > MAX_ABS_POWER_W or value < -MAX_ABS_POWER_W:
        raise Drop("absurd_power")
    return value


def check_timestamp(value) -> float:
    if value.__class__ is bool or not isinstance(value, int | float):
        raise Drop("bad_timestamp")
    try:
        value = float(value)
    except OverflowError:
        raise Drop("bad_timestamp") from None
    if not 0 <= value < MAX_TIMESTAMP:  # also false for NaN
        raise Drop("bad_timestamp")
    return value


def decode_json(payload: bytes):
    # Fast path: the C scanner on UTF-8 text, skipping json.loads' Python-level
    # encoding detection; anything unusual goes through json.loads itself.
    try:
        text = payload.decode()
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError, RecursionError):
        text, end = "", -1
    if end == len(text):
        return value
    try:
        return _loads(payload)
    except (ValueError, RecursionError):
        raise Drop("malformed_json") from None


def parse_online(payload: bytes) -> Parsed:
    text = payload.strip().lower()
    if text == b"true":
        return Parsed(online=True)
    if text == b"false":
        return Parsed(online=False)
    raise Drop("wrong_type")


def _gen2_component_power(name: str, status, channel: str | None):
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
        if channel is not None:
            status = params.get(channel)
            power = None if status is None else _gen2_component_power(channel, status, None)
            return Parsed(power, device_ts, None, channel)
        for name, status in params.items():
            power = _gen2_component_power(name, status, None)
            if power is not None:
                return Parsed(power, device_ts, None, name)
        return Parsed(device_ts=device_ts)
    if subtopic.startswith("status/"):
        name = subtopic[7:]
        status = decode_json(payload)
        if status.__class__ is not dict:
            raise Drop("wrong_type")
        power = _gen2_component_power(name, status, channel)
        return Parsed(power, None, None, name) if power is not None else LIVENESS
    if subtopic == "online":
        return parse_online(payload)
    raise Drop("unknown_topic")


def parse_shelly_gen1(subtopic: str, payload: bytes, channel: str | None) -> Parsed:
    parts = subtopic.split("/")
    if parts[-1] == "command" or parts[0] in ("command", "color", "white"):
        # Published to the device, not by it.
        raise Drop("unknown_topic")
    if subtopic == "online":
        return parse_online(payload)
    if len(parts) == 3 and parts[2] == "power" and parts[0] in GEN1_POWER_GROUPS:
        name = f"{parts[0]}:{parts[1]}"
        if channel is not None and name != channel.replace("/", ":"):
            return LIVENESS
        try:
            value = float(payload.strip())
        except (ValueError, UnicodeDecodeError):
            raise Drop("wrong_type") from None
        return Parsed(check_power(value), None, None, name)
    return LIVENESS


def compile_path(path: str) -> tuple:
    """``$.a.b[0].c`` or ``a.b.0.c`` -> ('a', 'b', 0, 'c')."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    tokens = []
    for part in path.replace("[", ".").replace("]", "").split("."):
        if part == "":
            continue
        tokens.append(int(part) if part.lstrip("-").isdigit() else part)
    return tuple(tokens)


def parse_json_path(payload: bytes, path: tuple) -> Parsed:
    value = decode_json(payload)
    for token in path:
        if token.__class__ is int and value.__class__ is list:
            if not -len(value) <= token < len(value):
                return LIVENESS
            value = value[token]
        elif value.__class__ is dict:
            value = value.get(str(token))
            if value is None:
                return LIVENESS
        else:
            return LIVENESS
    if value is None:
        return LIVENESS
    if value.__class__ is str:
        try:
            value = float(value)
        except ValueError:
            raise Drop("wrong_type") from None
    return Parsed(power_w=check_power(value))
