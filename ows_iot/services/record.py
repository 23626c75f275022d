"""Record raw MQTT messages to a capture file, one JSON object a line.

    python -m ows_iot.services.record --host broker -t 'shellies/#' -t '+/events/rpc' -o day.jsonl

Each line is ``{"ts": <receive time, epoch seconds>, "topic": "...", "payload": "<text>"}``,
or ``"payload_b64"`` instead of ``"payload"`` when the payload is not valid UTF-8: the
format that ``python -m ows_iot.services.replay`` reads. A live count of messages goes
to stderr. Ctrl-C or SIGTERM stops the recording cleanly; ``--count`` and
``--duration`` stop it by themselves.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from typing import BinaryIO

from .ingestor import Ingestor
from .mqtt_options import (
    BrokerConnection,
    BrokerError,
    add_broker_arguments,
    broker_options_from_args,
    messages_text,
    note,
    positive_int,
)

PROG = "python -m ows_iot.services.record"
EXIT_BROKER = 2
TTY_REFRESH_S = 0.5
FLUSH_EVERY_S = 1.0


def capture_record(ts: float, topic: str, payload: bytes) -> dict:
    """The capture line for one message, as a mapping."""
    try:
        return {"ts": ts, "topic": topic, "payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"ts": ts, "topic": topic, "payload_b64": base64.b64encode(payload).decode("ascii")}


def capture_line(ts: float, topic: str, payload: bytes) -> bytes:
    """The capture line for one message, encoded, with its newline."""
    text = json.dumps(capture_record(ts, topic, payload), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


class Recorder:
    """Writes every message it is handed; counts them; knows when to stop."""

    def __init__(
        self,
        out: BinaryIO,
        done: threading.Event,
        *,
        limit: int | None = None,
        skip_retained: bool = False,
    ):
        self.out = out
        self.done = done
        self.limit = limit
        self.skip_retained = skip_retained
        self.count = 0
        self.skipped_retained = 0
        self.write_error: str | None = None
        self._lock = threading.Lock()

    def on_message(self, client, userdata, message) -> None:
        received = time.time()
        if self.skip_retained and message.retain:
            # Retained messages are delivered with the flag only when stored before
            # we subscribed: old state, not traffic.
            self.skipped_retained += 1
            return
        line = capture_line(received, message.topic, message.payload)
        with self._lock:
            if self.done.is_set():
                return
            try:
                self.out.write(line)
            except OSError as exc:
                # A closed pipe or a full disk ends the recording, reported by main().
                self.write_error = exc.strerror or str(exc)
                self.done.set()
                return
            self.count += 1
            if self.limit is not None and self.count >= self.limit:
                self.done.set()

    def flush(self) -> None:
        with self._lock:
            try:
                self.out.flush()
            except OSError as exc:
                self.write_error = self.write_error or exc.strerror or str(exc)
                self.done.set()


class Progress:
    """The live count on stderr: one updating line on a terminal, else a line now and then."""

    def __init__(self, stream, interval_s: float | None):
        self.stream = stream
        self.tty = stream.isatty()
        # None or 0 turns the live count off, on a terminal too.
        self.interval_s = (TTY_REFRESH_S if self.tty else interval_s) if interval_s else None
        self.started = time.monotonic()
        self._last_shown = self.started
        self._last_count = 0

    def tick(self, count: int) -> None:
        if self.interval_s is None or self.interval_s <= 0:
            return
        now = time.monotonic()
        if now - self._last_shown < self.interval_s:
            return
        rate = (count - self._last_count) / (now - self._last_shown)
        self._last_shown, self._last_count = now, count
        text = f"{messages_text(count)} ({rate:.1f}/s, {now - self.started:.0f} s)"
        if self.tty:
            self.stream.write(f"\r\033[K{text}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def device_filters(devices_path: str | None, discovery: bool = False) -> set[str]:
    """The topic filters that cover the devices of a device list (and announcements)."""
    from .replay import load_devices

    ingestor = Ingestor(load_devices(devices_path) if devices_path else [])
    ingestor.discovery = discovery
    return ingestor.topic_filters()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Record MQTT messages as JSON lines {ts, topic, payload} for\n"
            "python -m ows_iot.services.replay. ts is the receive time (epoch seconds);\n"
            "payloads that are not UTF-8 text are written as payload_b64."
        ),
        epilog=(
            "Stop with Ctrl-C (or SIGTERM); the file is flushed and the total printed.\n\n"
            "examples:\n"
            f"  {PROG} --host broker.local -o day.jsonl\n"
            f"  {PROG} -t 'shellies/#' -t '+/events/rpc' -t '+/online' -o day.jsonl\n"
            f"  {PROG} --devices devices.json --discovery -o day.jsonl\n"
            f"  OWS_MQTT_PASSWORD=... {PROG} --host broker --port 8883 \\\n"
            "      --cafile ca.pem --username ows -t 'shellypmminig3-48f6eeb73a1c/#'"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-t",
        "--topic",
        action="append",
        dest="topics",
        metavar="FILTER",
        help="topic filter to subscribe to, repeatable (default: '#')",
    )
    parser.add_argument(
        "--devices",
        metavar="DEVICES.json",
        help="subscribe to what these devices publish (the replay tool's device list; "
        "any parser type: Shelly, Tasmota, Zigbee2MQTT, ESPHome, generic JSON)",
    )
    parser.add_argument(
        "--discovery",
        action="store_true",
        help="also record the announcements of meters (Shelly, Tasmota, Zigbee2MQTT)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="capture file to write (default: stdout)"
    )
    parser.add_argument(
        "-a", "--append", action="store_true", help="append to FILE instead of replacing it"
    )
    parser.add_argument(
        "--qos", type=int, choices=(0, 1, 2), default=1, help="subscription QoS (default: 1)"
    )
    parser.add_argument(
        "--skip-retained",
        action="store_true",
        help="leave out retained messages the broker held before the recording started",
    )
    parser.add_argument(
        "-n", "--count", type=positive_int, metavar="N", help="stop after N messages"
    )
    parser.add_argument(
        "--duration", type=_positive_float, metavar="S", help="stop after S seconds"
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between count lines when stderr is not a terminal (0: no live count)",
    )
    add_broker_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    topics = list(args.topics or [])
    if args.devices or args.discovery:
        try:
            topics += sorted(device_filters(args.devices, args.discovery))
        except Exception as exc:
            parser.error(f"--devices: {exc}")
    topics = topics or ["#"]
    for topic in topics:
        problem = _filter_problem(topic)
        if problem:
            parser.error(f"bad topic filter {topic!r}: {problem}")
    try:
        options = broker_options_from_args(args)
    except BrokerError as exc:
        return _fail(str(exc))

    if args.output:
        try:
            out = open(args.output, "ab" if args.append else "wb")  # noqa: SIM115
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror}")
    else:
        out = sys.stdout.buffer
    try:
        return _record(args, options, topics, out)
    finally:
        if out is not sys.stdout.buffer:
            out.close()


def _record(args, options, topics: list[str], out: BinaryIO) -> int:
    done = threading.Event()
    recorder = Recorder(out, done, limit=args.count, skip_retained=args.skip_retained)
    subscribed = threading.Event()

    def subscribe(client) -> None:
        client.subscribe([(topic, args.qos) for topic in topics])

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        refused = [t for t, rc in zip(topics, reason_codes, strict=False) if rc.is_failure]
        if refused:
            _note(f"broker refused the subscription to {', '.join(refused)}")
        if not subscribed.is_set():
            subscribed.set()
            _note(f"recording {', '.join(topics)} from {options.address}")

    client_id = options.client_id or f"ows-record-{os.getpid()}-{int(time.time())}"
    try:
        connection = BrokerConnection(
            options, client_id, on_connected=subscribe, on_message=recorder.on_message, log=_note
        )
        connection.client.on_subscribe = on_subscribe
        connection.start()
    except BrokerError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130

    previous_handlers = _install_stop_handlers(done)
    # Data and count on the same terminal would garble each other: show the total only.
    shows_data = out is sys.stdout.buffer and sys.stdout.isatty()
    progress = Progress(sys.stderr, None if shows_data else args.progress_interval)
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    last_flush = started
    try:
        while not done.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            done.wait(TTY_REFRESH_S if deadline is None else min(TTY_REFRESH_S, deadline - now))
            progress.tick(recorder.count)
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                recorder.flush()
                last_flush = time.monotonic()
    finally:
        done.set()
        connection.stop()
        _restore_handlers(previous_handlers)
        progress.finish()
        recorder.flush()

    if recorder.write_error:
        return _fail(f"cannot write the capture: {recorder.write_error}")
    where = f" to {args.output}" if args.output else ""
    extra = f", {recorder.skipped_retained} retained left out" if recorder.skipped_retained else ""
    elapsed = time.monotonic() - started
    _note(f"recorded {messages_text(recorder.count)}{where} in {elapsed:.1f} s{extra}")
    return 0


def _install_stop_handlers(stop: threading.Event) -> dict:
    def handler(signum, frame):
        stop.set()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _filter_problem(topic: str) -> str | None:
    if not topic:
        return "empty"
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' must be a whole last level"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _note(text: str) -> None:
    note("record", text)


def _fail(text: str) -> int:
    _note(f"error: {text}")
    return EXIT_BROKER


if __name__ == "__main__":
    sys.exit(main())
