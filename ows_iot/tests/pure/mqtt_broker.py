"""A private Mosquitto broker for the tests that need a real one.

Each broker runs on a free port of 127.0.0.1 with its own configuration, so tests
neither see nor leave retained messages on a shared broker. Without the mosquitto
binary the tests fall back to a broker already listening on 127.0.0.1:1883; with
neither they are skipped (and fail under CI, where a broker is part of the setup).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..e2e.harness import make_certificates

SHARED_BROKER = ("127.0.0.1", 1883)


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    private: bool
    # Topics of a test live under this root, so that runs never mix on a shared broker.
    root: str

    @property
    def args(self) -> list[str]:
        return ["--host", self.host, "--port", str(self.port)]


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def no_broker(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide Mosquitto", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def running_mosquitto(workdir: Path, *, config: str = "", listener: str = "") -> Iterator[Broker]:
    """Start ``mosquitto`` with ``config`` lines; stop it on exit.

    ``listener`` replaces the default plain listener line (for TLS or password tests).
    """
    binary = mosquitto_binary()
    root = f"ows-test-{uuid.uuid4().hex[:8]}"
    if binary is None:
        if config or listener or not _accepts(*SHARED_BROKER):
            no_broker("mosquitto is not installed and no broker listens on 127.0.0.1:1883")
        yield Broker(*SHARED_BROKER, private=False, root=root)
        return
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    log = workdir / "mosquitto.log"
    conf.write_text(
        "\n".join(
            [
                listener.format(port=port) or f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence false",
                # Started as root, mosquitto would switch to its own user and lose
                # access to the files of the test; as another user this is ignored.
                "user root",
                f"log_dest file {log}",
                config,
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )
    try:
        deadline = time.monotonic() + 10
        while not _accepts("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield Broker("127.0.0.1", port, private=True, root=root)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_tls_files(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    certificates = make_certificates(folder)
    return {
        "ca": certificates["ca.crt"],
        "other_ca": certificates["other-ca.crt"],
        "cert": certificates["server.crt"],
        "key": certificates["server.key"],
    }


def run_tool(module: str, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m ows_iot.services.<module>`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", f"ows_iot.services.{module}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=timeout,
        **kwargs,
    )


def start_tool(module: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", f"ows_iot.services.{module}", *args],
        cwd=REPO_ROOT,
        **kwargs,
    )


def wait_for_text(path: Path, text: str, process: subprocess.Popen, timeout: float = 10) -> None:
    """Wait until ``text`` appears in the file ``path`` (a tool's stderr)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    content = path.read_text(errors="replace") if path.exists() else ""
    pytest.fail(f"{text!r} did not appear; the tool wrote: {content[-2000:]}")


REPO_ROOT = Path(__file__).resolve().parents[3]
