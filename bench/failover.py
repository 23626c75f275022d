"""Failover time: SIGKILL of the leader to the first message committed by the new one.

Two Odoo servers (threaded, ``--load=base,web,ows_iot``) share one database and a
private Mosquitto; a device publishes five frames a second. Each round kills the
leading server with SIGKILL (no cleanup of any kind), measures the time until the
committed engine snapshot moves again (polled every 20 ms), then starts the killed
server again as the next standby. Prints every round and the median; goal <= 10 s.

    python bench/failover.py [--rounds 5] [--template DB]

Needs Odoo 18 (importable), PostgreSQL (OWS_IOT_DB_HOST/PORT/USER/PASSWORD) and
mosquitto.
"""

from __future__ import annotations

import argparse
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
    query,
    unique_name,
)
from ows_iot.tests.e2e.scenario import (  # noqa: E402
    configure_broker,
    device_values,
    leader_pid,
    wait_for_leader,
)

DEVICE = "shellypmminig3-bench0failover"
POLL_S = 0.02


class Publisher(threading.Thread):
    def __init__(self, broker):
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-device")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def run(self):
        count = 0
        while not self.stop_event.wait(0.2):
            count += 1
            frame = {
                "src": DEVICE,
                "method": "NotifyStatus",
                "params": {
                    "ts": round(time.time(), 3),
                    "pm1:0": {"id": 0, "apower": 300 + count % 7},
                },
            }
            self.client.publish(f"{DEVICE}/events/rpc", json.dumps(frame), qos=1)
        self.client.disconnect()
        self.client.loop_stop()


def committed_ms(dbname: str) -> int:
    rows = query(
        dbname,
        "SELECT (engine_state->>'last_msg_ms')::bigint FROM mqtt_device WHERE device_id = %s",
        [DEVICE],
    )
    return (rows[0][0] or 0) if rows else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--template", help="an installed ows_iot database to copy")
    args = parser.parse_args()
    reason = odoo_missing() or pg_available()
    if reason:
        print(f"failover: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ows-bench-failover-"))
    dbname = unique_name("ows_bench_failover")
    broker = Mosquitto(work / "broker").start()
    servers = {}
    publisher = None
    times = []
    try:
        if args.template:
            copy_database(args.template, dbname)
        else:
            print("installing ows_iot into a fresh database ...", file=sys.stderr)
            install_template(dbname, work / "data", work / "install.log")
        configure_broker(dbname, broker, client_id="ows-bench-failover")

        def start(name):
            server = OdooServer(dbname, work / name, name=name, args=("--load=base,web,ows_iot",))
            servers[name] = server.start()
            return server

        first = start("a")
        wait_for_leader(dbname)
        first.rpc("mqtt.device", "create", [device_values(DEVICE)])
        wait_for_leader(dbname, devices=1, timeout=30)
        start("b")
        publisher = Publisher(broker)
        publisher.start()
        for round_ in range(1, args.rounds + 1):
            # The standby is up and competing before each kill.
            time.sleep(3)
            pid = leader_pid(dbname)
            leader_name = next(n for n, s in servers.items() if s.pid == pid)
            standby = next(s for n, s in servers.items() if n != leader_name)
            before = committed_ms(dbname)
            killed_at = time.time()
            servers[leader_name].kill()
            deadline = killed_at + 60
            while time.time() < deadline:
                if committed_ms(dbname) > before and leader_pid(dbname) == standby.pid:
                    break
                time.sleep(POLL_S)
            else:
                print(f"round {round_}: no commit by the standby within 60 s", file=sys.stderr)
                return 1
            elapsed = time.time() - killed_at
            times.append(elapsed)
            print(
                f"round {round_}: killed {leader_name}, first commit by the other {elapsed:.2f} s"
            )
            start(leader_name)
            time.sleep(2)
    finally:
        if publisher is not None:
            publisher.stop_event.set()
            publisher.join(5)
        for server in servers.values():
            server.kill()
        broker.stop()
        drop_database(dbname)
    print(
        f"failover (goal <= 10 s): median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} rounds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
