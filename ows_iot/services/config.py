"""Device configuration as the engine sees it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .parsers import PARSER_TYPES, family


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
    # Tasmota's FullTopic (default %prefix%/%topic%/); json_path's last will.
    full_topic: str | None = None
    offline_topic: str | None = None
    offline_payload: str | None = None

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
        self._check_family()
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
        if self.working_threshold_w < self.standby_threshold_w:
            raise ConfigError(
                f"{self.device_id}: working_threshold_w must be at least standby_threshold_w"
            )

    def _check_family(self) -> None:
        for name in ("full_topic", "offline_topic", "offline_payload", "channel", "power_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{self.device_id}: {name} must be a string")
        problem = family(self.parser_type).check_config(self)
        if problem:
            raise ConfigError(f"{self.device_id}: {problem}")

    @classmethod
    def from_dict(cls, data: dict) -> DeviceConfig:
        """Build from a mapping, ignoring unknown keys and null values."""
        if not isinstance(data, dict):
            raise ConfigError("a device configuration must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names and v is not None}
        for name in ("channel", "full_topic", "offline_topic", "offline_payload"):
            if kwargs.get(name) == "":
                kwargs.pop(name)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
