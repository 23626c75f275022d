"""One-off broker connection test for Settings → IoT → Test connection.

Connects once with the settings as entered (not yet saved), waits for the broker's
answer and disconnects. It uses its own client id with a clean, non-persistent
session: reusing the leader's client id would make the broker drop the leader's
connection (MQTT session takeover) and with a persistent session it would leave a
session behind. It never subscribes nor publishes.

Pure Python; nothing here imports Odoo.
"""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .mqtt_client import MqttSettings

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    # what went wrong, in the user's terms: "refused", "credentials", "tls",
    # "unreachable", "timeout", "protocol"; None when it worked
    reason: str | None
    detail: str


def check_client_id(settings: MqttSettings) -> str:
    return f"{settings.client_id[:40]}-check-{uuid.uuid4().hex[:8]}"


def check_connection(settings: MqttSettings, timeout: float = TIMEOUT_S) -> CheckResult:
    """Connect to the broker once; the broker's answer or why it could not be reached."""
    v5 = settings.protocol == "5"
    kwargs = {
        "callback_api_version": mqtt.CallbackAPIVersion.VERSION2,
        "client_id": check_client_id(settings),
        "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    }
    if not v5:
        kwargs["clean_session"] = True
    client = mqtt.Client(**kwargs)
    client.connect_timeout = timeout
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    if settings.use_tls:
        try:
            client.tls_set(
                ca_certs=settings.ca_file or None,
                certfile=settings.certfile or None,
                keyfile=settings.keyfile or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            return CheckResult(False, "tls", f"the TLS settings cannot be used: {_line(exc)}")
        if settings.tls_insecure:
            client.tls_insecure_set(True)
    answered = threading.Event()
    answer: dict = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        answer["code"] = reason_code
        answered.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        answer.setdefault("code", reason_code)
        answered.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
    address = f"{settings.host}:{settings.effective_port}"
    try:
        client.connect(
            settings.host,
            settings.effective_port,
            keepalive=max(5, min(settings.keepalive, 60)),
            clean_start=True if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
    except ssl.SSLError as exc:
        return CheckResult(False, "tls", f"TLS handshake with {address} failed: {_line(exc)}")
    except ConnectionRefusedError:
        return CheckResult(
            False, "refused", f"{address} refused the connection: no broker listens there"
        )
    except socket.gaierror as exc:
        return CheckResult(
            False, "unreachable", f"{settings.host} cannot be resolved: {_line(exc)}"
        )
    except TimeoutError:
        return CheckResult(False, "timeout", f"{address} did not answer within {timeout:g} s")
    except OSError as exc:
        return CheckResult(False, "unreachable", f"{address} cannot be reached: {_line(exc)}")
    client.loop_start()
    try:
        if not answered.wait(timeout):
            return CheckResult(
                False, "timeout", f"{address} accepted the connection but sent no MQTT answer"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    code = answer.get("code")
    if code is not None and not code.is_failure:
        tls = " over TLS" if settings.use_tls else ""
        return CheckResult(True, None, f"connected to {address}{tls} and logged in")
    name = str(code) if code is not None else "connection closed"
    value = getattr(code, "value", None)
    # MQTT 3.1.1 codes 4/5, MQTT 5 codes 134/135: the credentials.
    if value in (4, 5, 134, 135):
        return CheckResult(False, "credentials", f"{address} refused the login: {name}")
    return CheckResult(False, "protocol", f"{address} refused the connection: {name}")


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
