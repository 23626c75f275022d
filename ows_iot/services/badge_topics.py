"""Which device a badge reader's topic belongs to.

A badge reader publishes the card ids it reads on one MQTT topic, configured on
the device it stands at (``DeviceConfig.badge_topic``). Topics are matched
exactly, without wildcards, before the meters' topic prefixes: a reader may
publish under its meter's prefix (``shellyplus1pm-a8032ab1c2d4/badge``) or
anywhere else (``workshop/laser/badge``).

Pure Python; nothing here imports Odoo.
"""

from __future__ import annotations

from collections.abc import Iterable


def normalize_topic(topic: str | None) -> str | None:
    """The topic as matched: without surrounding slashes and blanks; None when empty."""
    if not isinstance(topic, str):
        return None
    topic = topic.strip().strip("/")
    return topic or None


def topic_error(topic: str | None) -> str | None:
    """Why a badge topic cannot be subscribed to exactly, or None when it can."""
    if topic is None:
        return None
    if not isinstance(topic, str):
        return "badge_topic must be a string"
    if any(char in topic for char in "+#"):
        return "badge_topic must not contain the wildcards + or #"
    if "\x00" in topic or len(topic.encode()) > 1024:
        return "badge_topic is not a valid MQTT topic"
    return None


class BadgeTopics:
    """badge topic -> device id, over the devices' configurations."""

    __slots__ = ("_devices",)

    def __init__(self, configs: Iterable = ()):
        devices: dict[str, str] = {}
        for config in configs:
            topic = normalize_topic(getattr(config, "badge_topic", None))
            # The first device keeps a topic configured twice (the backend refuses it).
            if topic is not None and topic not in devices:
                devices[topic] = config.device_id
        self._devices = devices

    def device_of(self, topic) -> str | None:
        if topic.__class__ is not str or not self._devices:
            return None
        return self._devices.get(topic.strip("/"))

    def filters(self) -> set[str]:
        return set(self._devices)

    def __len__(self) -> int:
        return len(self._devices)
