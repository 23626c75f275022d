"""Device configuration as the engine sees it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .badge import normalize_badge
from .badge_topics import topic_error

PARSER_TYPES = ("shelly_gen2", "shelly_gen1", "json_path")


class ConfigError(ValueError):
    """A device configuration that the engine cannot run with."""


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    device_id: str
    mqtt_topic: str
    parser_type: str = "shelly_gen2"
    channel: str | None = None
    power_path: str | None = None
    standby_threshold_w: float = 20.0
    working_threshold_w: float = 100.0
    start_debounce_s: float = 3.0
    stop_debounce_s: float = 15.0
    message_timeout_s: float = 300.0
    heartbeat_interval_s: float = 300.0
    max_clock_skew_s: float = 60.0
    # Check-ins (services.badge): the badge reader's topic, the JSON path of the
    # card id in its messages (None: plain text), and badge -> member pairs
    # (None: every badge is its own member).
    badge_topic: str | None = None
    badge_path: str | None = None
    badges: tuple | None = None

    def __post_init__(self):
        if not isinstance(self.device_id, str) or not self.device_id:
            raise ConfigError("device_id must be a non-empty string")
        if not isinstance(self.mqtt_topic, str) or not self.mqtt_topic.strip("/"):
            raise ConfigError(f"{self.device_id}: mqtt_topic must be a non-empty string")
        if any(c in self.mqtt_topic for c in "+#"):
            raise ConfigError(f"{self.device_id}: mqtt_topic must not contain wildcards")
        if self.parser_type not in PARSER_TYPES:
            raise ConfigError(
                f"{self.device_id}: parser_type must be one of {', '.join(PARSER_TYPES)}"
            )
        if self.parser_type == "json_path" and not self.power_path:
            raise ConfigError(f"{self.device_id}: json_path devices need a power_path")
        for name in (
            "standby_threshold_w",
            "working_threshold_w",
            "start_debounce_s",
            "stop_debounce_s",
            "message_timeout_s",
            "heartbeat_interval_s",
            "max_clock_skew_s",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{self.device_id}: {name} must be a number")
            if value < 0 or value != value:
                raise ConfigError(f"{self.device_id}: {name} must not be negative")
        if self.heartbeat_interval_s <= 0 or self.message_timeout_s <= 0:
            raise ConfigError(
                f"{self.device_id}: heartbeat_interval_s and message_timeout_s must be positive"
            )
        self._check_badges()
        if self.working_threshold_w < self.standby_threshold_w:
            raise ConfigError(
                f"{self.device_id}: working_threshold_w must be at least standby_threshold_w"
            )

    def _check_badges(self) -> None:
        error = topic_error(self.badge_topic)
        if error:
            raise ConfigError(f"{self.device_id}: {error}")
        if self.badge_path is not None and not isinstance(self.badge_path, str):
            raise ConfigError(f"{self.device_id}: badge_path must be a string")
        badges = self.badges
        if isinstance(badges, dict):
            badges = tuple(sorted(badges.items()))
        elif isinstance(badges, list):
            badges = tuple(tuple(pair) for pair in badges)
        if badges is not None:
            pairs = []
            for pair in badges:
                if not isinstance(pair, tuple) or len(pair) != 2:
                    raise ConfigError(f"{self.device_id}: badges must map badge ids to members")
                card, member = normalize_badge(pair[0]), pair[1]
                if card is None or not isinstance(member, str) or not member:
                    raise ConfigError(f"{self.device_id}: badges must map badge ids to members")
                pairs.append((card, member))
            badges = tuple(pairs)
        # Frozen: the normalised value replaces the given one.
        object.__setattr__(self, "badges", badges)

    @classmethod
    def from_dict(cls, data: dict) -> DeviceConfig:
        """Build from a mapping, ignoring unknown keys and null values."""
        if not isinstance(data, dict):
            raise ConfigError("a device configuration must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names and v is not None}
        for key in ("channel", "badge_topic", "badge_path"):
            if kwargs.get(key) == "":
                kwargs.pop(key)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
