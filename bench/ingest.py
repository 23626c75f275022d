"""Ingestion throughput and latency of a real Odoo server, against a bare MQTT subscriber.

Starts a private Mosquitto and an Odoo server (threaded, ``--load=base,web,ows_iot``)
on a fresh copy of an installed database, configures ``--devices`` Shelly Gen2
devices, and publishes for each ``--rate`` NotifyStatus frames a second (QoS 1,
power going through jobs and pauses) for ``--duration`` seconds. In the same run a
bare paho subscriber receives the same stream on the same broker.

Prints, for the Odoo server, the sustained messages/s (published messages over the
time until the last one was committed) and the publish-to-commit latency p50/p99
(observed by polling the committed engine snapshots every 50 ms, so up to 50 ms
coarse), and the ratio to the bare subscriber's receive rate. Goal: ratio >= 0.5.

    python bench/ingest.py [--devices 50] [--rate 10] [--duration 30] [--template DB]

Needs Odoo 18 (importable), PostgreSQL (OWS_IOT_DB_HOST/PORT/USER/PASSWORD) and
mosquitto.
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402

from ows_iot.tests.e2e.harness import (  # noqa: E402
    Mosquitto,
    OdooServer,
    copy_database,
    drop_database,
    install_template,
    odoo_missing,
    pg_available,
    pg_connect,
    unique_name,
)
from ows_iot.tests.e2e.scenario import (  # noqa: E402
    configure_broker,
    device_values,
    runtime_status,
    wait_for_leader,
)

POLL_S = 0.05


def frame(device_id: str, ts: float, watts: float) -> bytes:
    return json.dumps(
        {
            "src": device_id,
            "dst": f"{device_id}/events",
            "method": "NotifyStatus",
            "params": {"ts": round(ts, 3), "pm1:0": {"id": 0, "apower": round(watts, 1)}},
        }
    ).encode()


def watts_at(index: int, second: float) -> float:
    """Jobs of 20 s at 300-540 W, 10 s pauses, shifted per device."""
    phase = (second + index * 3.7) % 30
    return 0.0 if phase >= 20 else 300 + (index % 5) * 60 + (second * 7 % 11)


class BareSubscriber:
    def __init__(self, broker, topic_filter: str):
        self.received = 0
        self.first = self.last = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.received += 1

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


class CommitPoller(threading.Thread):
    """Records, every POLL_S, the last message time each device's committed snapshot has."""

    def __init__(self, dbname: str):
        super().__init__(daemon=True)
        self.conn = pg_connect(dbname)
        self.samples: dict[str, list[tuple[int, float]]] = {}
        self.stop_event = threading.Event()

    def run(self):
        with self.conn.cursor() as cr:
            while not self.stop_event.is_set():
                cr.execute(
                    "SELECT device_id, (engine_state->>'last_msg_ms')::bigint FROM mqtt_device "
                    "WHERE engine_state IS NOT NULL"
                )
                now = time.time()
                for device_id, last_ms in cr.fetchall():
                    if last_ms is None:
                        continue
                    samples = self.samples.setdefault(device_id, [])
                    if not samples or samples[-1][0] != last_ms:
                        samples.append((last_ms, now))
                self.stop_event.wait(POLL_S)
        self.conn.close()

    def committed_at(self, device_id: str, ts_ms: int) -> float | None:
        """When the first snapshot at or past ``ts_ms`` was seen committed."""
        samples = self.samples.get(device_id, [])
        index = bisect.bisect_left(samples, (ts_ms, -1.0))
        return samples[index][1] if index < len(samples) else None


def publish(broker, devices: list[str], rate: float, duration: float) -> list[tuple]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    sent = []
    infos = []
    start = time.time()
    step = 1.0 / rate
    tick = 0
    while True:
        at = start + tick * step
        if at - start >= duration:
            break
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        for index, device_id in enumerate(devices):
            ts = time.time()
            payload = frame(device_id, ts, watts_at(index, at - start))
            infos.append(client.publish(f"bench/{device_id}/events/rpc", payload, qos=1))
            sent.append((device_id, round(ts * 1000), ts))
        tick += 1
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="messages/s per device")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of publishing")
    parser.add_argument("--template", help="an installed ows_iot database to copy")
    args = parser.parse_args()
    reason = odoo_missing() or pg_available()
    if reason:
        print(f"ingest: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ows-bench-ingest-"))
    dbname = unique_name("ows_bench_ingest")
    broker = Mosquitto(work / "broker").start()
    server = None
    try:
        if args.template:
            copy_database(args.template, dbname)
        else:
            print("installing ows_iot into a fresh database ...", file=sys.stderr)
            install_template(dbname, work / "data", work / "install.log")
        configure_broker(dbname, broker, client_id="ows-bench")
        server = OdooServer(dbname, work / "odoo", args=("--load=base,web,ows_iot",)).start()
        wait_for_leader(dbname)
        devices = [f"bench-dev-{i:04d}" for i in range(args.devices)]
        server.rpc(
            "mqtt.device",
            "create",
            [device_values(d, mqtt_topic=f"bench/{d}") for d in devices],
        )
        wait_for_leader(dbname, devices=len(devices), timeout=30)
        bare = BareSubscriber(broker, "bench/#")
        poller = CommitPoller(dbname)
        poller.start()
        time.sleep(1)
        total = int(args.devices * args.rate * args.duration)
        print(
            f"publishing {total} messages: {args.devices} devices x {args.rate:g}/s "
            f"for {args.duration:g} s ...",
            file=sys.stderr,
        )
        sent = publish(broker, devices, args.rate, args.duration)
        first_publish = sent[0][2]
        last = {device_id: ts_ms for device_id, ts_ms, _ts in sent}
        deadline = time.time() + 120
        while time.time() < deadline:
            if all(poller.committed_at(d, ts_ms) is not None for d, ts_ms in last.items()):
                break
            time.sleep(0.2)
        poller.stop_event.set()
        poller.join()
        bare.stop()
        latencies = []
        missing = 0
        for device_id, ts_ms, ts in sent:
            committed = poller.committed_at(device_id, ts_ms)
            if committed is None:
                missing += 1
            else:
                latencies.append(max(0.0, committed - ts))
        all_committed = max((poller.committed_at(d, ts_ms) or 0.0) for d, ts_ms in last.items())
        status = runtime_status(dbname)
    finally:
        if server is not None:
            server.stop()
        broker.stop()
        drop_database(dbname)
    odoo_rate = len(sent) / (all_committed - first_publish)
    bare_rate = bare.received / (bare.last - first_publish)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"published:                 {len(sent)} messages ({len(sent) / args.duration:.0f}/s)")
    print(f"bare subscriber received:  {bare.received} at {bare_rate:,.0f} msg/s")
    print(f"odoo committed:            {len(sent) - missing} at {odoo_rate:,.0f} msg/s sustained")
    print(f"odoo commits:              {status.get('commits')} transactions")
    print(f"publish-to-commit latency: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    print(f"ratio odoo / bare (goal >= 0.5): {odoo_rate / bare_rate:.2f}")
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
