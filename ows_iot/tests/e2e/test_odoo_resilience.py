"""The in-process ingestion when things break: the broker restarts, the database goes
away and comes back; and TLS with a client certificate. Nothing may be lost: the
sessions in the database equal what the replay tool computes from the messages."""

import time

import pytest

# Odoo's PostgreSQL driver: these tests start Odoo servers (skipped without Odoo).
pytest.importorskip("psycopg2")

from .harness import (
    OdooServer,
    ThrowawayPostgres,
    make_certificates,
    sessions,
    tls_mosquitto,
    wait_until,
)
from .scenario import (
    assert_same_sessions,
    configure_broker,
    device_values,
    events,
    finish,
    leader_pid,
    no_errors,
    profile_file,
    replay_events,
    replayed,
    runtime_status,
    start_simulator,
    wait_for_leader,
    wait_for_sessions,
)

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow]

LASER = "shellypmminig3-e2e00000000a"
LOAD = ("--load=base,web,ows_iot",)


def test_broker_restart_mid_session(odoo_db, broker, workdir):
    configure_broker(odoo_db, broker, client_id="ows-e2e-restart")
    server = OdooServer(odoo_db, workdir / "odoo", args=LOAD).start()
    try:
        wait_for_leader(odoo_db)
        devices = [device_values(LASER, "Laser")]
        server.rpc("mqtt.device", "create", devices)
        wait_for_leader(odoo_db, devices=1, timeout=15)
        # A long steady job: the broker restarts in its middle, the level changes after.
        steps = [(0, 3), (540, 16), (60, 5), (540, 4), (0, 10)]
        profile = profile_file(workdir, "restart", [{"device_id": LASER, "steps": steps}])
        capture = workdir / "restart.jsonl"
        simulator = start_simulator(profile, broker, capture)
        wait_until(lambda: runtime_status(odoo_db)["messages"] >= 2, 20, "the job to start")
        time.sleep(3)
        broker.restart(down_s=2)
        wait_until(lambda: runtime_status(odoo_db)["connected"], 30, "the leader to reconnect")
        finish(simulator, timeout=120)
        rows = wait_for_sessions(odoo_db, 1, timeout=30, status=("completed",))
        until = time.time()
        assert_same_sessions(rows, replayed(devices, capture, until=until))
        assert {(uid, kind) for uid, kind, *_ in events(odoo_db)} == replay_events(
            devices, capture, until=until
        )
        assert "ows_iot leader elected" in server.text()
        assert server.text().count("ows_iot leader elected") == 1  # no step-down
        assert "MQTT connection to" in server.text()
    finally:
        server.stop()
    no_errors(server)


def test_database_outage_mid_session(odoo_template, broker, workdir):
    cluster = ThrowawayPostgres().init()
    try:
        cluster.start()
        dbname = "ows_e2e_outage"
        cluster.copy_from(odoo_template, dbname)
        pg = cluster.connect()
        configure_broker(dbname, broker, client_id="ows-e2e-outage", connect=pg)
        server = OdooServer(
            dbname,
            workdir / "odoo",
            db_port=cluster.port,
            args=(*LOAD, "--db_user", pg["user"]),
        ).start()
        try:
            wait_for_leader(dbname, **pg)
            devices = [device_values(LASER, "Laser")]
            server.rpc("mqtt.device", "create", devices)
            wait_for_leader(dbname, devices=1, timeout=15, **pg)
            steps = [(0, 3), (540, 6), (60, 3), (540, 3), (60, 3), (540, 3), (0, 12)]
            profile = profile_file(workdir, "outage", [{"device_id": LASER, "steps": steps}])
            capture = workdir / "outage.jsonl"
            simulator = start_simulator(profile, broker, capture)
            # Mid-session: the session is committed as running when the database goes.
            wait_until(lambda: sessions(dbname, **pg), 20, "the session to start")
            time.sleep(1)
            # The database goes away for longer than a level lasts.
            cluster.stop("fast")
            time.sleep(6)
            cluster.start()
            back = time.monotonic()
            wait_until(lambda: leader_pid(dbname, **pg) == server.pid, 60, "a leader again")
            # The leader kept consuming meanwhile and takes its lock back at once.
            assert time.monotonic() - back < 3
            finish(simulator, timeout=120)
            rows = wait_for_sessions(dbname, 1, timeout=60, status=("completed",), **pg)
            until = time.time()
            assert_same_sessions(rows, replayed(devices, capture, until=until))
            assert {(uid, kind) for uid, kind, *_ in events(dbname, **pg)} == replay_events(
                devices, capture, until=until
            )
            text = server.text()
            assert "lost its lock connection" in text
            assert "holds its lock again" in text
            assert text.count("ows_iot leader elected") == 1  # it never stepped down
        finally:
            server.stop()
        # Odoo's own threads complain while the database is down; ows_iot must not.
        ows_errors = [line for line in server.errors() if "ows_iot" in line]
        assert not ows_errors, ows_errors
    finally:
        cluster.destroy()


def test_tls_with_ca_and_client_certificate(odoo_db, workdir):
    certs = make_certificates(workdir / "certs")
    broker = tls_mosquitto(workdir / "tls-broker", certs)
    try:
        configure_broker(
            odoo_db,
            broker,
            client_id="ows-e2e-tls",
            **{
                "ows_iot.mqtt_tls": "True",
                "ows_iot.mqtt_ca_file": str(certs["ca.crt"]),
                "ows_iot.mqtt_cert_file": str(certs["client.crt"]),
                "ows_iot.mqtt_key_file": str(certs["client.key"]),
            },
        )
        server = OdooServer(odoo_db, workdir / "odoo", args=LOAD).start()
        try:
            wait_for_leader(odoo_db)
            devices = [device_values(LASER, "Laser")]
            server.rpc("mqtt.device", "create", devices)
            wait_for_leader(odoo_db, devices=1, timeout=15)
            steps = [(0, 2), (540, 6), (0, 8)]
            profile = profile_file(workdir, "tls", [{"device_id": LASER, "steps": steps}])
            capture = workdir / "tls.jsonl"
            simulator = start_simulator(
                profile,
                broker,
                capture,
                "--cafile", str(certs["ca.crt"]),
                "--certfile", str(certs["client.crt"]),
                "--keyfile", str(certs["client.key"]),
            )  # fmt: skip
            finish(simulator, timeout=60)
            rows = wait_for_sessions(odoo_db, 1, timeout=30, status=("completed",))
            assert_same_sessions(rows, replayed(devices, capture, until=time.time()))
            assert "as ows-e2e-tls" in server.text() and "mqtts://127.0.0.1" in server.text()
        finally:
            server.stop()
        no_errors(server)
    finally:
        broker.stop()
