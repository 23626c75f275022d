"""The leader's MQTT client against a real Mosquitto: persistent session, manual acks,
receive maximum, maximum packet size, QoS 0 deliveries, reconnect and re-subscribe
after a broker restart, subscription changes, TLS."""

import queue
import subprocess
import time

import pytest

mqtt = pytest.importorskip("paho.mqtt.client")

from ows_iot.services.mqtt_client import MqttClient, MqttSettings, SettingsError  # noqa: E402

from .harness import Mosquitto, make_certificates, tls_mosquitto, wait_until  # noqa: E402


@pytest.fixture
def broker(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()


class Inbox:
    def __init__(self):
        self.messages = queue.Queue()
        self.connections = []

    def __call__(self, message):
        self.messages.put(message)

    def on_connection(self, connected, session_present):
        self.connections.append((connected, session_present))

    def take(self, count, timeout=10):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                got.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                break
        return got

    def quiet(self, seconds=0.5):
        return self.take(1, timeout=seconds) == []


def publish(broker, items, qos=1, retain=False, **tls):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.time_ns()}")
    if tls:
        client.tls_set(**tls)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=qos, retain=retain) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def start_client(broker, client_id="ows-test", filters=("dev/#",), **overrides):
    inbox = Inbox()
    settings = MqttSettings(host=broker.host, port=broker.port, client_id=client_id, **overrides)
    client = MqttClient(settings, inbox, on_connection=inbox.on_connection)
    client.set_filters(filters)
    client.start()
    wait_until(lambda: client.connected, 10, "the client to connect")
    # The SUBACK follows the CONNACK; give it a moment before publishing.
    time.sleep(0.2)
    return client, inbox


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_unacknowledged_messages_are_redelivered_to_the_same_client_id(broker, protocol):
    client, inbox = start_client(broker, protocol=protocol)
    publish(broker, [(f"dev/{i}", f"m{i}") for i in range(5)])
    first = inbox.take(5)
    assert [m.payload for m in first] == [f"m{i}".encode() for i in range(5)]
    assert client.ack(first[0]) and client.ack(first[1])
    time.sleep(0.2)
    client.stop()
    # Published while no one is connected: queued in the persistent session.
    publish(broker, [("dev/late", "late")])
    client, inbox = start_client(broker, protocol=protocol)
    assert client.stats.session_present
    again = inbox.take(4)
    assert [m.payload for m in again] == [b"m2", b"m3", b"m4", b"late"]
    assert all(m.dup for m in again[:3])
    # Acks of the earlier connection are not sent on this one.
    assert not client.ack(first[2])
    assert client.stats.stale_acks == 1
    for message in again:
        assert client.ack(message)
    time.sleep(0.2)
    client.stop()
    client, inbox = start_client(broker, protocol=protocol)
    assert inbox.quiet(1.0)
    client.stop()


def test_receive_maximum_bounds_the_unacknowledged_window(broker):
    client, inbox = start_client(broker, receive_maximum=10)
    publish(broker, [(f"dev/{i}", str(i)) for i in range(30)])
    window = inbox.take(30, timeout=2)
    assert len(window) == 10
    # Without acks the broker holds everything else back.
    assert inbox.quiet(1.0)
    for message in window:
        client.ack(message)
    rest = inbox.take(20, timeout=5)
    assert [m.payload for m in rest] == [str(i).encode() for i in range(10, 30)]
    for message in rest:
        client.ack(message)
    client.stop()


def test_deliveries_at_qos_0_are_counted(broker):
    client, inbox = start_client(broker)
    publish(broker, [("dev/q0", "fire and forget")], qos=0)
    publish(broker, [("dev/q1", "acknowledged")], qos=1)
    got = {m.payload: m.qos for m in inbox.take(2)}
    assert got == {b"fire and forget": 0, b"acknowledged": 1}
    assert client.stats.messages == 2
    assert client.stats.qos0_messages == 1
    client.stop()


def test_the_broker_drops_packets_beyond_the_maximum_packet_size(broker):
    client, inbox = start_client(broker)
    publish(broker, [("dev/huge", b"x" * (300 * 1024)), ("dev/small", b"y" * (60 * 1024))])
    (delivered,) = inbox.take(2, timeout=3)
    assert delivered.topic == "dev/small"
    client.ack(delivered)
    assert inbox.quiet()
    assert "too large" in broker.tail().lower() or "dropping" in broker.tail().lower()
    client.stop()


def test_subscriptions_follow_the_filters(broker):
    client, inbox = start_client(broker, filters=("a/#",))
    client.set_filters({"a/#", "b/#"})
    time.sleep(0.3)
    publish(broker, [("a/1", "a"), ("b/1", "b"), ("c/1", "c")])
    assert sorted(m.payload for m in inbox.take(2)) == [b"a", b"b"]
    assert inbox.quiet()
    client.set_filters({"b/#"})
    time.sleep(0.3)
    publish(broker, [("a/2", "a"), ("b/2", "b")])
    assert [m.payload for m in inbox.take(1)] == [b"b"]
    assert inbox.quiet()
    assert client.filters == {"b/#"}
    client.stop()


def test_stale_filters_of_the_session_are_removed(broker):
    client, _inbox = start_client(broker, filters=("old/#", "keep/#"))
    client.stop()
    # A later leader knows the old filters only from what was recorded.
    client, inbox = start_client(broker, filters=())
    client.set_filters({"keep/#"}, stale={"old/#"})
    time.sleep(0.3)
    publish(broker, [("old/1", "old"), ("keep/1", "keep")])
    assert [m.payload for m in inbox.take(1)] == [b"keep"]
    assert inbox.quiet()
    client.stop()


def test_retained_messages_are_not_sent_on_subscribe(broker):
    publish(broker, [("dev/x/online", "true")], retain=True)
    client, inbox = start_client(broker)
    assert inbox.quiet(1.0)
    publish(broker, [("dev/x/online", "false")], retain=True)
    (live,) = inbox.take(1)
    assert live.payload == b"false" and not live.retain
    client.stop()


def test_reconnects_and_resubscribes_after_a_broker_restart(tmp_path):
    # Without persistence the broker forgets the session: only re-subscribing helps.
    broker = Mosquitto(tmp_path / "broker", lines=("persistence false",)).start()
    try:
        client, inbox = start_client(broker)
        broker.restart(down_s=1.5)
        wait_until(lambda: client.stats.connects >= 2, 30, "the client to reconnect")
        assert client.stats.reconnects == 1 and client.stats.disconnects == 1
        assert inbox.connections[-2:] == [(False, False), (True, False)]
        time.sleep(0.3)
        publish(broker, [("dev/1", "after")])
        assert [m.payload for m in inbox.take(1)] == [b"after"]
        client.stop()
    finally:
        broker.stop()


def test_reconnects_within_two_seconds_of_the_broker_listening_again(broker):
    client, inbox = start_client(broker)
    broker.stop()
    wait_until(lambda: not client.connected, 5, "the client to notice the broker is gone")
    # Down long enough for an exponential backoff to grow to many seconds.
    time.sleep(10)
    broker.start()  # returns once the broker accepts connections
    listening = time.monotonic()
    wait_until(lambda: client.connected, 10, "the client to reconnect", interval=0.02)
    assert time.monotonic() - listening < 2.0
    time.sleep(0.3)
    publish(broker, [("dev/1", "after")])
    assert [m.payload for m in inbox.take(1)] == [b"after"]
    client.stop()


def test_a_session_taken_over_names_the_client_id(caplog):
    # Mosquitto 2.0.11 closes the old connection without a reason; newer brokers send
    # DISCONNECT "Session taken over" (0x8E) to MQTT 5 clients: played here.
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    client = MqttClient(MqttSettings(host="127.0.0.1", client_id="ows-iot-shared"), Inbox())
    client.stats.connected = True
    flags = mqtt.DisconnectFlags(is_disconnect_packet_from_server=True)
    reason = ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E)
    client._handle_disconnect(client.client, None, flags, reason, None)
    assert client.stats.takeovers == 1 and not client.connected
    assert client.stats.last_error == (
        "session taken over: another client — perhaps a copy of this database — "
        "uses client id ows-iot-shared"
    )
    assert "uses client id ows-iot-shared" in caplog.text
    # It does not throw the other client out again at once.
    assert client.client._reconnect_min_delay == 30


def test_reconnect_backoff_is_capped(tmp_path):
    broker = Mosquitto(tmp_path / "broker")
    # Nobody listens: the client keeps trying and reports why, never raises.
    settings = MqttSettings(host="127.0.0.1", port=broker.port, client_id="ows-nobody")
    client = MqttClient(settings, Inbox())
    client.start()
    wait_until(lambda: client.stats.last_error, 5, "a connection error")
    assert not client.connected and client.alive()
    broker.start()
    try:
        # Retried every second: the client is back within the cap.
        wait_until(lambda: client.connected, 5, "the client to connect once the broker is up")
    finally:
        client.stop()
        broker.stop()


def test_settings_are_validated_with_one_line_reasons():
    with pytest.raises(SettingsError, match="no broker host"):
        MqttSettings(host="", client_id="x")
    with pytest.raises(SettingsError, match="needs a username"):
        MqttSettings(host="h", client_id="x", password="secret")
    with pytest.raises(SettingsError, match="client certificate"):
        MqttSettings(host="h", client_id="x", keyfile="k.pem")
    for qos in (0, 2, 3):
        with pytest.raises(SettingsError, match="QoS must be 1"):
            MqttSettings(host="h", client_id="x", qos=qos)
    assert MqttSettings(host="h", client_id="x", tls=True).effective_port == 8883
    assert MqttSettings(host="h", client_id="x", protocol="3.1.1").inflight_window == 20
    with pytest.raises(SettingsError, match="cannot set up TLS"):
        MqttClient(MqttSettings(host="h", client_id="x", ca_file="/nonexistent/ca.pem"), Inbox())


def test_tls_with_ca_and_client_certificate(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    broker = tls_mosquitto(tmp_path / "broker", certs)
    try:
        tls = {
            "ca_file": str(certs["ca.crt"]),
            "certfile": str(certs["client.crt"]),
            "keyfile": str(certs["client.key"]),
        }
        client, inbox = start_client(broker, **tls)
        publish(
            broker,
            [("dev/tls", "secret")],
            ca_certs=str(certs["ca.crt"]),
            certfile=str(certs["client.crt"]),
            keyfile=str(certs["client.key"]),
        )
        (message,) = inbox.take(1)
        assert message.payload == b"secret"
        client.stop()
        # A broker certificate from another CA is refused.
        wrong = MqttClient(
            MqttSettings(
                host=broker.host,
                port=broker.port,
                client_id="ows-wrong-ca",
                **{**tls, "ca_file": str(certs["other-ca.crt"])},
            ),
            Inbox(),
        )
        wrong.start()
        time.sleep(2)
        assert not wrong.connected
        wrong.stop()
    finally:
        broker.stop()


def test_username_and_password(tmp_path):
    passwords = tmp_path / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "odoo", "s3cret"],
        check=True,
        capture_output=True,
    )
    # The later allow_anonymous line wins over the harness default.
    broker = Mosquitto(
        tmp_path / "broker",
        lines=("allow_anonymous false", f"password_file {passwords}"),
    ).start()
    try:
        refused = MqttClient(
            MqttSettings(
                host=broker.host,
                port=broker.port,
                client_id="ows-x",
                username="odoo",
                password="no",
            ),
            Inbox(),
        )
        refused.start()
        wait_until(lambda: refused.stats.last_error, 10, "a refusal")
        assert "refused" in refused.stats.last_error and not refused.connected
        refused.stop()
        client = MqttClient(
            MqttSettings(
                host=broker.host,
                port=broker.port,
                client_id="ows-y",
                username="odoo",
                password="s3cret",
            ),
            Inbox(),
        )
        client.start()
        wait_until(lambda: client.connected, 10, "the client to connect with its password")
        client.stop()
    finally:
        broker.stop()
