# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Where the ingestion threads live in an Odoo server.

``ows_iot`` is loaded server-wide (``--load=base,web,ows_iot``); its ``post_load``
hook runs once per process at import and patches the server classes so that a
:class:`~.supervisor.Supervisor` starts

- in the threaded server, after ``ThreadedServer.start`` (not with
  ``--stop-after-init``);
- in every prefork HTTP worker, after ``WorkerHTTP.start``, that is after the
  fork: the master loads server-wide modules before forking and threads do not
  survive a fork, so nothing starts in the master;
- never in the gevent process (``odoo.evented``), nor in cron workers;
- not while Odoo runs tests, so that a test run never consumes MQTT by accident.

It stops before ``ThreadedServer.stop`` and in ``WorkerHTTP.stop`` (worker
recycled or server stopping), and at interpreter exit as a last resort.

``OWS_IOT_RUNTIME`` (environment) or ``ows_iot_runtime`` (``[options]`` of the
Odoo configuration file) turn it off (``0``/``false``) or on even in test runs
(``force``).
"""

import atexit
import logging
import os
import threading

import odoo
from odoo.service import server
from odoo.tools import config

from ..services.mqtt_client import paho_missing
from .supervisor import Supervisor

_logger = logging.getLogger(__name__)

ENV_SWITCH = "OWS_IOT_RUNTIME"
CONFIG_SWITCH = "ows_iot_runtime"
STOP_TIMEOUT_S = 10.0

_lock = threading.Lock()
_supervisor = None
_patched = False


def runtime_mode() -> str:
    """``off``, ``on`` or ``force`` from the environment or the configuration file."""
    value = os.environ.get(ENV_SWITCH)
    if value is None:
        value = config.get(CONFIG_SWITCH)
    if value is None or value == "":
        return "on"
    text = str(value).strip().lower()
    if text in ("0", "false", "no", "off"):
        return "off"
    if text == "force":
        return "force"
    return "on"


def runtime_wanted() -> bool:
    mode = runtime_mode()
    if mode == "off" or odoo.evented:
        return False
    if mode == "force":
        return True
    return not (config["test_enable"] or config["test_file"] or config["stop_after_init"])


def start_runtime(where: str) -> None:
    """Start this process's supervisor once (no-op when unwanted or running)."""
    global _supervisor
    if not runtime_wanted():
        _logger.debug("ows_iot runtime not started in %s (disabled or test run)", where)
        return
    missing = paho_missing()
    if missing:
        # The manifest declares paho-mqtt, so Odoo refuses to install the addon
        # without it; an installed addon whose environment lost it must not look fine.
        _logger.error("ows_iot runtime in %s: %s", where, missing)
    with _lock:
        if _supervisor is not None and _supervisor.pid == os.getpid():
            return
        _supervisor = Supervisor()
        _supervisor.start()
    _logger.info("ows_iot runtime started in %s (pid %s)", where, os.getpid())


def stop_runtime() -> None:
    """Stop this process's supervisor: leaders flush, disconnect and unlock."""
    global _supervisor
    with _lock:
        supervisor, _supervisor = _supervisor, None
    # A supervisor inherited through fork() has no threads in this process.
    if supervisor is not None and supervisor.pid == os.getpid():
        supervisor.stop(STOP_TIMEOUT_S)


def _threaded_start(self, *args, **kwargs):
    result = _orig["threaded_start"](self, *args, **kwargs)
    stop = kwargs.get("stop", args[0] if args else False)
    if not stop:
        start_runtime("the threaded server")
    return result


def _threaded_stop(self, *args, **kwargs):
    # Before the original: it closes every database connection at its end.
    stop_runtime()
    return _orig["threaded_stop"](self, *args, **kwargs)


def _worker_http_start(self, *args, **kwargs):
    result = _orig["worker_http_start"](self, *args, **kwargs)
    start_runtime(f"HTTP worker {os.getpid()}")
    return result


def _worker_http_stop(self, *args, **kwargs):
    stop_runtime()
    return _orig["worker_http_stop"](self, *args, **kwargs)


_orig = {}


def post_load():
    """Manifest ``post_load`` hook: patch the server classes once per process."""
    global _patched
    if _patched:
        return
    _patched = True
    _orig.update(
        threaded_start=server.ThreadedServer.start,
        threaded_stop=server.ThreadedServer.stop,
        worker_http_start=server.WorkerHTTP.start,
        worker_http_stop=server.WorkerHTTP.stop,
    )
    server.ThreadedServer.start = _threaded_start
    server.ThreadedServer.stop = _threaded_stop
    server.WorkerHTTP.start = _worker_http_start
    server.WorkerHTTP.stop = _worker_http_stop
    atexit.register(stop_runtime)
