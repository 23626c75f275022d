"""Run a captured MQTT stream through the engine and print events and sessions.

    python -m ows_iot.services.replay --devices DEVICES.json CAPTURE.jsonl [--until TS]

DEVICES.json is a JSON list of device configurations (see DeviceConfig; unknown
keys are ignored). CAPTURE.jsonl has one message a line:
``{"ts": <receive time, epoch seconds>, "topic": "...", "payload": "<text>"}``
(``payload_b64`` instead of ``payload`` for binary). Output is JSON lines on
stdout: every event as it fires, then one line per session in start order.
Unreadable capture lines are skipped and counted on stderr; an unreadable
DEVICES.json exits with status 2.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Iterator

from .config import ConfigError, DeviceConfig
from .events import Event
from .ingestor import Ingestor

FINAL_EVENTS = {"session_stopped": "completed", "session_timeout": "timeout"}


class UsageError(Exception):
    """A problem the user must fix; reported in one line."""


def load_devices(path: str) -> list[DeviceConfig]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("devices"), list):
        data = data["devices"]
    if not isinstance(data, list):
        raise UsageError(f"{path} must hold a JSON list of device configurations")
    devices, seen = [], set()
    for index, item in enumerate(data):
        try:
            config = DeviceConfig.from_dict(item)
        except ConfigError as exc:
            raise UsageError(f"{path}: device #{index + 1}: {exc}") from None
        if config.device_id in seen:
            raise UsageError(f"{path}: device_id {config.device_id!r} appears twice")
        seen.add(config.device_id)
        devices.append(config)
    return devices


def read_capture(lines: Iterable[str], skipped: Counter) -> Iterator[tuple[float, str, bytes]]:
    """Yield (ts, topic, payload) for each readable line; count the others."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            skipped["not_json"] += 1
            continue
        if not isinstance(record, dict):
            skipped["not_an_object"] += 1
            continue
        ts, topic = record.get("ts"), record.get("topic")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            skipped["bad_ts"] += 1
            continue
        if not isinstance(topic, str):
            skipped["bad_topic"] += 1
            continue
        if isinstance(record.get("payload"), str):
            payload = record["payload"].encode("utf-8", "surrogatepass")
        elif isinstance(record.get("payload_b64"), str):
            try:
                payload = base64.b64decode(record["payload_b64"], validate=True)
            except (binascii.Error, ValueError):
                skipped["bad_payload"] += 1
                continue
        else:
            skipped["bad_payload"] += 1
            continue
        yield float(ts), topic, payload


class SessionBook:
    """Collects the session summaries from the event stream."""

    def __init__(self):
        self.sessions: dict[str, dict] = {}

    def add(self, event: Event) -> None:
        if event.session_id is None:
            return
        payload = event.payload
        self.sessions[event.session_id] = {
            "kind": "session",
            "device_id": event.device_id,
            "session_id": event.session_id,
            "status": FINAL_EVENTS.get(event.event_type, "running"),
            "start": payload["start"],
            "end": payload["end"],
            "working_s": payload["working_s"],
            "standby_s": payload["standby_s"],
            "energy_wh": payload["energy_wh"],
        }

    def update_running(self, running: list[dict]) -> None:
        for totals in running:
            entry = self.sessions.get(totals["session_id"])
            if entry is not None:
                for key in ("working_s", "standby_s", "energy_wh"):
                    entry[key] = totals[key]

    def in_start_order(self) -> list[dict]:
        return sorted(self.sessions.values(), key=lambda s: (s["start"], s["device_id"]))


def replay(devices, messages, until=None, write=print) -> Ingestor:
    ingestor = Ingestor(devices)
    book = SessionBook()

    def emit_all(events):
        for event in events:
            book.add(event)
            write(json.dumps({"kind": "event", **event.to_dict()}, sort_keys=False))

    for ts, topic, payload in messages:
        emit_all(ingestor.process(topic, payload, ts))
    if until is not None:
        emit_all(ingestor.advance(until))
    book.update_running(ingestor.running_sessions())
    for session in book.in_start_order():
        write(json.dumps(session))
    return ingestor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ows_iot.services.replay",
        description="Replay a captured MQTT stream through the session engine.",
    )
    parser.add_argument("--devices", required=True, help="JSON list of device configurations")
    parser.add_argument("capture", help="capture in JSON lines ('-' for stdin)")
    parser.add_argument("--until", type=float, help="advance the clock to this epoch time")
    args = parser.parse_args(argv)
    try:
        devices = load_devices(args.devices)
        handle = sys.stdin.buffer if args.capture == "-" else open(args.capture, "rb")  # noqa: SIM115
    except UsageError as exc:
        print(f"replay: {exc}", file=sys.stderr)  # pylint: disable=print-used
        return 2
    except OSError as exc:
        print(f"replay: cannot read {args.capture}: {exc.strerror}", file=sys.stderr)  # pylint: disable=print-used
        return 2
    skipped: Counter = Counter()
    try:
        with handle:
            ingestor = replay(devices, read_capture(_decoded(handle, skipped), skipped), args.until)
    except BrokenPipeError:
        return 0
    dropped = dict(ingestor.dropped)
    if skipped or dropped:
        print(  # pylint: disable=print-used
            f"replay: {ingestor.messages} messages; skipped capture lines {dict(skipped)};"
            f" dropped messages {dropped}",
            file=sys.stderr,
        )
    return 0


def _decoded(raw_lines, skipped):
    """Decode each capture line on its own, so one bad line does not end the run."""
    for raw in raw_lines:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            skipped["not_utf8"] += 1


if __name__ == "__main__":
    sys.exit(main())
