"""Steps shared by the Odoo end-to-end tests: configure, publish, wait, compare."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ows_iot.services.leader import holder_sql, lock_key

from .harness import REPO_ROOT, query, replay, sessions, wait_until

# Short debounces keep the profiles (played in real time) short.
DEVICE_DEFAULTS = {
    "start_debounce_s": 3,
    "stop_debounce_s": 5,
    "message_timeout_s": 300,
    "heartbeat_interval_s": 300,
}


def configure_broker(dbname: str, broker, client_id: str, connect=None, **extra: str) -> None:
    """Broker settings, written before the servers start (as an admin would in Settings)."""
    params = {
        "ows_iot.mqtt_host": broker.host,
        "ows_iot.mqtt_port": str(broker.port),
        "ows_iot.mqtt_client_id": client_id,
        **extra,
    }
    for key, value in params.items():
        query(
            dbname,
            """
            INSERT INTO ir_config_parameter (key, value, create_uid, write_uid,
                                             create_date, write_date)
            VALUES (%s, %s, 1, 1, now() at time zone 'UTC', now() at time zone 'UTC')
            ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """,
            [key, value],
            **(connect or {}),
        )


def device_values(device_id: str, name: str | None = None, **overrides) -> dict:
    return {
        "name": name or device_id,
        "device_id": device_id,
        "mqtt_topic": device_id,
        "parser_type": "shelly_gen2",
        **DEVICE_DEFAULTS,
        **overrides,
    }


def replay_config(values: dict) -> dict:
    keys = ("device_id", "mqtt_topic", "parser_type", "channel", "full_topic", *DEVICE_DEFAULTS)
    return {key: values[key] for key in keys if key in values}


def profile_file(folder: Path, name: str, devices: list[dict]) -> Path:
    """A simulator profile: ``devices`` are (device_id, [(watts, seconds), ...]) mappings."""
    path = folder / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "description": name,
                "devices": [
                    {
                        "kind": device.get("kind", "pm1"),
                        "device_id": device["device_id"],
                        "steps": [
                            {"power_w": watts, "duration_s": seconds}
                            for watts, seconds in device["steps"]
                        ],
                    }
                    for device in devices
                ],
            }
        )
    )
    return path


def start_simulator(profile: Path, broker, capture: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ows_iot.services.simulator",
            str(profile),
            "--host",
            broker.host,
            "--port",
            str(broker.port),
            "--capture",
            str(capture),
            "--progress-interval",
            "0",
            *args,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float) -> None:
    try:
        _out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the simulator did not finish in time", pytrace=False)
    if process.returncode != 0:
        pytest.fail(f"the simulator failed: {err}", pytrace=False)


def lock_holder(dbname: str, **connect):
    """(backend pid, application_name) of the leader, or None."""
    sql, params = holder_sql(lock_key(dbname))
    rows = query(dbname, sql, params, **connect)
    return rows[0][:2] if rows else None


def lock_holders(dbname: str) -> int:
    sql, params = holder_sql(lock_key(dbname))
    return len(query(dbname, sql, params))


def leader_pid(dbname: str, **connect) -> int | None:
    """The Odoo process id of the leader (from the lock connection's name)."""
    holder = lock_holder(dbname, **connect)
    if holder is None or not holder[1] or " pid " not in holder[1]:
        return None
    return int(holder[1].rsplit(" pid ", 1)[1])


def runtime_status(dbname: str, **connect) -> dict:
    rows = query(
        dbname,
        """
        SELECT report_state, leader_pid, broker_connected, subscriptions, devices,
               messages, commits, catching_up, last_error, extract(epoch FROM reported_at),
               redelivered
          FROM ows_iot_runtime ORDER BY id LIMIT 1
        """,
        **connect,
    )
    if not rows:
        return {}
    keys = ("state", "pid", "connected", "subscriptions", "devices", "messages", "commits",
            "catching_up", "last_error", "reported_at", "redelivered")  # fmt: skip
    return dict(zip(keys, rows[0]))


def wait_for_leader(
    dbname: str, devices: int | None = None, timeout: float = 90, **connect
) -> dict:
    """Until a leader holds the lock, is connected and listens to ``devices`` devices."""

    def ready():
        status = runtime_status(dbname, **connect)
        if not status or status["state"] != "leading" or not status["connected"]:
            return None
        if leader_pid(dbname, **connect) != status["pid"]:
            return None
        if devices is not None and status["subscriptions"] != devices:
            return None
        return status

    return wait_until(ready, timeout, f"a connected leader of {dbname}", interval=0.2)


def wait_for_sessions(
    dbname: str, count: int, timeout: float, status=None, **connect
) -> list[dict]:
    def done():
        rows = sessions(dbname, **connect)
        finished = [r for r in rows if status is None or r["status"] in status]
        return rows if len(finished) >= count else None

    return wait_until(done, timeout, f"{count} sessions in {dbname}", interval=0.5)


def events(dbname: str, **connect) -> list[tuple]:
    return query(
        dbname,
        """
        SELECT e.event_uid, e.event_type, e.timestamp_epoch, d.device_id
          FROM ows_iot_event e JOIN mqtt_device d ON d.id = e.device_id
         ORDER BY e.timestamp_epoch, e.seq
        """,
        **connect,
    )


def replayed(devices: list[dict], capture: Path, until: float | None = None):
    return replay([replay_config(d) for d in devices], capture, until=until)


def replay_events(devices: list[dict], capture: Path, until: float | None = None) -> set:
    """The event uids the replay tool emits for the same messages."""
    devices_file = capture.with_suffix(".devices.json")
    devices_file.write_text(json.dumps([replay_config(d) for d in devices]))
    command = [sys.executable, "-m", "ows_iot.services.replay", "--devices", str(devices_file),
               str(capture)]  # fmt: skip
    if until is not None:
        command += ["--until", str(until)]
    out = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return {(line["event_uid"], line["event_type"]) for line in lines if line["kind"] == "event"}


def assert_same_sessions(db_rows: list[dict], expected: list[dict]) -> None:
    """The database's sessions equal the replay's: ids, status, times to the second,
    working and standby seconds, energy."""
    assert len(db_rows) == len(expected), (db_rows, expected)
    for row, want in zip(db_rows, expected):
        assert row["session_id"] == want["session_id"], (row, want)
        assert row["device_id"] == want["device_id"]
        assert row["status"] == want["status"], (row, want)
        assert int(row["start"]) == int(want["start"]), (row, want)
        if want["end"] is None:
            assert row["end"] is None
        else:
            assert int(row["end"]) == int(want["end"]), (row, want)
        assert row["working_s"] == pytest.approx(want["working_s"], abs=1e-6), (row, want)
        assert row["standby_s"] == pytest.approx(want["standby_s"], abs=1e-6), (row, want)
        assert row["energy_wh"] == pytest.approx(want["energy_wh"], abs=1e-5), (row, want)


def no_errors(*servers) -> None:
    for server in servers:
        lines = server.errors()
        assert not lines, f"{server.name} logged errors:\n" + "\n".join(lines[:20])


def now() -> float:
    return time.time()
