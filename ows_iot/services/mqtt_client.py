"""The leader's MQTT connection: paho-mqtt 2.x with persistent session and manual acks.

- A fixed client id with a persistent session (MQTT 5 ``clean_start=False`` and a
  session expiry, or MQTT 3.1.1 ``clean_session=False``): while no leader is
  connected the broker keeps the subscriptions and queues QoS 1 messages, and it
  redelivers the ones a dead leader received but never acknowledged.
- ``manual_ack=True``: a message is acknowledged only when :meth:`MqttClient.ack`
  is called, after what it produced was committed. Acks of messages received on
  an earlier connection are skipped: the broker redelivers those anyway, and a
  packet id from an old connection may name another message on the new one.
- Subscribes with QoS 1 only: a QoS 2 message is acknowledged by paho on arrival
  (before it is committed), so a crash would lose it. Messages that still arrive
  at QoS 0 (the device published them so) are counted: no broker redelivers them.
- Reconnects forever, retrying every second (a broker restart costs seconds, not
  a backoff of tens of seconds), re-subscribes on every connect, and
  subscribes/unsubscribes the difference when the filters change.
- MQTT 5: announces a Maximum Packet Size, so that the broker drops (instead of
  delivering) a packet that would only strain the worker's memory.
- Retained messages describe the past, not the device now: MQTT 5 subscriptions
  ask the broker not to send them, and the runner skips any that still arrive.

Pure Python over paho-mqtt; nothing here imports Odoo.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:  # pragma: no cover - reported at startup, in the status panel and on connect
    mqtt = None

# What the manifest's external_dependencies declare; shown when paho-mqtt is missing.
PAHO_REQUIREMENT = "paho-mqtt>=2,<3"


def paho_missing() -> str | None:
    """A one-line reason when paho-mqtt cannot be used, else None."""
    if mqtt is None:
        return f"paho-mqtt is not installed: nothing is ingested (pip install '{PAHO_REQUIREMENT}')"
    return None


_logger = logging.getLogger(__name__)

PROTOCOLS = ("5", "3.1.1")
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
# Filters per SUBSCRIBE/UNSUBSCRIBE packet: keeps packets small with many devices.
FILTERS_PER_PACKET = 200
# paho doubles the delay from the minimum up to the maximum: with both at 1 s the
# client is back within about a second of the broker listening again, at the cost
# of one connection attempt per second while it is down.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 1
# The only QoS whose messages are acknowledged after the commit (see ack()).
QOS = 1
# MQTT 5 Maximum Packet Size announced to the broker: payloads over 64 KiB are
# dropped by the parsers anyway; larger packets never reach the worker at all.
MAX_PACKET_BYTES = 256 * 1024
# MQTT 5 reason code of a DISCONNECT because another client connected with our id.
SESSION_TAKEN_OVER = 0x8E
# Then retry slowly: reconnecting at once would throw the other client out in turn.
TAKEOVER_RETRY_S = 30
# mosquitto's default max_inflight_messages, the window of MQTT 3.1.1 clients.
MQTT311_INFLIGHT = 20
# Numbers every connection of every client of the process: a message's generation
# names the one connection its packet id belongs to.
_generations = itertools.count(1)


class SettingsError(ValueError):
    """Broker settings that cannot work; the message is one line for the user."""


@dataclass(frozen=True)
class MqttSettings:
    host: str
    client_id: str
    port: int | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_insecure: bool = False
    keepalive: int = 60
    qos: int = 1
    protocol: str = "5"
    # How long the broker keeps the session (subscriptions, queued messages)
    # while no leader is connected.
    session_expiry_s: int = 86400
    # MQTT 5 Receive Maximum: unacknowledged QoS 1 messages the broker may have
    # in flight to us. The runner commits and acks before reaching it.
    receive_maximum: int = 1000

    def __post_init__(self):
        if not self.host or not isinstance(self.host, str):
            raise SettingsError("no broker host configured")
        if not self.client_id:
            raise SettingsError("no MQTT client id")
        if len(self.client_id.encode()) > 65535:
            raise SettingsError("MQTT client id too long")
        if self.port is not None and not 0 < self.port < 65536:
            raise SettingsError(f"broker port out of range: {self.port}")
        if self.qos != QOS:
            # QoS 2 is acknowledged on arrival, QoS 0 never redelivered: either loses
            # messages when the leader dies before its commit.
            raise SettingsError(
                f"QoS must be {QOS} (at least once), not {self.qos}: "
                "only QoS 1 messages are acknowledged after they are committed"
            )
        if self.protocol not in PROTOCOLS:
            raise SettingsError(f"MQTT protocol must be one of {', '.join(PROTOCOLS)}")
        if self.keyfile and not self.certfile:
            raise SettingsError("a client key needs a client certificate")
        if self.password and not self.username:
            raise SettingsError("a broker password needs a username")
        if not 5 <= self.keepalive <= 65535:
            raise SettingsError("keepalive must be between 5 and 65535 seconds")
        if not 1 <= self.receive_maximum <= 65535:
            raise SettingsError("receive maximum must be between 1 and 65535")

    @property
    def use_tls(self) -> bool:
        return self.tls or bool(self.ca_file or self.certfile)

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return DEFAULT_TLS_PORT if self.use_tls else DEFAULT_PORT

    @property
    def address(self) -> str:
        scheme = "mqtts" if self.use_tls else "mqtt"
        return f"{scheme}://{self.host}:{self.effective_port}"

    @property
    def inflight_window(self) -> int:
        """Unacknowledged messages the broker sends before it waits for acks."""
        return self.receive_maximum if self.protocol == "5" else MQTT311_INFLIGHT


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    receive_ts: float
    generation: int
    dup: bool = False


@dataclass
class ClientStats:
    connected: bool = False
    connected_since: float | None = None
    connects: int = 0
    disconnects: int = 0
    session_present: bool = False
    last_error: str | None = None
    acks: int = 0
    stale_acks: int = 0
    subscribe_failures: int = 0
    subscriptions: int = 0
    messages: int = 0
    # Delivered at QoS 0 (published so by the device): lost if the leader dies first.
    qos0_messages: int = 0
    # Disconnected because another client connected with the same client id.
    takeovers: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


class MqttClient:
    """Connects in the background and hands every message to ``on_message``.

    ``on_message`` runs in paho's network thread: it must only queue the message.
    ``on_connection(connected, session_present)`` reports every state change.
    """

    def __init__(
        self,
        settings: MqttSettings,
        on_message: Callable[[Message], None],
        *,
        on_connection: Callable[[bool, bool], None] | None = None,
        logger: logging.Logger = _logger,
    ):
        if mqtt is None:
            raise SettingsError(paho_missing())
        self.settings = settings
        self._on_message = on_message
        self._on_connection = on_connection
        self._logger = logger
        self.stats = ClientStats()
        self._lock = threading.RLock()
        self._generation = next(_generations)
        self._wanted: set[str] = set()
        self._subscribed: set[str] = set()
        self._stale: set[str] = set()
        self._stopping = False
        self._started = False
        self.client = self._make_client()

    # -- set-up ------------------------------------------------------------------

    def _make_client(self):
        s = self.settings
        v5 = s.protocol == "5"
        kwargs = {
            "callback_api_version": mqtt.CallbackAPIVersion.VERSION2,
            "client_id": s.client_id,
            "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            "manual_ack": True,
        }
        if not v5:
            kwargs["clean_session"] = False
        client = mqtt.Client(**kwargs)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.connect_timeout = 10
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        if s.use_tls:
            try:
                client.tls_set(
                    ca_certs=s.ca_file or None,
                    certfile=s.certfile or None,
                    keyfile=s.keyfile or None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise SettingsError(f"cannot set up TLS: {_one_line(exc)}") from None
            if s.tls_insecure:
                client.tls_insecure_set(True)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        return client

    def _connect_properties(self):
        if self.settings.protocol != "5":
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        props.MaximumPacketSize = MAX_PACKET_BYTES
        return props

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; failures are retried with backoff, never raised."""
        s = self.settings
        kwargs = {"keepalive": s.keepalive}
        if s.protocol == "5":
            kwargs["clean_start"] = False
            kwargs["properties"] = self._connect_properties()
        self.client.connect_async(s.host, s.effective_port, **kwargs)
        self.client.loop_start()
        self._started = True

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (the session stays at the broker) and stop the thread."""
        with self._lock:
            self._stopping = True
            self._generation = next(_generations)
        if not self._started:
            return
        with contextlib.suppress(Exception):  # closing anyway
            self.client.disconnect()
        thread = getattr(self.client, "_thread", None)
        self.client.loop_stop()
        if thread is not None:
            thread.join(timeout)
        self._set_connected(False)

    def alive(self) -> bool:
        """Whether paho's network thread still runs (it retries connections by itself)."""
        return self._started and getattr(self.client, "_thread", None) is not None

    @property
    def connected(self) -> bool:
        return self.stats.connected

    # -- subscriptions -----------------------------------------------------------

    def set_filters(self, filters: Iterable[str], stale: Iterable[str] = ()) -> None:
        """Subscribe to exactly ``filters``; ``stale`` ones may linger in the broker's session."""
        with self._lock:
            self._wanted = set(filters)
            self._stale |= set(stale) - self._wanted
            if self.stats.connected:
                self._sync_subscriptions(resubscribe=False)

    @property
    def filters(self) -> set[str]:
        with self._lock:
            return set(self._wanted)

    def _sync_subscriptions(self, resubscribe: bool) -> None:
        add = set(self._wanted) if resubscribe else self._wanted - self._subscribed
        remove = (self._subscribed | self._stale) - self._wanted
        if remove:
            for chunk in _chunks(sorted(remove)):
                rc, _mid = self.client.unsubscribe(chunk)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # connection lost: the next connect syncs again
            self._subscribed -= remove
            self._stale.clear()
        if add:
            for chunk in _chunks(sorted(add)):
                rc, _mid = self.client.subscribe([(f, self._subscribe_options()) for f in chunk])
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    return
            self._subscribed |= add
        self.stats.subscriptions = len(self._subscribed)

    def _subscribe_options(self):
        if self.settings.protocol == "5":
            return SubscribeOptions(
                qos=self.settings.qos, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
            )
        return self.settings.qos

    # -- acknowledgements --------------------------------------------------------

    def ack(self, message: Message) -> bool:
        """Acknowledge one message; False when it belongs to an earlier connection."""
        if message.qos == 0:
            return True
        with self._lock:
            if message.generation != self._generation or not self.stats.connected:
                self.stats.stale_acks += 1
                return False
            rc = self.client.ack(message.mid, message.qos)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self.stats.stale_acks += 1
                return False
            self.stats.acks += 1
            return True

    # -- paho callbacks (network thread) -----------------------------------------

    def _handle_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.stats.last_error = f"broker refused the connection: {reason_code}"
            self._logger.warning(
                "MQTT %s refused the connection: %s", self.settings.address, reason_code
            )
            return
        with self._lock:
            if self._stopping:
                return
            self._generation = next(_generations)
            client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
            self.stats.connects += 1
            self.stats.session_present = bool(flags.session_present)
            self.stats.last_error = None
            self.stats.connected = True
            self.stats.connected_since = time.time()
            self._sync_subscriptions(resubscribe=True)
        self._logger.info(
            "MQTT connected to %s as %s (session present: %s, %d filters)",
            self.settings.address,
            self.settings.client_id,
            bool(flags.session_present),
            len(self._wanted),
        )
        if self._on_connection is not None:
            self._on_connection(True, bool(flags.session_present))

    def _handle_connect_fail(self, client, userdata):
        self.stats.last_error = f"cannot connect to {self.settings.address}"

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            self._generation = next(_generations)
            was_connected = self.stats.connected
            if was_connected:
                self.stats.disconnects += 1
        self._set_connected(False)
        if was_connected and not self._stopping and _is_takeover(reason_code):
            self.stats.takeovers += 1
            self.stats.last_error = (
                f"session taken over: another client — perhaps a copy of this database — "
                f"uses client id {self.settings.client_id}"
            )
            self._logger.warning(
                "MQTT broker %s ended the session: another client — perhaps a copy of this "
                "database — uses client id %s; retrying in %ss",
                self.settings.address, self.settings.client_id, TAKEOVER_RETRY_S,
            )  # fmt: skip
            client.reconnect_delay_set(TAKEOVER_RETRY_S, TAKEOVER_RETRY_S)
        elif was_connected and not self._stopping:
            self.stats.last_error = f"connection lost: {reason_code}"
            self._logger.warning(
                "MQTT connection to %s lost (%s); reconnecting", self.settings.address, reason_code
            )
        if was_connected and self._on_connection is not None:
            self._on_connection(False, False)

    def _set_connected(self, connected: bool) -> None:
        self.stats.connected = connected
        if not connected:
            self.stats.connected_since = None

    def _handle_subscribe(self, client, userdata, mid, reason_codes, properties):
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            self.stats.subscribe_failures += len(failed)
            self.stats.last_error = f"subscription refused: {failed[0]}"
            self._logger.warning(
                "MQTT broker refused %d subscription(s): %s", len(failed), failed[0]
            )

    def _handle_message(self, client, userdata, msg):
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            # Not a topic any device of ours publishes; the runner drops and acks it.
            topic = msg._topic.decode("utf-8", "replace")
        self.stats.messages += 1
        if msg.qos == 0:
            self.stats.qos0_messages += 1
        self._on_message(
            Message(
                topic=topic,
                payload=msg.payload,
                qos=msg.qos,
                retain=bool(msg.retain),
                mid=msg.mid,
                receive_ts=time.time(),
                generation=self._generation,
                dup=bool(msg.dup),
            )
        )


def _is_takeover(reason_code) -> bool:
    return getattr(reason_code, "value", reason_code) == SESSION_TAKEN_OVER


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), FILTERS_PER_PACKET):
        yield items[start : start + FILTERS_PER_PACKET]


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    lines = str(text).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__
