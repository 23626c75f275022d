"""Simulate Shelly power meters: publish what real devices send, from a power profile.

    python -m ows_iot.services.simulator laser-job --host localhost
    python -m ows_iot.services.simulator cnc-day --speed 600 --loop
    python -m ows_iot.services.simulator my-profile.json --dry-run --start-ts 1700000000

A profile is a list of power steps per device (see the profile format in ``--help``
and the built-in ones in ``profiles/``). Each simulated device samples its power
once a second and, like a real Shelly, publishes only when it changed by more than
a threshold, plus an energy-only update every minute; Gen1 devices also republish
their state every 30 s. The simulated clock drives everything: ``--speed 60`` plays
a simulated minute in one wall-clock second, and the device timestamps keep
following the simulated clock.

Importable without a broker::

    from ows_iot.services.simulator import load_profile, simulate

    for ts, topic, payload, retain in simulate(load_profile("laser-job"), start_ts=1.7e9):
        ...
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import json
import math
import random
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from .mqtt_options import (
    BrokerConnection,
    BrokerError,
    Will,
    add_broker_arguments,
    broker_options_from_args,
    messages_text,
    note,
    positive_int,
)
from .record import capture_line

PROG = "python -m ows_iot.services.simulator"
EXIT_ERROR = 2

NOMINAL_FREQ_HZ = 50.0
POWER_FACTOR = 0.95
GEN1_UPDATE_PERIOD_S = 30.0
TTY_REFRESH_S = 0.5


# -- device kinds ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceKind:
    name: str
    generation: int
    id_prefix: str
    component: str  # Gen2 component name, or the Gen1 topic level (relay, emeter)
    description: str

    @property
    def is_gen1(self) -> bool:
        return self.generation == 1


KINDS = {
    kind.name: kind
    for kind in (
        DeviceKind("pm1", 3, "shellypmminig3", "pm1", "Gen3 PM Mini, pm1:N"),
        DeviceKind("switch", 2, "shellyplusplugs", "switch", "Gen2 Plus plug or 1PM, switch:N"),
        DeviceKind("em1", 3, "shellyemg3", "em1", "Gen3 EM, em1:N act_power"),
        DeviceKind("em", 2, "shellypro3em", "em", "Pro 3EM, em:N total_act_power"),
        DeviceKind("gen1-relay", 1, "shellyplug-s", "relay", "Gen1 plug S or 1PM, relay/N"),
        DeviceKind("gen1-emeter", 1, "shellyem", "emeter", "Gen1 EM, emeter/N"),
    )
}


# -- profiles -------------------------------------------------------------------------


class ProfileError(ValueError):
    """A profile that cannot be simulated; the message says where and why."""


@dataclass(frozen=True)
class Step:
    """One stretch of a device's timeline.

    mode ``on``: the device draws ``power_w`` (± ``jitter_w``) and reports as usual;
    ``silent``: it still draws power but publishes nothing (a network outage the
    broker has not noticed); ``offline``: it is unplugged: its last will (``online``
    ``false``) is published, then nothing until it reconnects after ``duration_s``
    (or never, when ``duration_s`` is absent).
    """

    duration_s: float | None
    power_w: float = 0.0
    jitter_w: float = 0.0
    mode: str = "on"
    label: str | None = None


@dataclass(frozen=True)
class DeviceProfile:
    kind: str
    device_id: str
    prefix: str
    steps: tuple[Step, ...]
    channel: int = 0
    report_min_change_w: float = 5.0
    report_min_change_pct: float = 5.0
    sample_interval_s: float = 1.0
    voltage_v: float = 230.0
    energy_total_wh: float | None = None
    clock_offset_s: float = 0.0
    status_topics: bool = False
    offline_at_end: bool = False

    @property
    def kind_info(self) -> DeviceKind:
        return KINDS[self.kind]

    @property
    def online_topic(self) -> str:
        return f"{self.prefix}/online"

    @property
    def duration_s(self) -> float:
        """Length of one pass through the steps (an endless offline step counts as 0)."""
        return sum(step.duration_s or 0.0 for step in self.steps)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    devices: tuple[DeviceProfile, ...]

    @property
    def duration_s(self) -> float:
        return max((device.duration_s for device in self.devices), default=0.0)


DEVICE_KEYS = {
    "kind",
    "device_id",
    "prefix",
    "steps",
    "channel",
    "jitter_w",
    "report_min_change_w",
    "report_min_change_pct",
    "sample_interval_s",
    "voltage_v",
    "energy_total_wh",
    "clock_offset_s",
    "status_topics",
    "offline_at_end",
    "label",
}
STEP_KEYS = {"power_w", "duration_s", "jitter_w", "label", "silent", "offline", "repeat", "steps"}


def builtin_profiles() -> dict[str, Path]:
    folder = resources.files(__package__) / "profiles"
    return {
        entry.name.removesuffix(".json"): Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a profile file by path."""
    builtins = builtin_profiles()
    if name_or_path in builtins:
        path, name = builtins[name_or_path], name_or_path
    else:
        path = Path(name_or_path)
        name = path.stem
        if not path.exists():
            known = ", ".join(sorted(builtins))
            raise ProfileError(
                f"{name_or_path}: no such file, nor a built-in profile (built-in: {known})"
            )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path} is not valid JSON: {exc}") from None
    return parse_profile(data, name=name, source=str(path))


def parse_profile(data, *, name: str = "profile", source: str | None = None) -> Profile:
    """Validate a profile given as JSON data.

    Accepted shapes: ``{"description": ..., "devices": [device, ...]}``, a list of
    devices, or a single device. A device is ``{"kind", "device_id", "prefix",
    "steps": [...], ...}``; a step is ``{"power_w", "duration_s", "jitter_w"}``,
    ``{"silent": true, "duration_s", "power_w"}``, ``{"offline": true, "duration_s"}``
    or ``{"repeat": N, "steps": [...]}``.
    """
    where = source or name
    description = ""
    if isinstance(data, dict) and "devices" in data:
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise ProfileError(f"{where}: description must be a string")
        devices_data = data["devices"]
    elif isinstance(data, dict):
        devices_data = [data]
    else:
        devices_data = data
    if not isinstance(devices_data, list) or not devices_data:
        raise ProfileError(f"{where}: expected a non-empty list of devices")
    devices = tuple(
        _parse_device(item, index, f"{where}: device #{index + 1}")
        for index, item in enumerate(devices_data)
    )
    _check_unique([d.device_id for d in devices], where, "device_id")
    _check_unique([d.prefix for d in devices], where, "prefix")
    return Profile(name=name, description=description, devices=devices)


def _parse_device(data, index: int, where: str) -> DeviceProfile:
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: must be a JSON object")
    unknown = set(data) - DEVICE_KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    kind_name = data.get("kind", "pm1")
    if kind_name not in KINDS:
        raise ProfileError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind_name!r}")
    kind = KINDS[kind_name]
    device_id = data.get("device_id") or default_device_id(kind, f"{index}")
    if not isinstance(device_id, str) or any(c in device_id for c in "/+#"):
        raise ProfileError(f"{where}: device_id must be a string without '/', '+' or '#'")
    where = f"{where} ({device_id})"
    prefix = data.get("prefix") or default_prefix(kind)
    if not isinstance(prefix, str):
        raise ProfileError(f"{where}: prefix must be a string")
    prefix = expand_prefix(prefix, device_id, where)
    numbers = {}
    for key, minimum in (
        ("channel", 0),
        ("jitter_w", 0),
        ("report_min_change_w", 0),
        ("report_min_change_pct", 0),
        ("sample_interval_s", 0.01),
        ("voltage_v", 1),
        ("energy_total_wh", 0),
        ("clock_offset_s", None),
    ):
        if key in data:
            numbers[key] = _number(data[key], f"{where}: {key}", minimum)
    if "channel" in numbers and numbers["channel"] != int(numbers["channel"]):
        raise ProfileError(f"{where}: channel must be a whole number")
    flags = {}
    for key in ("status_topics", "offline_at_end"):
        if key in data:
            if not isinstance(data[key], bool):
                raise ProfileError(f"{where}: {key} must be true or false")
            flags[key] = data[key]
    default_jitter = numbers.pop("jitter_w", 0.0)
    steps = tuple(_parse_steps(data.get("steps"), default_jitter, f"{where}: steps"))
    if not steps:
        raise ProfileError(f"{where}: steps must not be empty")
    for position, step in enumerate(steps[:-1]):
        if step.duration_s is None:
            raise ProfileError(
                f"{where}: step {position + 1} ({step.mode}) has no duration_s but is not last"
            )
    return DeviceProfile(
        kind=kind_name,
        device_id=device_id,
        prefix=prefix,
        steps=steps,
        channel=int(numbers.pop("channel", 0)),
        **numbers,
        **flags,
    )


def _parse_steps(data, default_jitter: float, where: str) -> Iterator[Step]:
    if not isinstance(data, list):
        raise ProfileError(f"{where}: must be a list of steps")
    for position, item in enumerate(data):
        here = f"{where}[{position}]"
        if not isinstance(item, dict):
            raise ProfileError(f"{here}: must be a JSON object")
        unknown = set(item) - STEP_KEYS
        if unknown:
            raise ProfileError(f"{here}: unknown keys {', '.join(sorted(unknown))}")
        if "repeat" in item:
            count = item["repeat"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ProfileError(f"{here}: repeat must be a positive whole number")
            inner = list(_parse_steps(item.get("steps"), default_jitter, f"{here}.steps"))
            if any(step.duration_s is None for step in inner):
                raise ProfileError(f"{here}: repeated steps need a duration_s")
            for _ in range(count):
                yield from inner
            continue
        mode = "on"
        for flag in ("silent", "offline"):
            if flag in item:
                if not isinstance(item[flag], bool):
                    raise ProfileError(f"{here}: {flag} must be true or false")
                if item[flag]:
                    if mode != "on":
                        raise ProfileError(f"{here}: a step is either silent or offline")
                    mode = flag
        label = item.get("label")
        if label is not None and not isinstance(label, str):
            raise ProfileError(f"{here}: label must be a string")
        if "duration_s" in item:
            duration = _number(item["duration_s"], f"{here}: duration_s", 0)
            if duration <= 0:
                raise ProfileError(f"{here}: duration_s must be positive")
        elif mode == "offline":
            duration = None
        else:
            raise ProfileError(f"{here}: duration_s is missing")
        if mode == "offline":
            power = 0.0
        elif "power_w" in item:
            power = _number(item["power_w"], f"{here}: power_w", None)
        else:
            raise ProfileError(f"{here}: power_w is missing")
        jitter = default_jitter
        if "jitter_w" in item:
            jitter = _number(item["jitter_w"], f"{here}: jitter_w", 0)
        yield Step(duration_s=duration, power_w=power, jitter_w=jitter, mode=mode, label=label)


def _number(value, where: str, minimum: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileError(f"{where} must be a number")
    if minimum is not None and value < minimum:
        raise ProfileError(f"{where} must be at least {minimum}")
    return float(value)


def _check_unique(values: list[str], where: str, what: str) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise ProfileError(f"{where}: two devices share the {what} {value!r}")
        seen.add(value)


def default_prefix(kind: DeviceKind) -> str:
    return "shellies/{id}" if kind.is_gen1 else "{id}"


def expand_prefix(template: str, device_id: str, where: str) -> str:
    prefix = template.replace("{id}", device_id).strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise ProfileError(f"{where}: prefix must be a topic without wildcards")
    return prefix


def default_device_id(kind: DeviceKind, seed_text: str, model: str | None = None) -> str:
    """A Shelly-style id (``<model>-<mac>``) derived from ``seed_text``: stable across runs."""
    mac = "a8032a" + hashlib.sha1(seed_text.encode()).hexdigest()[:6]
    return f"{model or kind.id_prefix}-{mac.upper() if kind.is_gen1 else mac}"


def _model_of(device_id: str) -> str | None:
    """The model part of a Shelly id (``shellyplus1pm`` of ``shellyplus1pm-a8032ab1c2d4``)."""
    model, _, mac = device_id.rpartition("-")
    if model and len(mac) in (6, 12) and all(c in "0123456789abcdefABCDEF" for c in mac):
        return model
    return None


def customise(
    profile: Profile,
    *,
    kind: str | None = None,
    device_id: str | None = None,
    prefix: str | None = None,
    replicas: int = 1,
    status_topics: bool | None = None,
) -> Profile:
    """Apply command-line overrides; raises ProfileError when they do not fit."""
    devices = list(profile.devices)
    if kind is not None:
        if kind not in KINDS:
            raise ProfileError(f"kind must be one of {', '.join(KINDS)}")
        devices = [
            replace(
                d,
                kind=kind,
                device_id=default_device_id(KINDS[kind], d.device_id),
                prefix=expand_prefix(
                    default_prefix(KINDS[kind]),
                    default_device_id(KINDS[kind], d.device_id),
                    d.device_id,
                ),
            )
            for d in devices
        ]
    if device_id is not None:
        if len(devices) != 1 or replicas != 1:
            raise ProfileError("--device-id needs a profile with a single device and no replicas")
        old = devices[0]
        prefix_template = old.prefix.replace(old.device_id, "{id}")
        devices[0] = replace(
            old, device_id=device_id, prefix=expand_prefix(prefix_template, device_id, device_id)
        )
    if replicas > 1:
        copies = []
        for number in range(replicas):
            for d in devices:
                if number == 0:
                    copies.append(d)
                    continue
                new_id = default_device_id(
                    d.kind_info, f"{d.device_id}|{number}", _model_of(d.device_id)
                )
                new_prefix = d.prefix.replace(d.device_id, new_id)
                if new_prefix == d.prefix:
                    new_prefix = f"{d.prefix}-{number}"
                copies.append(replace(d, device_id=new_id, prefix=new_prefix))
        devices = copies
    if prefix is not None:
        if len(devices) > 1 and "{id}" not in prefix:
            raise ProfileError("--prefix for several devices must contain {id}")
        devices = [
            replace(d, prefix=expand_prefix(prefix, d.device_id, d.device_id)) for d in devices
        ]
    if status_topics is not None:
        devices = [replace(d, status_topics=status_topics) for d in devices]
    _check_unique([d.prefix for d in devices], profile.name, "prefix")
    return replace(profile, devices=tuple(devices))


# -- message generation ---------------------------------------------------------------


class SimMessage(NamedTuple):
    ts: float  # simulated time of publishing, epoch seconds
    topic: str
    payload: bytes
    retain: bool


def simulate(
    profile: Profile,
    *,
    start_ts: float,
    seed: int = 0,
    loop: bool = False,
    duration_s: float | None = None,
    offline_at_s: float | None = None,
    offline_at_end: bool | None = None,
) -> Iterator[SimMessage]:
    """Every message the profile's devices publish, in simulated-time order.

    ``duration_s`` ends the run that many simulated seconds after ``start_ts``;
    ``offline_at_s`` also ends it, with every device dropping off (its last will
    published). ``offline_at_end`` publishes the last will of every device at the
    end (default: each device's own ``offline_at_end``). With ``loop`` the steps
    repeat until ``duration_s`` (or forever).
    """
    for _, message in _taggedmessages_text(
        profile, start_ts, seed, loop, duration_s, offline_at_s, offline_at_end
    ):
        yield message


def _taggedmessages_text(profile, start_ts, seed, loop, duration_s, offline_at_s, offline_at_end):
    """(device index, message) pairs; the publisher needs to know which device sends."""
    end_ts = None
    end_offline = None
    if duration_s is not None:
        end_ts = start_ts + duration_s
    if offline_at_s is not None and (end_ts is None or start_ts + offline_at_s <= end_ts):
        end_ts, end_offline = start_ts + offline_at_s, True
    if offline_at_end is not None and end_offline is None:
        end_offline = offline_at_end
    streams = []
    for index, device in enumerate(profile.devices):
        offline = device.offline_at_end if end_offline is None else end_offline
        simulated = SimulatedDevice(device, seed=seed, index=index)
        streams.append(
            (
                (message.ts, index, sequence, message)
                for sequence, message in enumerate(
                    simulated.run(start_ts, loop=loop, end_ts=end_ts, offline_at_end=offline)
                )
            )
        )
    for _, index, _, message in heapq.merge(*streams, key=lambda item: item[:3]):
        yield index, message


def capture_lines(messages: Iterable[SimMessage]) -> Iterator[bytes]:
    """The messages as capture lines (the record format), ts being the simulated time."""
    for message in messages:
        yield capture_line(round(message.ts, 6), message.topic, message.payload)


class SimulatedDevice:
    """One device's timeline: samples power, integrates energy, decides what to publish."""

    def __init__(self, profile: DeviceProfile, *, seed: int = 0, index: int = 0):
        self.profile = profile
        self.kind = profile.kind_info
        self.rng = random.Random(f"{seed}|{index}|{profile.device_id}")
        self.component_key = f"{self.kind.component}:{profile.channel}"
        # Shelly ids end with the MAC address; other ids get a stable made-up one.
        tail = profile.device_id.rsplit("-", 1)[-1]
        if len(tail) == 12 and all(c in "0123456789abcdefABCDEF" for c in tail):
            self.mac = tail.upper()
        else:
            self.mac = hashlib.sha1(profile.device_id.encode()).hexdigest()[:12].upper()
        self.energy_wh = (
            profile.energy_total_wh
            if profile.energy_total_wh is not None
            else round(self.rng.uniform(500.0, 50000.0), 3)
        )
        self.uptime_at_start_s = self.rng.uniform(600.0, 86400.0)
        self.start_ts = 0.0
        # Three-phase meters split the load unevenly but steadily between phases.
        shares = [self.rng.uniform(0.9, 1.1) for _ in range(3)]
        self.phase_shares = [share / sum(shares) for share in shares]
        self.power_w = 0.0
        self.voltage_v = profile.voltage_v
        self.freq_hz = NOMINAL_FREQ_HZ
        self.reported_w = 0.0
        self.minute_wh = 0.0
        self.by_minute_mwh = [0.0, 0.0, 0.0]
        self.minute_start = 0.0
        self.last_t = 0.0
        self._next_gen1_update = math.inf

    # timeline

    def run(
        self,
        start_ts: float,
        *,
        loop: bool = False,
        end_ts: float | None = None,
        offline_at_end: bool = False,
    ) -> Iterator[SimMessage]:
        profile = self.profile
        if loop and profile.duration_s <= 0:
            raise ProfileError(f"{profile.device_id}: a looping profile needs a duration")
        steps = itertools.cycle(profile.steps) if loop else iter(profile.steps)
        t = start_ts
        self.start_ts = self.last_t = start_ts
        self.minute_start = self._minute_floor(start_ts)
        online = False
        for step in steps:
            if end_ts is not None and t >= end_ts:
                break
            step_end = None if step.duration_s is None else t + step.duration_s
            if end_ts is not None and (step_end is None or step_end > end_ts):
                step_end = end_ts
            if step.mode == "offline":
                if online:
                    yield self._online_message(t, False)
                    online = False
                self.power_w = 0.0  # unplugged
                if step_end is None:
                    return
                self._pass_unplugged(step_end)
                t = step_end
                continue
            first_sample = t
            if not online:
                # The state published on connecting is the first sample of the step.
                self.power_w = self.reported_w = self._sample_power(step)
                yield from self._connect(t)
                online = True
                first_sample = t + profile.sample_interval_s
            yield from self._run_step(step, first_sample, step_end)
            t = step_end
        if online and offline_at_end:
            yield self._online_message(t, False)

    def _pass_unplugged(self, until: float) -> None:
        """Let time pass while the device is off the network and draws nothing."""
        next_minute = self.minute_start + 60.0 - self.profile.clock_offset_s
        while next_minute <= until:
            self._integrate(next_minute)
            self._close_minute()
            next_minute += 60.0
        self._integrate(until)

    def _run_step(self, step: Step, first_sample: float, step_end: float):
        silent = step.mode == "silent"
        next_sample = first_sample
        next_minute = self.minute_start + 60.0 - self.profile.clock_offset_s
        next_gen1 = self._next_gen1_update if self.kind.is_gen1 else math.inf
        while True:
            now = min(next_sample, next_minute, next_gen1)
            if now >= step_end:
                self._integrate(step_end)
                break
            self._integrate(now)
            if now == next_minute:
                self._close_minute()
                next_minute += 60.0
                if not silent and not self.kind.is_gen1:
                    yield from self._energymessages_text(now)
            sampled = now == next_sample
            if sampled:
                next_sample += self.profile.sample_interval_s
                self.power_w = self._sample_power(step)
            if now == next_gen1:
                # The periodic update carries the fresh sample: no separate change report.
                next_gen1 += GEN1_UPDATE_PERIOD_S
                if not silent:
                    self.reported_w = self.power_w
                    yield from self._gen1_statemessages_text(now)
            elif sampled and not silent and self._worth_reporting(self.power_w):
                self.reported_w = self.power_w
                yield from self._powermessages_text(now)
        if self.kind.is_gen1:
            self._next_gen1_update = next_gen1

    def _connect(self, t: float) -> Iterator[SimMessage]:
        """What a device publishes when it (re)connects: online, then its full state."""
        self._next_gen1_update = t + GEN1_UPDATE_PERIOD_S
        yield self._online_message(t, True)
        if self.kind.is_gen1:
            yield from self._gen1_statemessages_text(t)
        else:
            yield self._rpc(t, "NotifyFullStatus", self._full_status_params(t))
            if self.profile.status_topics:
                yield from self._status_topicmessages_text(t)

    # physics

    def _sample_power(self, step: Step) -> float:
        value = step.power_w
        if step.jitter_w:
            value += self.rng.uniform(-step.jitter_w, step.jitter_w)
            if step.power_w >= 0:
                value = max(value, 0.0)  # noise on a load never makes it a generator
        return round(value, 1)

    def _sample_mains(self) -> None:
        self.voltage_v = round(self.profile.voltage_v + self.rng.uniform(-1.5, 1.5), 1)
        self.freq_hz = round(NOMINAL_FREQ_HZ + self.rng.uniform(-0.03, 0.03), 2)

    def _worth_reporting(self, power: float) -> bool:
        # Shelly reports a power change only beyond a threshold, absolute or relative.
        threshold = max(
            self.profile.report_min_change_w,
            abs(self.reported_w) * self.profile.report_min_change_pct / 100.0,
        )
        return power != self.reported_w and abs(power - self.reported_w) >= threshold

    def _integrate(self, until: float) -> None:
        if until > self.last_t:
            wh = abs(self.power_w) * (until - self.last_t) / 3600.0
            self.energy_wh += wh
            self.minute_wh += wh
            self.last_t = until

    def _close_minute(self) -> None:
        self.by_minute_mwh = [round(self.minute_wh * 1000.0, 3), *self.by_minute_mwh[:2]]
        self.minute_wh = 0.0
        self.minute_start += 60.0

    def _minute_floor(self, t: float) -> float:
        return math.floor((t + self.profile.clock_offset_s) / 60.0) * 60.0

    def _device_ts(self, t: float) -> float:
        return round(t + self.profile.clock_offset_s, 2)

    def _current(self, power: float) -> float:
        return round(abs(power) / (self.voltage_v * POWER_FACTOR), 3) if power else 0.0

    # Gen2 payloads

    def _rpc(self, t: float, method: str, params: dict) -> SimMessage:
        frame = {
            "src": self.profile.device_id,
            "dst": f"{self.profile.prefix}/events",
            "method": method,
            "params": {"ts": self._device_ts(t), **params},
        }
        return SimMessage(t, f"{self.profile.prefix}/events/rpc", _json(frame), False)

    def _aenergy(self) -> dict:
        return {
            "total": round(self.energy_wh, 3),
            "by_minute": list(self.by_minute_mwh),
            "minute_ts": int(self.minute_start),
        }

    def _power_status(self) -> dict:
        """The fields a NotifyStatus carries when the power changed."""
        p, v, i = self.power_w, self.voltage_v, self._current(self.power_w)
        ch = self.profile.channel
        name = self.kind.component
        if name == "pm1":
            return {"id": ch, "apower": p, "current": i, "voltage": v, "freq": self.freq_hz}
        if name == "switch":
            return {"id": ch, "apower": p, "current": i, "voltage": v}
        if name == "em1":
            return {
                "id": ch,
                "act_power": p,
                "aprt_power": round(abs(p) / POWER_FACTOR, 1),
                "current": i,
                "voltage": v,
                "pf": POWER_FACTOR if p else 0.0,
                "freq": self.freq_hz,
            }
        status = {"id": ch}
        phases = [round(p * share, 1) for share in self.phase_shares]
        for letter, phase_w in zip("abc", phases, strict=True):
            status[f"{letter}_act_power"] = phase_w
            status[f"{letter}_current"] = self._current(phase_w)
            status[f"{letter}_voltage"] = v
        status["total_act_power"] = round(sum(phases), 1)
        status["total_aprt_power"] = round(abs(sum(phases)) / POWER_FACTOR, 1)
        status["total_current"] = round(sum(self._current(w) for w in phases), 3)
        return status

    def _component_status(self) -> dict:
        """The full status of the metering component, as in NotifyFullStatus."""
        status = self._power_status()
        name = self.kind.component
        if name == "pm1":
            status["aenergy"] = self._aenergy()
            status["ret_aenergy"] = {
                "total": 0.0,
                "by_minute": [0.0, 0.0, 0.0],
                "minute_ts": int(self.minute_start),
            }
        elif name == "switch":
            status = {"id": status["id"], "source": "init", "output": True, **status}
            status["aenergy"] = self._aenergy()
            status["temperature"] = {"tC": 41.3, "tF": 106.3}
        elif name == "em1":
            status["calibration"] = "factory"
        else:
            status["n_current"] = None
        return status

    def _energy_component(self) -> tuple[str, dict]:
        """Where the energy counters live: the component itself, or its data companion."""
        name, ch = self.kind.component, self.profile.channel
        total = round(self.energy_wh, 3)
        if name == "em1":
            return f"em1data:{ch}", {
                "id": ch,
                "total_act_energy": total,
                "total_act_ret_energy": 0.0,
            }
        if name == "em":
            data = {"id": ch}
            for letter, share in zip("abc", self.phase_shares, strict=True):
                data[f"{letter}_total_act_energy"] = round(self.energy_wh * share, 3)
                data[f"{letter}_total_act_ret_energy"] = 0.0
            data["total_act"] = total
            data["total_act_ret"] = 0.0
            return f"emdata:{ch}", data
        status = {"id": ch, "aenergy": self._aenergy()}
        if name == "pm1":
            status["ret_aenergy"] = {
                "total": 0.0,
                "by_minute": [0.0, 0.0, 0.0],
                "minute_ts": int(self.minute_start),
            }
        return self.component_key, status

    def _full_status_params(self, t: float) -> dict:
        device_t = t + self.profile.clock_offset_s
        params = {
            "ble": {},
            "cloud": {"connected": False},
            "mqtt": {"connected": True},
            self.component_key: self._component_status(),
            "sys": {
                "mac": self.mac,
                "restart_required": False,
                "time": time.strftime("%H:%M", time.gmtime(device_t)),
                "unixtime": int(device_t),
                "uptime": int(self.uptime_at_start_s + t - self.start_ts),
                "ram_size": 262144,
                "ram_free": 148720,
                "fs_size": 1048576,
                "fs_free": 610304,
                "cfg_rev": 14,
                "kvs_rev": 0,
                "schedule_rev": 0,
                "webhook_rev": 0,
                "available_updates": {},
            },
            "wifi": {"sta_ip": "192.168.1.50", "status": "got ip", "ssid": "workshop", "rssi": -61},
        }
        key, data = self._energy_component()
        if key != self.component_key:
            params[key] = data
        return params

    def _powermessages_text(self, t: float) -> Iterator[SimMessage]:
        self._sample_mains()  # only reported values need fresh mains readings
        if self.kind.is_gen1:
            yield self._gen1(t, "power", f"{self.power_w:.2f}")
            return
        yield self._rpc(t, "NotifyStatus", {self.component_key: self._power_status()})
        if self.profile.status_topics:
            yield from self._status_topicmessages_text(t)

    def _energymessages_text(self, t: float) -> Iterator[SimMessage]:
        key, data = self._energy_component()
        yield self._rpc(t, "NotifyStatus", {key: data})
        if self.profile.status_topics and key != self.component_key:
            yield SimMessage(t, f"{self.profile.prefix}/status/{key}", _json(data), False)
        elif self.profile.status_topics:
            yield from self._status_topicmessages_text(t)

    def _status_topicmessages_text(self, t: float) -> Iterator[SimMessage]:
        topic = f"{self.profile.prefix}/status/{self.component_key}"
        yield SimMessage(t, topic, _json(self._component_status()), False)

    # Gen1 payloads

    def _gen1(self, t: float, leaf: str, text: str) -> SimMessage:
        component, ch = self.kind.component, self.profile.channel
        return SimMessage(t, f"{self.profile.prefix}/{component}/{ch}/{leaf}", text.encode(), False)

    def _gen1_statemessages_text(self, t: float) -> Iterator[SimMessage]:
        """The periodic update (every 30 s) a Gen1 device publishes of its whole state."""
        self._sample_mains()
        watt_minutes = int(self.energy_wh * 60.0)
        if self.kind.component == "relay":
            ch = self.profile.channel
            yield SimMessage(t, f"{self.profile.prefix}/relay/{ch}", b"on", False)
            yield self._gen1(t, "power", f"{self.power_w:.2f}")
            yield self._gen1(t, "energy", str(watt_minutes))
            return
        reactive = abs(self.power_w) * math.tan(math.acos(POWER_FACTOR))
        yield self._gen1(t, "power", f"{self.power_w:.2f}")
        yield self._gen1(t, "reactive_power", f"{reactive:.2f}")
        yield self._gen1(t, "voltage", f"{self.voltage_v:.2f}")
        yield self._gen1(t, "pf", f"{POWER_FACTOR if self.power_w else 0.0:.2f}")
        yield self._gen1(t, "energy", str(watt_minutes))
        yield self._gen1(t, "total", f"{self.energy_wh:.1f}")
        yield self._gen1(t, "total_returned", "0.0")

    def _online_message(self, t: float, online: bool) -> SimMessage:
        return SimMessage(t, self.profile.online_topic, b"true" if online else b"false", True)


def _json(data: dict) -> bytes:
    # Shelly sends compact JSON.
    return json.dumps(data, separators=(",", ":")).encode()


# -- publishing -----------------------------------------------------------------------


class Publisher:
    """One broker connection per device, as real devices have, each with its last will."""

    def __init__(self, profile: Profile, options, qos: int, log):
        self.profile = profile
        self.options = options
        self.qos = qos
        self.log = log
        self.connections: list[BrokerConnection] = []
        self.online = [False] * len(profile.devices)
        self.sent = 0
        self.acknowledged = 0
        self._acknowledgement = threading.Condition()

    def connect(self) -> None:
        many = len(self.profile.devices) > 1
        for index, device in enumerate(self.profile.devices):
            if self.options.client_id:
                client_id = f"{self.options.client_id}-{index}" if many else self.options.client_id
            else:
                client_id = device.device_id
            connection = BrokerConnection(
                self.options,
                client_id,
                will=Will(device.online_topic, b"false", qos=self.qos, retain=True),
                log=self.log,
            )
            connection.client.on_publish = self._on_publish
            connection.start()
            self.connections.append(connection)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # QoS 1 and 2: the broker acknowledged; QoS 0: the message left.
        with self._acknowledgement:
            self.acknowledged += 1
            self._acknowledgement.notify_all()

    def publish(self, index: int, message: SimMessage) -> None:
        client = self.connections[index].client
        with self._acknowledgement:
            self.sent += 1
        client.publish(message.topic, message.payload, qos=self.qos, retain=message.retain)
        if message.topic == self.profile.devices[index].online_topic:
            self.online[index] = message.payload == b"true"

    def announce_offline(self, ts: float) -> list[SimMessage]:
        """Publish the last will of every device still online (on an interrupted run)."""
        sent = []
        for index, device in enumerate(self.profile.devices):
            if self.online[index]:
                message = SimMessage(ts, device.online_topic, b"false", True)
                self.publish(index, message)
                sent.append(message)
        return sent

    def close(self, timeout_s: float = 10.0) -> int:
        """Wait for the broker to acknowledge what was sent; return how many were not."""
        with self._acknowledgement:
            self._acknowledgement.wait_for(lambda: self.acknowledged >= self.sent, timeout_s)
            unacknowledged = max(self.sent - self.acknowledged, 0)
        for connection in self.connections:
            connection.stop()
        return unacknowledged


class Progress:
    def __init__(self, stream, start_ts: float, total_s: float | None, interval_s: float | None):
        self.stream = stream
        self.tty = stream.isatty()
        # None or 0 turns the live count off, on a terminal too.
        self.interval_s = (TTY_REFRESH_S if self.tty else interval_s) if interval_s else None
        self.start_ts = start_ts
        self.total_s = total_s
        self._last = time.monotonic()

    def tick(self, count: int, sim_ts: float) -> None:
        if not self.interval_s or time.monotonic() - self._last < self.interval_s:
            return
        self._last = time.monotonic()
        clock = time.strftime("%H:%M:%S", time.gmtime(sim_ts))
        of = f" of {self.total_s:.0f}" if self.total_s else ""
        text = (
            f"{messages_text(count)}, simulated {clock} UTC (+{sim_ts - self.start_ts:.0f}{of} s)"
        )
        self.stream.write(f"\r\033[K{text}" if self.tty else text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


# -- command line ---------------------------------------------------------------------

PROFILE_HELP = """\
examples:
  %(prog)s --list-profiles
  # one laser job, in real time
  %(prog)s laser-job --host broker.local
  # six machines, over and over, ten times faster
  %(prog)s workshop --loop --speed 10
  # a whole day as a capture for the replay tool, at once
  %(prog)s cnc-day --dry-run --start-ts 1700000000 > day.jsonl

profile format (JSON):
  {"description": "...",
   "devices": [{"kind": "pm1", "device_id": "shellypmminig3-48f6eeb73a1c",
                "prefix": "{id}", "channel": 0, "jitter_w": 0,
                "steps": [{"power_w": 0, "duration_s": 30},
                          {"power_w": 540, "duration_s": 120, "jitter_w": 5},
                          {"repeat": 3, "steps": [...]},
                          {"silent": true, "power_w": 540, "duration_s": 400},
                          {"offline": true, "duration_s": 60}]}]}
  A bare list of devices, or one device object, is accepted too. Optional device keys:
  report_min_change_w (5), report_min_change_pct (5), sample_interval_s (1), voltage_v
  (230), energy_total_wh, clock_offset_s (device clock error), status_topics,
  offline_at_end. A silent step keeps drawing power but publishes nothing; an offline
  step publishes the last will, then nothing until it ends (without duration_s: for
  good).

device kinds:
{kinds}

time:
  Everything follows a simulated clock that starts at --start-ts (default: now) and
  advances --speed times faster than the wall clock. The device timestamps of Gen2
  frames (params.ts) and the ts of --capture lines are simulated times: with --speed
  above 1 they run ahead of the time the messages are received, so replay recordings
  of sped-up runs with a max_clock_skew_s that covers the simulated duration. Gen1
  messages carry no timestamp; receivers see them at their receive time.
"""


def build_parser() -> argparse.ArgumentParser:
    kinds = "\n".join(
        f"  {k.name:12} {k.description}, ids like {k.id_prefix}-..." for k in KINDS.values()
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Publish realistic Shelly Gen1 and Gen2/3/4 MQTT messages for simulated devices "
            "that follow a power profile. Each device has its own connection, with its "
            "last will ('false' on <prefix>/online) set as a real one has."
        ),
        epilog=PROFILE_HELP.replace("{kinds}", kinds).replace("%(prog)s", PROG),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "profile",
        nargs="?",
        help="built-in profile name (see --list-profiles) or path to a profile JSON file",
    )
    parser.add_argument(
        "--list-profiles", action="store_true", help="list the built-in profiles and exit"
    )
    run = parser.add_argument_group("simulation")
    run.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help=(
            "time compression: 60 plays a simulated minute per wall-clock second "
            "(default: 1, real time; 'inf': as fast as possible). Published timestamps "
            "stay those of the simulated clock."
        ),
    )
    run.add_argument(
        "--start-ts",
        type=float,
        metavar="EPOCH",
        help=(
            "epoch seconds at which the simulated clock starts (default: now); "
            "a time ahead is waited for, so that at --speed 1 device time is wall time"
        ),
    )
    run.add_argument("--seed", type=int, default=0, help="random seed for jitter (default: 0)")
    run.add_argument("--loop", action="store_true", help="repeat the profile until stopped")
    run.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        help="stop after S simulated seconds",
    )
    run.add_argument(
        "--offline-at",
        type=_non_negative_float,
        metavar="S",
        help="S simulated seconds after the start, every device drops off (last will)",
    )
    run.add_argument(
        "--offline-at-end",
        action="store_true",
        help=(
            "publish every device's last will ('false' on <prefix>/online) at the end, "
            "also when stopped by Ctrl-C"
        ),
    )
    devices = parser.add_argument_group("devices")
    devices.add_argument("--kind", choices=list(KINDS), help="simulate every device as KIND")
    devices.add_argument("--device-id", help="device id, for a profile with one device")
    devices.add_argument(
        "--prefix",
        metavar="TEMPLATE",
        help="MQTT topic prefix, '{id}' is the device id (default: {id}; Gen1: shellies/{id})",
    )
    devices.add_argument(
        "--replicas",
        type=positive_int,
        default=1,
        metavar="N",
        help="simulate N copies of every device, with their own ids and noise",
    )
    devices.add_argument(
        "--status-topics",
        action="store_true",
        default=None,
        help="also publish full component status on <prefix>/status/<component>",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--dry-run",
        action="store_true",
        help="publish nothing: write the capture (JSON lines) at once, to stdout or --capture",
    )
    output.add_argument(
        "--capture",
        metavar="FILE",
        help="write every message as a capture line (ts = simulated time) to FILE",
    )
    output.add_argument(
        "--qos", type=int, choices=(0, 1, 2), default=1, help="publish QoS (default: 1)"
    )
    output.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between progress lines when stderr is not a terminal (0: no live count)",
    )
    add_broker_arguments(
        parser,
        client_id_help=(
            "MQTT client id (default: each device connects with its device id, as a real "
            "one does; with several devices and this option, ID-0, ID-1, ...)"
        ),
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_profiles:
        return _list_profiles()
    if not args.profile:
        parser.error("a profile is needed (a built-in name or a JSON file); see --list-profiles")
    if args.loop and args.dry_run and args.duration is None and args.offline_at is None:
        parser.error("--loop with --dry-run needs --duration")
    try:
        profile = customise(
            load_profile(args.profile),
            kind=args.kind,
            device_id=args.device_id,
            prefix=args.prefix,
            replicas=args.replicas,
            status_topics=args.status_topics,
        )
    except ProfileError as exc:
        return _fail(str(exc))
    try:
        capture = _open_capture(args)
    except OSError as exc:
        return _fail(f"cannot write {args.capture}: {exc.strerror}")
    try:
        if args.dry_run:
            start_ts = args.start_ts if args.start_ts is not None else float(int(time.time()))
            return _write_capture(_messages_for(args, profile, start_ts), capture)
        return _publish(args, profile, capture)
    except BrokenPipeError:
        return 0
    except ProfileError as exc:
        return _fail(str(exc))
    finally:
        if capture is not None and capture is not sys.stdout.buffer:
            capture.close()


def _messages_for(args, profile: Profile, start_ts: float):
    return _taggedmessages_text(
        profile,
        start_ts,
        args.seed,
        args.loop,
        args.duration,
        args.offline_at,
        True if args.offline_at_end else None,
    )


def _run_span_s(args, profile: Profile) -> float | None:
    """Simulated seconds the run lasts, None when it loops until stopped."""
    limits = [x for x in (args.duration, args.offline_at) if x is not None]
    if limits:
        return min(limits)
    return None if args.loop else profile.duration_s


def _open_capture(args):
    if args.capture:
        return open(args.capture, "wb")
    return sys.stdout.buffer if args.dry_run else None


def _write_capture(tagged, capture) -> int:
    count = 0
    for _, message in tagged:
        capture.write(capture_line(round(message.ts, 6), message.topic, message.payload))
        count += 1
    capture.flush()
    if capture is not sys.stdout.buffer:
        _note(f"wrote {messages_text(count)}")
    return 0


def _publish(args, profile: Profile, capture) -> int:
    try:
        options = broker_options_from_args(args)
        publisher = Publisher(profile, options, args.qos, _note)
    except BrokerError as exc:
        return _fail(str(exc))
    try:
        publisher.connect()
    except BrokerError as exc:
        for connection in publisher.connections:
            connection.stop()
        return _fail(str(exc))
    except KeyboardInterrupt:
        for connection in publisher.connections:
            connection.stop()
        return 130

    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda signum, frame: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    span_s = _run_span_s(args, profile)
    count = 0
    try:
        start_ts = args.start_ts
        if start_ts is None:
            start_ts = round(time.time(), 2)
        elif start_ts > time.time():
            # A start time ahead is waited for: at --speed 1 the simulated clock then
            # is the wall clock, as for real devices with synchronised clocks.
            _note(f"waiting {start_ts - time.time():.1f} s for the start time")
            stop.wait(start_ts - time.time())
        devices = len(profile.devices)
        _note(
            f"{devices} device{'s' if devices > 1 else ''} publishing to {options.address}"
            f" {'as fast as possible' if math.isinf(args.speed) else f'at {args.speed:g}x'}"
            f" from simulated {start_ts:.2f}"
        )
        progress = Progress(sys.stderr, start_ts, span_s, args.progress_interval)
        started = time.monotonic()
        sim_ts = start_ts
        for index, message in _messages_for(args, profile, start_ts):
            delay = started + (message.ts - start_ts) / args.speed - time.monotonic()
            if stop.is_set() or (delay > 0 and stop.wait(delay)):
                break
            publisher.publish(index, message)
            if capture is not None:
                capture.write(capture_line(round(message.ts, 6), message.topic, message.payload))
            count += 1
            sim_ts = message.ts
            progress.tick(count, sim_ts)
        if span_s is not None and not stop.is_set():
            # The profile may end with a quiet stretch: it still takes its time.
            remaining = started + span_s / args.speed - time.monotonic()
            if remaining <= 0 or not stop.wait(remaining):
                sim_ts = start_ts + span_s
        if stop.is_set():
            if math.isfinite(args.speed):
                sim_ts = max(sim_ts, start_ts + (time.monotonic() - started) * args.speed)
            if args.offline_at_end:
                for message in publisher.announce_offline(sim_ts):
                    count += 1
                    if capture is not None:
                        capture.write(
                            capture_line(round(sim_ts, 6), message.topic, message.payload)
                        )
        progress.finish()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        unacknowledged = publisher.close()
    how = "stopped" if stop.is_set() else "done"
    elapsed = time.monotonic() - started
    _note(
        f"{how}: published {messages_text(count)} in {elapsed:.1f} s"
        f" ({sim_ts - start_ts:.0f} simulated s)"
    )
    if unacknowledged:
        _note(f"warning: the broker did not acknowledge {messages_text(unacknowledged)}")
    return 0


def _list_profiles() -> int:
    for name in sorted(builtin_profiles()):
        try:
            profile = load_profile(name)
        except ProfileError as exc:
            print(f"{name}: broken ({exc})")  # pylint: disable=print-used
            continue
        kinds = ", ".join(sorted({d.kind for d in profile.devices}))
        minutes = profile.duration_s / 60.0
        print(f"{name:14} {len(profile.devices)} device(s) [{kinds}], {minutes:.0f} min")  # pylint: disable=print-used
        if profile.description:
            print(  # pylint: disable=print-used
                textwrap.fill(
                    profile.description, 88, initial_indent=" " * 15, subsequent_indent=" " * 15
                )
            )
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be zero or more: {text}")
    return value


def _note(text: str) -> None:
    note("simulator", text)


def _fail(text: str) -> int:
    _note(f"error: {text}")
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
