"""What every meter family shares: the reading, the drop, value checks, the interface.

A parser never raises on bad input: it raises :class:`Drop` with a short reason,
which the ingestor counts. Parsing is a plain function over one message; the
choice of the component (configured channel, or the first one that carries power)
is passed in and returned, so the caller can keep it sticky per device.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ABS_POWER_W = 100_000.0
MAX_TIMESTAMP = 1e11  # year 5138: anything beyond is not a clock reading

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
    device's online/last-will notice, else None. ``phases`` is set for a channel
    meaning all phases: the phase values this message carries (name -> W), which
    the ingestor holds per device and sums; ``power_w`` is then their own sum.
    """

    __slots__ = ("component", "device_ts", "online", "phases", "power_w")

    def __init__(self, power_w=None, device_ts=None, online=None, component=None, phases=None):
        self.power_w = power_w
        self.device_ts = device_ts
        self.online = online
        self.component = component
        self.phases = phases

    def __repr__(self):
        return (
            f"Parsed(power_w={self.power_w!r}, device_ts={self.device_ts!r}, "
            f"online={self.online!r}, component={self.component!r}, phases={self.phases!r})"
        )


LIVENESS = Parsed()
ONLINE = Parsed(online=True)
OFFLINE = Parsed(online=False)


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


def plain_power(payload: bytes) -> float:
    """A payload that is just a number (Gen1 ``.../power``, ESPHome sensor states)."""
    try:
        value = float(payload.strip())
    except (ValueError, UnicodeDecodeError):
        raise Drop("wrong_type") from None
    return check_power(value)


def sum_power(values) -> float:
    """The sum of a list of power values, each checked (a per-channel list)."""
    if not values:
        raise Drop("wrong_type")
    return check_power(sum(check_power(value) for value in values))


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
    """Shelly's ``online``: ``true``/``false``."""
    text = payload.strip().lower()
    if text == b"true":
        return ONLINE
    if text == b"false":
        return OFFLINE
    raise Drop("wrong_type")


def parse_words(payload: bytes, online: bytes, offline: bytes) -> Parsed:
    """A last-will topic with words (``Online``/``Offline``, ``online``/``offline``)."""
    text = payload.strip().lower()
    if text == online:
        return ONLINE
    if text == offline:
        return OFFLINE
    raise Drop("wrong_type")


def is_all_phases(channel: str | None) -> bool:
    return channel is not None and channel.endswith("*")


@dataclass
class Discovered:
    """A meter that introduced itself: what a device form needs to listen to it."""

    key: str  # unique per meter: parser type and its id
    parser_type: str
    device_id: str
    mqtt_topic: str
    model: str = ""
    name: str = ""
    channel: str | None = None
    full_topic: str | None = None
    components: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "parser_type": self.parser_type,
            "device_id": self.device_id,
            "mqtt_topic": self.mqtt_topic,
            "model": self.model,
            "name": self.name,
            "channel": self.channel,
            "full_topic": self.full_topic,
            "components": list(self.components),
        }


class Family:
    """One meter family: how its devices are listened to and read.

    ``routes(config)`` maps topic prefixes to the lead of the subtopic handed to
    ``parse`` (a message on ``<prefix>/<rest>`` is parsed as ``<lead>/<rest>``);
    ``will(subtopic, config)`` tells whether a subtopic is the device's last will;
    ``discovery_filters`` and ``discover`` read the announcements of meters that
    are not configured yet.
    """

    parser_type = ""
    label = ""
    discovery_filters: tuple[str, ...] = ()

    def routes(self, config) -> dict[str, str]:
        return {config.mqtt_topic.strip("/"): ""}

    def topic_filters(self, config) -> set[str]:
        return {f"{prefix}/#" for prefix in self.routes(config)}

    def will(self, subtopic: str, config) -> bool:
        return subtopic == "online"

    def parse(self, subtopic: str, payload: bytes, config, component: str | None) -> Parsed:
        raise NotImplementedError

    def discover(self, topic: str, payload: bytes) -> list[Discovered]:
        return []

    def check_config(self, config) -> str | None:
        """Why the family cannot run with this configuration, else None."""
        return None
