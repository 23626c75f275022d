"""Check-ins end to end: a real Odoo server leading, a real Mosquitto; a badge read
and a backend check-in attribute the simulated sessions, and the broker's capture
replays to the same members."""

import json
import signal
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest

from .harness import REPO_ROOT, OdooServer, query, replay, wait_until
from .scenario import (
    configure_broker,
    device_values,
    finish,
    no_errors,
    profile_file,
    replay_config,
    start_simulator,
    wait_for_leader,
    wait_for_sessions,
)

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow]

LASER = "shellypmminig3-e2e0000000c1"
READER = "e2e/laser/badge"
# On for 24 s (the takeover comes 12 s in), then off long enough to stop.
STEPS = [(0, 2), (600, 24), (0, 10)]


def publish(broker, topic, payload):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ows-e2e-reader")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def partners_of_sessions(dbname):
    rows = query(
        dbname,
        """SELECT extract(epoch FROM s.start_time), extract(epoch FROM s.end_time),
                  s.partner_id, s.member_partner_id
             FROM mqtt_session s ORDER BY s.start_time""",
    )
    return [
        (float(start), float(end or 0), partner, member) for start, end, partner, member in rows
    ]


def test_badge_and_backend_check_ins_attribute_sessions_as_the_replay_does(
    odoo_db, broker, workdir
):
    configure_broker(odoo_db, broker, client_id="ows-e2e-checkin")
    server = OdooServer(odoo_db, workdir / "odoo", args=("--load=base,web,ows_iot",)).start()
    recorder = None
    try:
        wait_for_leader(odoo_db)
        [alice] = server.rpc("res.partner", "create", [{"name": "Alice", "ows_badge_id": "e2e01"}])
        [bob] = server.rpc("res.partner", "create", [{"name": "Bob"}])
        device = device_values(LASER, "Laser", badge_topic=READER)
        [device_id] = server.rpc("mqtt.device", "create", [device])
        # the meter's prefix and the reader's topic
        wait_for_leader(odoo_db, devices=2, timeout=15)

        capture = workdir / "broker.jsonl"
        recorder = subprocess.Popen(
            [sys.executable, "-m", "ows_iot.services.record", "--host", broker.host,
             "--port", str(broker.port), "-t", "#", "-o", str(capture),
             "--client-id", "ows-e2e-recorder", "--progress-interval", "0"],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.5)  # subscribed

        publish(broker, READER, b"E2E01\n")  # Alice's badge at the reader
        wait_until(
            lambda: query(odoo_db, "SELECT checked_in_partner_id FROM mqtt_device")[0][0] == alice,
            15,
            "Alice checked in",
        )
        profile = profile_file(workdir, "checkin", [{"device_id": LASER, "steps": STEPS}])
        simulator = start_simulator(profile, broker, workdir / "simulator.jsonl")
        time.sleep(14)
        # Bob checks in from the backend while Alice's session runs: a takeover.
        [wizard] = server.rpc(
            "ows.iot.checkin.wizard", "create", [{"device_id": device_id, "partner_id": bob}]
        )
        server.rpc("ows.iot.checkin.wizard", "action_check_in", [wizard])
        finish(simulator, timeout=90)
        wait_for_sessions(odoo_db, 2, timeout=30, status=("completed",))
        time.sleep(1)
    finally:
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(timeout=15)
        server.stop()
    no_errors(server)

    (_start_a, end_a, partner_a, member_a), (start_b, _end_b, partner_b, member_b) = (
        partners_of_sessions(odoo_db)
    )
    assert (partner_a, member_a) == (alice, alice)
    assert (partner_b, member_b) == (bob, bob)
    assert abs(end_a - start_b) <= 1  # whole seconds in the database

    # The broker's traffic, badge and backend command included, replays the same.
    config = {**replay_config(device), "badge_topic": READER, "badges": {"E2E01": str(alice)}}
    lines = capture.read_text().splitlines()
    assert any(json.loads(line)["topic"] == f"{LASER}/ows_iot/checkin" for line in lines)
    expected = replay([config], capture, until=time.time())
    assert [s.get("member") for s in expected] == [str(alice), str(bob)]
    for (start, end, *_), session in zip(partners_of_sessions(odoo_db), expected, strict=True):
        assert abs(start - session["start"]) <= 1 and abs(end - session["end"]) <= 1
