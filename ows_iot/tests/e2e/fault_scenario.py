"""The fault suite: real processes, faults injected in turn, sessions scored per fault.

``run_fault_suite`` starts, on free loopback ports, a private PostgreSQL cluster (a
copy of an installed ``ows_iot`` database), a private Mosquitto with persistence, a
TCP relay between Odoo and the broker, two Odoo servers on the one database (one
threaded, one with ``--workers=2``, both loading ``ows_iot`` server-wide), an
independent subscriber that records the broker's traffic, and the simulator with
Gen2 and Gen1 devices looping a profile (sessions with standby pauses, cancelled
stops, a last will at the end). It injects the faults one after the other, each
after a quiet gap, waits (bounded) until the leader commits new readings again,
then stops the devices, lets the runtime settle and compares the database's
sessions with the recording replayed offline (faults.py), per fault.

Used by ``ows_iot/tests/e2e/test_faults.py`` (a short run in CI) and
``bench/faults.py`` (the long one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ows_iot.services.record import capture_line, capture_record

from .faults import (
    CLOCKED,
    UNCLOCKED,
    Tally,
    Window,
    attribute,
    compare,
    fault_line,
    mark_delayed,
    tally,
)
from .harness import REPO_ROOT, Mosquitto, OdooServer, ThrowawayPostgres, free_port, query
from .harness import sessions as db_sessions
from .scenario import (
    DEVICE_DEFAULTS,
    configure_broker,
    leader_pid,
    replayed,
    runtime_status,
    wait_for_leader,
)

LOAD = ("--load=base,web,ows_iot",)
CLIENT_ID = "ows-e2e-faults"

# -- the devices and what they do (one loop lasts LOOP_S seconds) ------------------------

LOOP_S = 20.0
LASER = "shellypmminig3-fa0000000001"
ROUTER = "shellyplus1pm-fa0000000002"
SAW = "shellypmminig3-fa0000000003"
PRINTER = "shellyplug-s-FA0000000004"
GEN1 = {PRINTER}


def _steps(*steps):
    return [
        {"power_w": watts, "duration_s": seconds, **({"jitter_w": jitter} if jitter else {})}
        for watts, seconds, jitter in steps
    ]


# (watts, seconds, jitter) steps, 20 s each. One laser job: working, a standby pause,
# working, a cancelled stop (2 s off), working. Two short router jobs. A saw with two
# jobs, the second with a standby pause. The Gen1 printer (no timestamps): a cancelled
# stop and a standby pause. Every device starts a loop off and ends it off for the
# stop debounce (5 s), so a run stopped at a loop's start leaves no session running.
LASER_STEPS = ((0, 2, 0), (540, 4, 40), (60, 2, 4), (540, 3, 40), (0, 2, 0), (540, 2, 40), (0, 5, 0))  # fmt: skip
ROUTER_STEPS = ((0, 2, 0), (200, 5, 20), (0, 5, 0), (300, 3, 25), (0, 5, 0))
SAW_STEPS = ((0, 1, 0), (300, 3, 25), (0, 6, 0), (300, 3, 25), (40, 2, 3), (0, 5, 0))
PRINTER_STEPS = ((0, 1, 0), (400, 5, 30), (0, 2, 0), (400, 2, 30), (50, 3, 4), (400, 2, 30), (0, 5, 0))  # fmt: skip

PROFILE = {
    "description": "fault suite: three Gen2 meters and a Gen1 plug, one loop every 20 s",
    "devices": [
        {"kind": "pm1", "device_id": LASER, "steps": _steps(*LASER_STEPS)},
        {"kind": "switch", "device_id": ROUTER, "steps": _steps(*ROUTER_STEPS)},
        {"kind": "pm1", "device_id": SAW, "steps": _steps(*SAW_STEPS)},
        {"kind": "gen1-relay", "device_id": PRINTER, "steps": _steps(*PRINTER_STEPS)},
    ],
}
# Where in a loop the devices are stopped: at its very start (every session ended),
# or in the middle of the laser's and the printer's jobs (their last wills end them).
CLEAN_END_OFFSET_S = 0.6
MID_SESSION_OFFSET_S = 9.0
# Faults strike 5 s into a loop, when three of the four devices are working; the
# sessions of that loop are then the fault's.
INJECT_OFFSET_S = 5.0
# A fault's window: from its injection until new readings are committed again, plus
# this much for what settles just after.
WINDOW_TAIL_S = 2.0


def device_records() -> list[dict]:
    """The devices as created in Odoo (and handed to the replay tool)."""
    records = []
    for device in PROFILE["devices"]:
        gen1 = device["kind"].startswith("gen1")
        device_id = device["device_id"]
        records.append(
            {
                "name": device_id,
                "device_id": device_id,
                "mqtt_topic": f"shellies/{device_id}" if gen1 else device_id,
                "parser_type": "shelly_gen1" if gen1 else "shelly_gen2",
                **DEVICE_DEFAULTS,
            }
        )
    return records


def tolerance_of(device_id: str):
    return UNCLOCKED if device_id in GEN1 else CLOCKED


def poison_messages() -> list[tuple[str, bytes]]:
    """Messages no runtime may choke on: numbers too large for a float, broken JSON,
    a 70 KiB frame."""
    huge = "9" * 4000
    return [
        (f"{ROUTER}/status/switch:0", f'{{"id": 0, "apower": {huge}}}'.encode()),
        (
            f"{ROUTER}/events/rpc",
            (
                f'{{"src": "{ROUTER}", "dst": "{ROUTER}/events", "method": "NotifyStatus",'
                f' "params": {{"ts": {huge}, "switch:0": {{"id": 0, "apower": 250.0}}}}}}'
            ).encode(),
        ),
        (
            f"{LASER}/events/rpc",
            (
                f'{{"src": "{LASER}", "method": "NotifyStatus", "params": {{"ts": {time.time()},'
                f' "pm1:0": {{"id": 0, "apower": {huge}}}}}}}'
            ).encode(),
        ),
        (f"{LASER}/events/rpc", b'{"src": "' + LASER.encode() + b'", "method": "NotifyStat'),
        (
            f"{SAW}/events/rpc",
            json.dumps(
                {
                    "src": SAW,
                    "method": "NotifyEvent",
                    "params": {"events": [{"component": "sys", "event": "x" * 70 * 1024}]},
                }
            ).encode(),
        ),
        (f"shellies/{PRINTER}/relay/0/power", huge.encode()),
    ]


# -- faults --------------------------------------------------------------------------------

KINDS = {
    "leader-kill": "SIGKILL of the leading process (the threaded server or a prefork worker)",
    "broker-down": "Mosquitto stopped for DURATION seconds",
    "postgres-down": "PostgreSQL stopped for DURATION seconds",
    "odoo-down": "both Odoo servers stopped for DURATION seconds",
    "poison": "poison messages: 4000-digit numbers, broken JSON, a 70 KiB frame",
    "redelivery": "the relay swallows the leader's acknowledgements, then cuts it off",
}
NEEDS_DURATION = {"broker-down", "postgres-down", "odoo-down"}


@dataclass
class Fault:
    kind: str
    duration_s: float = 0.0
    name: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r} (known: {', '.join(KINDS)})")
        if self.kind in NEEDS_DURATION and self.duration_s <= 0:
            raise ValueError(f"{self.kind} needs a duration in seconds, e.g. {self.kind}:15")
        if not self.name:
            duration = f"-{self.duration_s:g}s" if self.kind in NEEDS_DURATION else ""
            self.name = f"{self.kind}{duration}"


def parse_faults(text: str) -> list[Fault]:
    """``leader-kill,broker-down:15,odoo-down:180`` -> faults, in that order; a fault
    given twice gets a ``#2`` in its name."""
    faults: list[Fault] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, duration = item.partition(":")
        try:
            seconds = float(duration) if duration else 0.0
        except ValueError:
            raise ValueError(f"{item!r}: the duration must be a number of seconds") from None
        fault = Fault(kind, seconds)
        same = sum(1 for f in faults if f.name.split("#")[0] == fault.name)
        if same:
            fault.name = f"{fault.name}#{same + 1}"
        faults.append(fault)
    if not faults:
        raise ValueError("no fault given")
    return faults


# Minutes in CI; about ten minutes for the long version.
SHORT = "leader-kill,broker-down:5,postgres-down:8,redelivery,odoo-down:30,poison"
LONG = (
    "leader-kill,leader-kill,broker-down:15,postgres-down:20,redelivery,odoo-down:30,"
    "odoo-down:180,poison"
)


# -- a TCP relay between Odoo and the broker ------------------------------------------------


class Relay:
    """Forwards 127.0.0.1:port to the broker. ``swallow_acks`` stops forwarding what the
    clients send (their PUBACKs among it) while the broker's PUBLISHes still reach them;
    ``cut`` then closes every connection: the broker never saw the acknowledgements of
    messages the leader committed, and redelivers them."""

    def __init__(self, target_port: int):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.target_port = target_port
        self.swallowing = False
        self.swallowed = 0
        self._writers: set = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = None

    def start(self) -> Relay:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, self.host, self.port))
        return self

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _handle(self, reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer, upstream=True),
            self._pipe(upstream_reader, writer, upstream=False),
            return_exceptions=True,
        )
        self._writers -= {writer, upstream_writer}

    async def _pipe(self, reader, writer, upstream: bool):
        try:
            while data := await reader.read(65536):
                if upstream and self.swallowing:
                    self.swallowed += len(data)
                    continue
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def swallow_acks(self) -> None:
        self.swallowing = True

    def cut(self) -> None:
        async def close_all():
            for writer in list(self._writers):
                writer.close()
            await asyncio.sleep(0.2)

        self._call(close_all())
        self.swallowing = False

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            with contextlib.suppress(Exception):
                self.cut()
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


# -- an independent subscriber that records the broker's traffic ---------------------------


class TrafficRecorder:
    """Records every message the broker delivers (capture lines, receive time) through
    a persistent MQTT 5 session of its own, as Odoo's runtime holds one: what the
    broker queued while it could not deliver arrives after the reconnect, in both."""

    def __init__(self, broker, path: Path):
        self.path = path
        self.count = 0
        self._file = path.open("wb")
        self._lock = threading.Lock()
        self._recent: deque = deque(maxlen=2000)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="ows-e2e-fault-recorder",
            protocol=mqtt.MQTTv5,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.broker = broker

    def start(self) -> TrafficRecorder:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect(
            self.broker.host,
            self.broker.port,
            # As Odoo's runtime: never a clean start, or the broker may not keep the
            # session (and its subscription) through its own restart.
            clean_start=False,
            properties=properties,
        )
        self.client.loop_start()
        return self

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not flags.session_present:
            # Retained messages are old news; Odoo's runtime does not take them either.
            client.subscribe("#", options=SubscribeOptions(qos=1, retainHandling=2))

    def _on_message(self, client, userdata, message):
        if message.retain:
            return
        key = (message.topic, message.payload)
        with self._lock:
            if message.dup and key in self._recent:
                return  # redelivered to us after a broker restart
            self._recent.append(key)
            self._file.write(capture_line(time.time(), message.topic, message.payload))
            self.count += 1

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            self._file.close()


def publish(broker, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ows-e2e-fault-poison")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def device_time(record: dict, max_skew_s: float = 60.0) -> float:
    """When an uninterrupted consumer would have received the message: the device's
    own timestamp (Gen2 frames carry ``params.ts``) when it has one within the clock
    skew the engine accepts, else the receive time."""
    if record["topic"].endswith("/events/rpc"):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            ts = json.loads(record["payload"])["params"]["ts"]
            if isinstance(ts, float | int) and abs(ts - record["ts"]) <= max_skew_s:
                return float(ts)
    return record["ts"]


def expected_input(
    capture: Path,
    poison: list[tuple[str, bytes]],
    broker_outages: list[tuple[float, float]],
    target: Path,
) -> Path:
    """The recording as an uninterrupted run would have delivered it, for the replay.

    - Without the injected poison.
    - Without the last wills Mosquitto publishes for every connected device when it
      shuts down (received within ``broker_outages``): the runtime holds a will 30 s
      and ignores it when the device speaks again, so a broker restart ends no
      session; the replay tool applies wills at once.
    - In device time: what the broker delivered late (queued during an outage) is put
      back at the device's own timestamp, in order, as the runtime replays a backlog
      in device time. Gen1 messages carry none: they stay at their receive time.
    """
    poison_keys = {json.dumps(capture_record(0, topic, payload)) for topic, payload in poison}
    kept = []
    with capture.open("rb") as source:
        for line in source:
            record = json.loads(line)
            will = record["topic"].endswith("/online") and record.get("payload") == "false"
            if will and any(start <= record["ts"] <= end for start, end in broker_outages):
                continue
            if json.dumps({**record, "ts": 0}) in poison_keys:
                continue
            kept.append((device_time(record), len(kept), record))
    kept.sort(key=lambda item: item[:2])
    with target.open("wb") as out:
        for ts, _, record in kept:
            out.write(json.dumps({**record, "ts": ts}, ensure_ascii=False).encode() + b"\n")
    return target


# -- the run -----------------------------------------------------------------------------


@dataclass
class FaultRun:
    fault: Fault
    injected_at: float = 0.0
    lifted_at: float = 0.0
    recovered_at: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.lifted_at


@dataclass
class SuiteResult:
    runs: list[FaultRun]
    clocked: dict[str, Tally]
    unclocked: dict[str, Tally]
    expected: list[dict]
    actual: list[dict]
    recorded: int
    logs: dict[str, Path]

    def lines(self) -> list[str]:
        out = []
        for name in [*(run.fault.name for run in self.runs), "none"]:
            out.append(fault_line(name, self.clocked[name], self.unclocked[name]))
        out.append(fault_line("total", self.total(self.clocked), self.total(self.unclocked)))
        return out

    @staticmethod
    def total(tallies: dict[str, Tally]) -> Tally:
        return tally(o for t in tallies.values() for o in t.outcomes)

    def notes(self) -> list[str]:
        out = []
        for run in self.runs:
            recovery = (
                "no commit of new readings within the bound"
                if run.recovery_s is None
                else f"new readings committed {run.recovery_s:.1f} s after the fault ended"
            )
            out.append(f"{run.fault.name}: {'; '.join([recovery, *run.notes])}")
        return out


class FaultSuite:
    def __init__(self, template: str, workdir: Path, faults: list[Fault], *, progress=None,
                 gap_s: float = 1.0, recovery_timeout_s: float = 90.0,
                 end_mid_session: bool = False, settle_timeout_s: float = 60.0):  # fmt: skip
        self.template = template
        self.workdir = Path(workdir)
        self.faults = faults
        self.gap_s = gap_s
        self.recovery_timeout_s = recovery_timeout_s
        self.end_mid_session = end_mid_session
        self.settle_timeout_s = settle_timeout_s
        self.began = time.monotonic()
        self._progress = progress or (lambda text: None)
        self.dbname = "ows_faults"
        self.cluster: ThrowawayPostgres | None = None
        self.broker: Mosquitto | None = None
        self.relay: Relay | None = None
        self.recorder: TrafficRecorder | None = None
        self.simulator: subprocess.Popen | None = None
        self.threaded: OdooServer | None = None
        self.prefork: OdooServer | None = None
        self.poison: list[tuple[str, bytes]] = []
        self.t0 = 0.0
        self.quiet_from = 0.0

    def progress(self, text: str) -> None:
        self._progress(f"[{time.monotonic() - self.began:6.1f}s] {text}")

    @property
    def pg(self) -> dict:
        return self.cluster.connect()

    # -- set-up and tear-down ------------------------------------------------------------

    def run(self) -> SuiteResult:
        try:
            self.set_up()
            runs = [self.inject(fault) for fault in self.faults]
            until = self.finish()
            return self.score(runs, until)
        finally:
            self.tear_down()

    def set_up(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.progress("PostgreSQL cluster, copy of the installed database")
        self.cluster = ThrowawayPostgres().init()
        self.cluster.start()
        self.cluster.copy_from(self.template, self.dbname)
        self.broker = Mosquitto(self.workdir / "broker").start()
        self.relay = Relay(self.broker.port).start()
        configure_broker(self.dbname, self.relay, CLIENT_ID, connect=self.pg)
        common = {"db_port": self.cluster.port, "args": (*LOAD, "--db_user", self.pg["user"])}
        self.threaded = OdooServer(
            self.dbname, self.workdir / "threaded", name="threaded", **common
        )
        self.prefork = OdooServer(
            self.dbname, self.workdir / "prefork", name="prefork", workers=2, **common
        )
        self.progress("starting the Odoo servers (threaded, --workers=2)")
        self.start_servers()
        wait_for_leader(self.dbname, timeout=120, **self.pg)
        devices = device_records()
        self.threaded.rpc("mqtt.device", "create", devices)
        wait_for_leader(self.dbname, devices=len(devices), timeout=60, **self.pg)
        self.recorder = TrafficRecorder(self.broker, self.workdir / "recording.jsonl").start()
        profile = self.workdir / "profile.json"
        profile.write_text(json.dumps(PROFILE))
        self.t0 = round(time.time() + 2, 2)
        self.simulator = subprocess.Popen(
            [
                sys.executable, "-m", "ows_iot.services.simulator", str(profile),
                "--host", self.broker.host, "--port", str(self.broker.port),
                "--start-ts", str(self.t0), "--loop", "--offline-at-end",
                "--capture", str(self.workdir / "simulator.jsonl"), "--progress-interval", "0",
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "simulator.log").open("wb"),
        )  # fmt: skip
        self.progress(f"devices publishing (leader pid {leader_pid(self.dbname, **self.pg)})")
        time.sleep(max(0.0, self.t0 - time.time()))

    def start_servers(self) -> None:
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(s.start) for s in (self.threaded, self.prefork)]:
                future.result()

    def stop_servers(self) -> None:
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(s.stop, 60) for s in (self.threaded, self.prefork)]:
                future.result()

    def tear_down(self) -> None:
        if self.simulator is not None and self.simulator.poll() is None:
            self.simulator.kill()
            self.simulator.wait(10)
        for server in (self.threaded, self.prefork):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.kill()
        for part in (self.recorder, self.relay, self.broker):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        if self.cluster is not None:
            self.cluster.destroy()

    # -- faults ----------------------------------------------------------------------------

    def committed_ms(self) -> int:
        """The newest reading the database holds (engine snapshots), 0 when unknown."""
        try:
            rows = query(
                self.dbname,
                "SELECT max((engine_state->>'last_msg_ms')::bigint) FROM mqtt_device",
                **self.pg,
            )
        except Exception:  # the database may be down: nothing known
            return 0
        return (rows[0][0] or 0) if rows else 0

    def status(self) -> dict:
        try:
            return runtime_status(self.dbname, **self.pg)
        except Exception:
            return {}

    def current_leader(self) -> int | None:
        try:
            return leader_pid(self.dbname, **self.pg)
        except Exception:
            return None

    def wait_recovered(self, run: FaultRun) -> None:
        """Until the database holds a reading newer than the end of the fault."""
        target = (run.lifted_at + 1.0) * 1000
        deadline = time.time() + self.recovery_timeout_s
        while time.time() < deadline:
            if self.committed_ms() >= target:
                run.recovered_at = time.time()
                return
            time.sleep(0.25)
        run.notes.append(f"nothing new committed within {self.recovery_timeout_s:.0f} s")

    def sleep_until_offset(self, offset: float) -> None:
        """Until ``offset`` seconds into a loop of the profile."""
        loops = (time.time() - self.t0 - offset) // LOOP_S + 1
        time.sleep(max(0.0, self.t0 + loops * LOOP_S + offset - time.time()))

    def inject(self, fault: Fault) -> FaultRun:
        # The next fault strikes in a loop of its own: one starting after the
        # previous fault's window, so that no session belongs to both.
        time.sleep(max(self.gap_s, self.quiet_from - time.time()))
        self.sleep_until_offset(0.0)
        self.sleep_until_offset(INJECT_OFFSET_S)
        run = FaultRun(fault)
        what = KINDS[fault.kind].replace("DURATION", f"{fault.duration_s:g}")
        self.progress(f"fault {fault.name}: {what}")
        run.injected_at = time.time()
        waited = getattr(self, "_" + fault.kind.replace("-", "_"))(fault, run)
        if not run.lifted_at:
            run.lifted_at = time.time()
        if not waited:
            self.wait_recovered(run)
        self.quiet_from = (run.recovered_at or time.time()) + WINDOW_TAIL_S
        recovered = "no recovery" if run.recovery_s is None else f"{run.recovery_s:.1f} s"
        self.progress(f"fault {fault.name}: over, new readings committed after {recovered}")
        return run

    # Each handler injects its fault and lifts it; it returns True when it already
    # waited for the recovery itself.

    def _leader_kill(self, fault: Fault, run: FaultRun) -> bool:
        pid = self.current_leader()
        if pid is None:
            run.notes.append("no leader to kill")
            return
        if pid == self.threaded.pid:
            run.notes.append(f"killed the threaded server (pid {pid})")
            self.threaded.kill()
            run.lifted_at = time.time()
            self.wait_recovered(run)
            self.threaded.start()  # the next standby
            return True
        else:
            where = "a prefork worker" if pid in self.prefork.children() else "process"
            run.notes.append(f"killed {where} (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return False

    def _broker_down(self, fault: Fault, run: FaultRun) -> bool:
        self.broker.stop()
        time.sleep(fault.duration_s)
        self.broker.start()
        return False

    def _postgres_down(self, fault: Fault, run: FaultRun) -> bool:
        self.cluster.stop("fast")
        time.sleep(fault.duration_s)
        self.cluster.start()
        return False

    def _odoo_down(self, fault: Fault, run: FaultRun) -> bool:
        self.stop_servers()
        run.notes.append(f"stopped in {time.time() - run.injected_at:.1f} s")
        time.sleep(fault.duration_s)
        run.lifted_at = time.time()
        self.start_servers()
        return False

    def _poison(self, fault: Fault, run: FaultRun) -> bool:
        messages = poison_messages()
        self.poison += messages
        publish(self.broker, messages)
        run.notes.append(f"{len(messages)} poison messages published")
        return False

    def _redelivery(self, fault: Fault, run: FaultRun) -> bool:
        before = self.status().get("redelivered") or 0
        self.relay.swallow_acks()
        time.sleep(3)
        self.relay.cut()
        run.notes.append(f"{self.relay.swallowed} bytes from Odoo swallowed before the cut")
        run.lifted_at = time.time()
        self.wait_recovered(run)
        time.sleep(5.5)  # the runtime reports every 5 s
        after = self.status().get("redelivered") or 0
        run.notes.append(f"redelivered counter {before} -> {after}")
        return True

    # -- the end -------------------------------------------------------------------------

    def finish(self) -> float:
        time.sleep(self.gap_s)
        self.progress(
            "stopping the devices at the next "
            + ("mid-session point" if self.end_mid_session else "end of a loop")
        )
        self.sleep_until_offset(
            MID_SESSION_OFFSET_S if self.end_mid_session else CLEAN_END_OFFSET_S
        )
        self.simulator.send_signal(signal.SIGTERM)
        try:
            self.simulator.wait(30)
        except subprocess.TimeoutExpired:
            self.simulator.kill()
        self.progress("devices stopped (last wills published); waiting for the runtime")
        # The runtime holds a last will 30 s before it applies it.
        settled_for = 0
        previous = None
        deadline = time.time() + self.settle_timeout_s
        minimum = time.time() + (32 if self.end_mid_session else 2)
        while time.time() < deadline:
            try:
                rows = db_sessions(self.dbname, **self.pg)
            except Exception:
                rows = None
            if rows is not None and not any(r["status"] == "running" for r in rows):
                settled_for = settled_for + 1 if rows == previous else 0
                if settled_for >= 6 and time.time() >= minimum:
                    break
            previous = rows
            time.sleep(0.5)
        else:
            self.progress(f"sessions still running or changing after {self.settle_timeout_s} s")
        time.sleep(1)
        return time.time()

    def score(self, runs: list[FaultRun], until: float) -> SuiteResult:
        self.recorder.stop()
        recording = self.recorder.path
        outages = [
            (run.injected_at - 0.5, (run.recovered_at or run.lifted_at) + 10.0)
            for run in runs
            if run.fault.kind == "broker-down"
        ]
        clean = expected_input(
            recording, self.poison, outages, self.workdir / "expected-input.jsonl"
        )
        expected = replayed(device_records(), clean, until=until)
        actual = db_sessions(self.dbname, **self.pg)
        outcomes = compare(expected, actual, tolerance_of, until=until)
        mark_delayed(outcomes, actual, until)
        windows = [
            Window(run.fault.name, run.injected_at, (run.recovered_at or until) + WINDOW_TAIL_S)
            for run in runs
        ]
        groups = attribute(outcomes, windows, until, confirm_s=DEVICE_DEFAULTS["stop_debounce_s"])
        clocked = {n: tally(o for o in g if o.device_id not in GEN1) for n, g in groups.items()}
        unclocked = {n: tally(o for o in g if o.device_id in GEN1) for n, g in groups.items()}
        logs = {
            name: path
            for name, path in (
                ("threaded", self.threaded.log),
                ("prefork", self.prefork.log),
                ("broker", self.broker.log),
                ("recording", recording),
            )
        }
        return SuiteResult(runs, clocked, unclocked, expected, actual, self.recorder.count, logs)


def run_fault_suite(template: str, workdir: Path, faults: list[Fault] | str, **options):
    """Run ``faults`` (a list or a text as ``parse_faults`` reads) against a copy of
    the installed database ``template``; everything started is stopped again."""
    if isinstance(faults, str):
        faults = parse_faults(faults)
    return FaultSuite(template, workdir, faults, **options).run()
