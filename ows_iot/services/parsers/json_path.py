"""Generic JSON: a configured path to the power value, an optional last will.

``power_path`` is ``$.a.b[0].c`` or ``a.b.0.c``; ``$`` is the whole payload, so
a payload that is just a number works too. A list at the path is summed (one
value per channel or phase). A boolean or a text at the path is no power: the
message is dropped as ``wrong_type``, never read as 1 W. ``offline_topic`` (under
the device's prefix, or any other topic) with ``offline_payload`` (default
``offline``) is the device's last will; any other payload there says it is online.
"""

from __future__ import annotations

from functools import lru_cache

from .base import LIVENESS, OFFLINE, ONLINE, Family, Parsed, check_power, decode_json, sum_power

WILL_LEAD = "@will"
DEFAULT_OFFLINE_PAYLOAD = "offline"


@lru_cache(maxsize=4096)
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
    if value.__class__ is list:
        return Parsed(power_w=sum_power(value))
    return Parsed(power_w=check_power(value))


def will_subtopic(config) -> str | None:
    """The subtopic the device's last will arrives on, else None."""
    topic = (config.offline_topic or "").strip("/")
    if not topic:
        return None
    prefix = config.mqtt_topic.strip("/")
    if topic.startswith(prefix + "/"):
        return topic[len(prefix) + 1 :]
    return WILL_LEAD


class JsonPath(Family):
    parser_type = "json_path"
    label = "Generic JSON (power path)"

    def routes(self, config):
        routes = {config.mqtt_topic.strip("/"): ""}
        if will_subtopic(config) == WILL_LEAD:
            routes[config.offline_topic.strip("/")] = WILL_LEAD
        return routes

    def will(self, subtopic, config):
        return subtopic == will_subtopic(config)

    def parse(self, subtopic, payload, config, component):
        if subtopic == will_subtopic(config):
            offline = (config.offline_payload or DEFAULT_OFFLINE_PAYLOAD).strip().lower()
            return OFFLINE if payload.strip().lower() == offline.encode() else ONLINE
        return parse_json_path(payload, compile_path(config.power_path))

    def check_config(self, config):
        if not config.power_path:
            return "json_path devices need a power_path"
        path = config.power_path.strip()
        if any(char.isspace() for char in path) or path.count("[") != path.count("]"):
            return f"the power path {path!r} is not a path like $.sensor.power or data[0].w"
        if config.offline_topic and any(char in config.offline_topic for char in "+#"):
            return "the offline topic must not contain wildcards"
        return None
