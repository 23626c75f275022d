"""Settings → IoT → Test connection against real brokers: a Mosquitto with a password
file, one with TLS, and a port where nothing listens. The check must name the
broker's reason and leave a connected client of the same client id alone."""

import subprocess
import threading

import pytest

pytest.importorskip("paho.mqtt")

import paho.mqtt.client as mqtt

from ows_iot.services.broker_check import check_connection
from ows_iot.services.mqtt_client import MqttSettings

from .harness import Mosquitto, free_port, make_certificates, mosquitto_binary

USER, PASSWORD = "odoo", "s3cret-pw"


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory):
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    folder = tmp_path_factory.mktemp("password-broker")
    password_file = folder / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(password_file), USER, PASSWORD],
        check=True,
        capture_output=True,
    )
    password_file.chmod(0o600)
    broker = Mosquitto(
        folder, lines=(f"password_file {password_file}", "allow_anonymous false")
    ).start()
    yield broker
    broker.stop()


def settings(broker, **values):
    return MqttSettings(
        **{"host": "127.0.0.1", "port": broker.port, "client_id": "ows-iot-check", **values}
    )


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_right_credentials_connect(password_broker, protocol):
    result = check_connection(
        settings(password_broker, username=USER, password=PASSWORD, protocol=protocol)
    )
    assert result.ok, result.detail
    assert result.reason is None
    assert f"127.0.0.1:{password_broker.port}" in result.detail


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_wrong_password_is_named_as_such(password_broker, protocol):
    result = check_connection(
        settings(password_broker, username=USER, password="wrong", protocol=protocol)
    )
    assert not result.ok
    assert result.reason == "credentials", result.detail


def test_no_credentials_at_a_broker_that_needs_them(password_broker):
    result = check_connection(settings(password_broker))
    assert (result.ok, result.reason) == (False, "credentials"), result.detail


def test_nothing_listening_is_refused():
    port = free_port()
    result = check_connection(MqttSettings(host="127.0.0.1", port=port, client_id="x"))
    assert (result.ok, result.reason) == (False, "refused"), result.detail
    assert str(port) in result.detail


def test_the_check_leaves_the_leaders_connection_alone(password_broker):
    """The leader is connected under the configured client id; a check with the same
    settings must not take its session over."""
    dropped = threading.Event()
    connected = threading.Event()
    leader = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id="ows-iot-check",
        protocol=mqtt.MQTTv5,
    )
    leader.username_pw_set(USER, PASSWORD)
    leader.on_connect = lambda *args: connected.set()
    leader.on_disconnect = lambda *args: dropped.set()
    leader.connect("127.0.0.1", password_broker.port)
    leader.loop_start()
    try:
        assert connected.wait(10)
        for _ in range(3):
            result = check_connection(settings(password_broker, username=USER, password=PASSWORD))
            assert result.ok, result.detail
        assert not dropped.wait(1.0), "the check disconnected the leader"
    finally:
        leader.disconnect()
        leader.loop_stop()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")
    folder = tmp_path_factory.mktemp("tls-broker")
    certs = make_certificates(folder / "certs")
    port = free_port()
    broker = Mosquitto(
        folder,
        port=port,
        lines=(
            f"listener {port} 127.0.0.1",
            f"cafile {certs['ca.crt']}",
            f"certfile {certs['server.crt']}",
            f"keyfile {certs['server.key']}",
        ),
    ).start()
    yield broker, certs
    broker.stop()


def test_tls_with_the_brokers_ca_connects(tls_broker):
    broker, certs = tls_broker
    result = check_connection(settings(broker, tls=True, ca_file=str(certs["ca.crt"])))
    assert result.ok, result.detail
    assert "TLS" in result.detail


def test_tls_with_another_ca_is_a_tls_error(tls_broker):
    broker, certs = tls_broker
    result = check_connection(settings(broker, tls=True, ca_file=str(certs["other-ca.crt"])))
    assert (result.ok, result.reason) == (False, "tls"), result.detail
    assert "certificate" in result.detail.lower()


def test_plain_mqtt_to_a_tls_port_fails_with_a_reason(tls_broker):
    broker, _certs = tls_broker
    result = check_connection(settings(broker), timeout=3)
    assert not result.ok
    assert result.reason in ("timeout", "protocol", "unreachable"), result.detail
