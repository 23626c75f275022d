"""The record tool: capture format, and recording from a real Mosquitto."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest

from ows_iot.services.record import capture_line, capture_record

from .mqtt_broker import (
    free_port,
    make_tls_files,
    run_tool,
    running_mosquitto,
    start_tool,
    wait_for_text,
)

# -- capture format -------------------------------------------------------------------


def test_text_payload_is_kept_as_text():
    assert capture_record(12.5, "a/b", "grüß 540 W".encode()) == {
        "ts": 12.5,
        "topic": "a/b",
        "payload": "grüß 540 W",
    }


def test_payload_that_is_not_utf8_is_base64():
    record = capture_record(1.0, "a/b", b"\xff\x00\xfe")
    assert "payload" not in record
    assert base64.b64decode(record["payload_b64"]) == b"\xff\x00\xfe"


def test_capture_line_is_one_json_line():
    line = capture_line(1.25, "t", b'{"x": "line\\nbreak"}\n')
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["payload"] == '{"x": "line\\nbreak"}\n'


# -- against a broker -----------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


def publish(broker, messages, *, retain=False, **client_options):
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, **client_options)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def start_record(broker, tmp_path, *args, name="record"):
    stderr_path = tmp_path / f"{name}.stderr"
    with stderr_path.open("wb") as stderr:
        process = start_tool("record", *broker.args, *args, stderr=stderr, stdout=subprocess.PIPE)
    wait_for_text(stderr_path, "record: recording", process)
    return process, stderr_path


def read_capture(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.mqtt
def test_records_text_binary_and_empty_payloads_in_order(broker, tmp_path):
    out = tmp_path / "capture.jsonl"
    process, stderr = start_record(
        broker, tmp_path, "-t", f"{broker.root}/#", "--count", "4", "-o", str(out)
    )
    before = time.time()
    messages = [
        (f"{broker.root}/dev/events/rpc", b'{"method":"NotifyStatus","params":{"ts":1.5}}'),
        (f"{broker.root}/dev/bin", b"\x00\xff\x80binary"),
        (f"{broker.root}/dev/empty", b""),
        (f"{broker.root}/shellies/x/relay/0/power", "12.50 ü".encode()),
    ]
    publish(broker, messages)
    assert process.wait(10) == 0
    after = time.time()
    lines = read_capture(out)
    assert [line["topic"] for line in lines] == [topic for topic, _ in messages]
    assert lines[0]["payload"] == messages[0][1].decode()
    assert base64.b64decode(lines[1]["payload_b64"]) == messages[1][1]
    assert lines[2]["payload"] == ""
    assert lines[3]["payload"] == "12.50 ü"
    stamps = [line["ts"] for line in lines]
    assert stamps == sorted(stamps)
    assert before - 1 <= stamps[0] and stamps[-1] <= after + 1
    assert "recorded 4 messages" in stderr.read_text()


@pytest.mark.mqtt
def test_only_the_given_topic_filters_are_recorded(broker, tmp_path):
    out = tmp_path / "capture.jsonl"
    process, _ = start_record(
        broker,
        tmp_path,
        "-t",
        f"{broker.root}/+/events/rpc",
        "--topic",
        f"{broker.root}/shellies/#",
        "--count",
        "2",
        "-o",
        str(out),
    )
    publish(
        broker,
        [
            (f"{broker.root}/dev/status/pm1:0", b"{}"),
            (f"{broker.root}/dev/events/rpc", b"{}"),
            (f"{broker.root}/other", b"x"),
            (f"{broker.root}/shellies/a/relay/0/power", b"1.0"),
        ],
    )
    assert process.wait(10) == 0
    assert [line["topic"] for line in read_capture(out)] == [
        f"{broker.root}/dev/events/rpc",
        f"{broker.root}/shellies/a/relay/0/power",
    ]


@pytest.mark.mqtt
def test_writes_to_stdout_without_output_file(broker, tmp_path):
    process, _ = start_record(broker, tmp_path, "-t", f"{broker.root}/#", "-n", "1")
    publish(broker, [(f"{broker.root}/x", b"hello")])
    stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert json.loads(stdout)["payload"] == "hello"


@pytest.mark.mqtt
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_everything_flushed(broker, tmp_path, signum):
    out = tmp_path / "capture.jsonl"
    process, stderr = start_record(broker, tmp_path, "-t", f"{broker.root}/sig/#", "-o", str(out))
    publish(broker, [(f"{broker.root}/sig/{n}", str(n).encode()) for n in range(25)])
    time.sleep(0.3)
    process.send_signal(signum)
    assert process.wait(10) == 0
    assert [line["payload"] for line in read_capture(out)] == [str(n) for n in range(25)]
    text = stderr.read_text()
    assert "recorded 25 messages" in text
    assert "Traceback" not in text


@pytest.mark.mqtt
def test_duration_ends_a_quiet_recording(broker, tmp_path):
    out = tmp_path / "capture.jsonl"
    started = time.monotonic()
    result = run_tool(
        "record", *broker.args, "-t", f"{broker.root}/quiet/#", "--duration", "0.5", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert out.read_text() == ""
    assert b"recorded 0 messages" in result.stderr


@pytest.mark.mqtt
def test_retained_messages_from_before_can_be_left_out(broker, tmp_path):
    topic = f"{broker.root}/retained/online"
    publish(broker, [(topic, b"true")], retain=True)
    try:
        kept = tmp_path / "kept.jsonl"
        result = run_tool("record", *broker.args, "-t", topic, "--duration", "1", "-o", str(kept))
        assert result.returncode == 0, result.stderr
        assert [line["payload"] for line in read_capture(kept)] == ["true"]

        skipped = tmp_path / "skipped.jsonl"
        result = run_tool(
            "record", *broker.args, "-t", topic, "--skip-retained", "--duration", "1",
            "-o", str(skipped),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert skipped.read_text() == ""
        assert b"1 retained left out" in result.stderr
    finally:
        publish(broker, [(topic, b"")], retain=True)


# -- errors are one line, exit status 2 -----------------------------------------------


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2
    text = result.stderr.decode()
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    for fragment in fragments:
        assert fragment in lines[0]


def test_refused_connection_is_one_line():
    result = run_tool("record", "--host", "127.0.0.1", "--port", str(free_port()), "-n", "1")
    assert_one_line_error(result, "refused")


def test_unknown_host_is_one_line():
    result = run_tool("record", "--host", "broker.invalid", "-n", "1", timeout=60)
    assert_one_line_error(result, "broker.invalid")


def test_missing_ca_file_is_one_line(tmp_path):
    result = run_tool("record", "--cafile", str(tmp_path / "nope.pem"), "-n", "1")
    assert_one_line_error(result, "nope.pem")


def test_bad_topic_filter_is_a_usage_error():
    result = run_tool("record", "-t", "a/#/b", "-n", "1")
    assert result.returncode == 2
    assert b"bad topic filter" in result.stderr


@pytest.mark.mqtt
def test_password_protected_broker(tmp_path):
    password_file = tmp_path / "passwords"
    password_file.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(password_file), "meter", "s3cret"],
        check=True,
        capture_output=True,
    )
    with running_mosquitto(
        tmp_path / "broker",
        listener="listener {port} 127.0.0.1\nallow_anonymous false",
        config=f"password_file {password_file}",
    ) as broker:
        if not broker.private:
            pytest.skip("needs a private mosquitto")
        wrong = run_tool(
            "record", *broker.args, "--username", "meter", "--password", "nope", "-n", "1"
        )
        assert_one_line_error(wrong, "refused the connection", "authori")

        out = tmp_path / "capture.jsonl"
        env = {**os.environ, "OWS_MQTT_USERNAME": "meter", "OWS_MQTT_PASSWORD": "s3cret"}
        stderr_path = tmp_path / "record.stderr"
        with stderr_path.open("wb") as stderr:
            process = start_tool(
                "record", *broker.args, "-t", "t/#", "-n", "1", "-o", str(out),
                stderr=stderr, env=env,
            )  # fmt: skip
        wait_for_text(stderr_path, "record: recording", process)
        publish(broker, [("t/1", b"ok")], client_id="")
        assert process.wait(10) == 0
        assert read_capture(out)[0]["payload"] == "ok"


@pytest.mark.mqtt
def test_tls_with_custom_ca(tmp_path):
    files = make_tls_files(tmp_path / "tls")
    listener = (
        "listener {port} 127.0.0.1\n"
        f"cafile {files['ca']}\ncertfile {files['cert']}\nkeyfile {files['key']}"
    )
    with running_mosquitto(tmp_path / "broker", listener=listener) as broker:
        if not broker.private:
            pytest.skip("needs a private mosquitto")
        untrusted = run_tool("record", *broker.args, "--cafile", str(files["other_ca"]), "-n", "1")
        assert_one_line_error(untrusted, "TLS")

        plain = run_tool("record", *broker.args, "--duration", "1", timeout=30)
        assert plain.returncode == 2 and b"Traceback" not in plain.stderr

        out = tmp_path / "capture.jsonl"
        stderr_path = tmp_path / "record.stderr"
        with stderr_path.open("wb") as stderr:
            process = start_tool(
                "record", *broker.args, "--cafile", str(files["ca"]), "-t", "tls/#",
                "-n", "1", "-o", str(out), stderr=stderr,
            )  # fmt: skip
        wait_for_text(stderr_path, "record: recording", process)
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        client.tls_set(ca_certs=str(files["ca"]))
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.publish("tls/x", b"secure", qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        assert process.wait(10) == 0
        assert read_capture(out)[0]["payload"] == "secure"
