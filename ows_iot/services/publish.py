"""Publish one message to the broker and wait for its acknowledgement.

The backend's "Check in" and the REST check-in publish their check-in command
(services.badge) to the broker rather than writing it aside, so that it reaches
the leader's engine like any reading, in order with them, and so that a capture
of the broker's traffic replays it. This connects once with a client id of its
own and a clean, non-persistent session (the leader's client id would take over
its broker session), publishes at QoS 1, waits for the PUBACK and disconnects.

Pure Python; nothing here imports Odoo.
"""

from __future__ import annotations

import ssl
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .mqtt_client import MqttSettings

TIMEOUT_S = 5.0


class PublishError(Exception):
    """The message could not be handed to the broker; the text says why, in one line."""


def publish_client_id(settings: MqttSettings) -> str:
    return f"{settings.client_id[:40]}-pub-{uuid.uuid4().hex[:8]}"


def publish_once(
    settings: MqttSettings, topic: str, payload: bytes, timeout: float = TIMEOUT_S
) -> None:
    """Publish ``payload`` on ``topic`` at QoS 1; PublishError unless the broker took it."""
    v5 = settings.protocol == "5"
    kwargs = {
        "callback_api_version": mqtt.CallbackAPIVersion.VERSION2,
        "client_id": publish_client_id(settings),
        "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    }
    if not v5:
        kwargs["clean_session"] = True
    client = mqtt.Client(**kwargs)
    client.connect_timeout = timeout
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    address = f"{settings.host}:{settings.effective_port}"
    if settings.use_tls:
        try:
            client.tls_set(
                ca_certs=settings.ca_file or None,
                certfile=settings.certfile or None,
                keyfile=settings.keyfile or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise PublishError(f"the TLS settings cannot be used: {_line(exc)}") from None
        if settings.tls_insecure:
            client.tls_insecure_set(True)
    connected = threading.Event()
    answer: dict = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        answer["code"] = reason_code
        connected.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        answer.setdefault("code", reason_code)
        connected.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
    try:
        client.connect(
            settings.host,
            settings.effective_port,
            keepalive=max(5, min(settings.keepalive, 60)),
            clean_start=True if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
    except (OSError, ssl.SSLError) as exc:
        raise PublishError(f"the broker {address} cannot be reached: {_line(exc)}") from None
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise PublishError(f"the broker {address} did not answer within {timeout:g} s")
        code = answer.get("code")
        if code is None or code.is_failure:
            raise PublishError(f"the broker {address} refused the connection: {code}")
        info = client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"the broker {address} did not take the message: {exc}") from None
        if not info.is_published():
            raise PublishError(f"the broker {address} did not acknowledge the message in time")
    finally:
        client.disconnect()
        client.loop_stop()


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
