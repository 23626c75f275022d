"""Broker options and connection handling shared by the command-line tools.

Every tool takes the same options (``--host``, ``--port``, ``--username``,
``--password``, ``--tls``, ``--cafile``, ``--certfile``/``--keyfile``,
``--client-id``), with defaults from the environment so that passwords need not
appear on a command line. Connection problems become a :class:`BrokerError`
with a one-line reason that the tools print before exiting with status 2.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - reported when a tool actually connects
    mqtt = None

ENV_HOST = "OWS_MQTT_HOST"
ENV_PORT = "OWS_MQTT_PORT"
ENV_USERNAME = "OWS_MQTT_USERNAME"
ENV_PASSWORD = "OWS_MQTT_PASSWORD"

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


class BrokerError(Exception):
    """The broker cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class BrokerOptions:
    host: str = "localhost"
    port: int | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_insecure: bool = False
    client_id: str | None = None
    keepalive: int = 60
    connect_timeout: float = 10.0

    @property
    def use_tls(self) -> bool:
        return self.tls or bool(self.cafile or self.certfile)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return DEFAULT_TLS_PORT if self.use_tls else DEFAULT_PORT

    @property
    def address(self) -> str:
        return f"{self.host}:{self.effective_port}"


def add_broker_arguments(
    parser: argparse.ArgumentParser, client_id_help: str = "MQTT client id (default: generated)"
) -> None:
    group = parser.add_argument_group(
        "broker",
        f"Defaults come from {ENV_HOST}, {ENV_PORT}, {ENV_USERNAME} and {ENV_PASSWORD} "
        "when set; prefer the environment for the password, command lines are visible "
        "to other users of the machine.",
    )
    group.add_argument(
        "--host",
        default=os.environ.get(ENV_HOST) or "localhost",
        help="broker host name or address (default: %(default)s)",
    )
    group.add_argument(
        "--port",
        type=_port,
        default=_env_port(),
        help=f"broker port (default: {DEFAULT_PORT}, or {DEFAULT_TLS_PORT} with TLS)",
    )
    group.add_argument("--username", default=os.environ.get(ENV_USERNAME) or None)
    group.add_argument("--password", default=os.environ.get(ENV_PASSWORD) or None)
    group.add_argument("--tls", action="store_true", help="connect with TLS")
    group.add_argument(
        "--cafile", help="CA certificate (PEM) to verify the broker with; implies --tls"
    )
    group.add_argument("--certfile", help="client certificate (PEM); implies --tls")
    group.add_argument("--keyfile", help="private key of the client certificate (PEM)")
    group.add_argument(
        "--tls-insecure",
        action="store_true",
        help="do not check that the broker's certificate matches the host name",
    )
    group.add_argument("--client-id", help=client_id_help)
    group.add_argument(
        "--keepalive", type=int, default=60, help="keepalive in seconds (default: 60)"
    )


def broker_options_from_args(args: argparse.Namespace) -> BrokerOptions:
    """Build the options from parsed arguments; raises BrokerError on contradictions."""
    if args.keyfile and not args.certfile:
        raise BrokerError("--keyfile needs --certfile")
    for name in ("cafile", "certfile", "keyfile"):
        path = getattr(args, name)
        if path and not os.path.isfile(path):
            raise BrokerError(f"--{name} {path}: no such file")
    if args.keepalive < 5:
        raise BrokerError("--keepalive must be at least 5 seconds")
    return BrokerOptions(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        tls=args.tls,
        cafile=args.cafile,
        certfile=args.certfile,
        keyfile=args.keyfile,
        tls_insecure=args.tls_insecure,
        client_id=args.client_id,
        keepalive=args.keepalive,
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def _env_port() -> int | None:
    text = os.environ.get(ENV_PORT)
    if not text:
        return None
    try:
        return _port(text)
    except argparse.ArgumentTypeError:
        sys.exit(f"{ENV_PORT}={text!r} is not a port number")


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class BrokerConnection:
    """One MQTT client with its network thread, connected synchronously.

    ``start()`` returns once the broker accepted the connection, or raises
    BrokerError. After a lost connection the client reconnects by itself;
    ``on_connected`` runs after every accepted connection (subscribe there, so
    subscriptions survive reconnects), and losses are reported through ``log``.
    """

    def __init__(
        self,
        options: BrokerOptions,
        client_id: str,
        *,
        will: Will | None = None,
        on_connected: Callable[[mqtt.Client], None] | None = None,
        on_message: Callable[[mqtt.Client, object, mqtt.MQTTMessage], None] | None = None,
        log: Callable[[str], None] | None = None,
    ):
        if mqtt is None:
            raise BrokerError("paho-mqtt is not installed (pip install 'paho-mqtt>=2,<3')")
        self.options = options
        self.log = log or (lambda text: print(text, file=sys.stderr))  # pylint: disable=print-used
        self._on_connected = on_connected
        self._first_connack = threading.Event()
        self._refusal: str | None = None
        self._stopping = False
        self.connected = False
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
        )
        self.client.connect_timeout = options.connect_timeout
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Publishers queue many QoS 1 messages at high simulation speeds.
        self.client.max_inflight_messages_set(100)
        if options.username is not None:
            self.client.username_pw_set(options.username, options.password)
        elif options.password is not None:
            raise BrokerError("a password needs a --username")
        if will is not None:
            self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        if options.use_tls:
            self._configure_tls()
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        if on_message is not None:
            self.client.on_message = on_message

    def _configure_tls(self) -> None:
        try:
            self.client.tls_set(
                ca_certs=self.options.cafile,
                certfile=self.options.certfile,
                keyfile=self.options.keyfile,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise BrokerError(f"cannot set up TLS: {_reason(exc)}") from None
        if self.options.tls_insecure:
            self.client.tls_insecure_set(True)

    def start(self) -> None:
        address = self.options.address
        try:
            self.client.connect(
                self.options.host, self.options.effective_port, keepalive=self.options.keepalive
            )
        except ssl.SSLCertVerificationError as exc:
            raise BrokerError(
                f"TLS certificate of {address} not accepted: {exc.verify_message or exc}"
            ) from None
        except ssl.SSLError as exc:
            raise BrokerError(f"TLS handshake with {address} failed: {_reason(exc)}") from None
        except socket.gaierror:
            raise BrokerError(f"cannot resolve broker host {self.options.host!r}") from None
        except TimeoutError:
            raise BrokerError(f"no answer from broker at {address}") from None
        except ConnectionRefusedError:
            raise BrokerError(f"connection to {address} refused (is the broker running?)") from None
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect to {address}: {_reason(exc)}") from None
        self.client.loop_start()
        if not self._first_connack.wait(self.options.connect_timeout):
            self._shutdown()
            raise BrokerError(f"broker at {address} did not answer the connection request")
        if self._refusal is not None:
            self._shutdown()
            raise BrokerError(f"broker at {address} refused the connection: {self._refusal}")

    def stop(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        self._stopping = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _shutdown(self) -> None:
        self._stopping = True
        self.client.loop_stop()
        self.client.disconnect()

    def _handle_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            if not self._first_connack.is_set():
                self._refusal = str(reason_code)
                self._first_connack.set()
                # Stop retrying: start() reports the refusal.
                client.disconnect()
            else:
                self.log(f"broker refused the reconnection: {reason_code}")
            return
        if self._first_connack.is_set():
            self.log(f"reconnected to {self.options.address}")
        self.connected = True
        if self._on_connected is not None:
            self._on_connected(client)
        self._first_connack.set()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties):
        if not self._first_connack.is_set():
            # Closed before any answer: typically plain MQTT sent to a TLS port.
            self._refusal = f"connection closed before it was accepted ({reason_code})"
            self._first_connack.set()
            return
        was_connected, self.connected = self.connected, False
        if was_connected and not self._stopping:
            self.log(f"connection to {self.options.address} lost ({reason_code}); reconnecting")


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
    return str(text).strip() or exc.__class__.__name__


# -- command-line helpers of the tools ------------------------------------------------


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def messages_text(count: int) -> str:
    return f"{count} message{'' if count == 1 else 's'}"


def note(tool: str, text: str) -> None:
    """A line on stderr, starting clean: a live count may hold the terminal's last line."""
    clear = "\r\033[K" if sys.stderr.isatty() else ""
    print(f"{clear}{tool}: {text}", file=sys.stderr, flush=True)  # pylint: disable=print-used
