"""Real processes for the end-to-end tests: Mosquitto, Odoo servers, PostgreSQL.

Everything listens on 127.0.0.1 and on free ports, in a temporary directory of
the test; nothing is shared with other runs. Odoo tests install ``ows_iot``
once into a template database and copy it (``createdb -T``) for each test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xmlrpc.client
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DB_HOST = os.environ.get("OWS_IOT_DB_HOST", "127.0.0.1")
DB_PORT = int(os.environ.get("OWS_IOT_DB_PORT", "5432"))
DB_USER = os.environ.get("OWS_IOT_DB_USER") or None
DB_PASSWORD = os.environ.get("OWS_IOT_DB_PASSWORD") or None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(interval)


# -- Mosquitto -------------------------------------------------------------------------


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )


class Mosquitto:
    """A private broker with persistence, restartable on the same port."""

    def __init__(self, workdir: Path, *, port: int | None = None, lines: tuple[str, ...] = ()):
        binary = mosquitto_binary()
        if binary is None:
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.lines = lines
        self.log = self.workdir / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    def config(self) -> str:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        listener = [f"listener {self.port} 127.0.0.1"]
        if any(line.startswith("listener") for line in self.lines):
            listener = []
        return "\n".join(
            [
                *listener,
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {data}/",
                # A failover gap must not overflow the queue of the leader's session.
                "max_queued_messages 100000",
                # Started as root, mosquitto would switch users and lose its files.
                "user root",
                f"log_dest file {self.log}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "connection_messages true",
                *self.lines,
                "",
            ]
        )

    def start(self) -> Mosquitto:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        self.process = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )
        deadline = time.monotonic() + 10
        while not accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not start:\n{self.tail()}", pytrace=False)
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


def tls_mosquitto(workdir: Path, certs: dict[str, Path]) -> Mosquitto:
    """A started private broker that admits only TLS clients with a certificate of
    the CA of ``certs`` (from make_certificates)."""
    port = free_port()
    return Mosquitto(
        workdir,
        port=port,
        lines=(
            f"listener {port} 127.0.0.1",
            f"cafile {certs['ca.crt']}",
            f"certfile {certs['server.crt']}",
            f"keyfile {certs['server.key']}",
            "require_certificate true",
        ),
    ).start()


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate signed by it,
    and a second, unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    for name in ("ca", "other-ca"):
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=ows e2e {name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
        )  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=ows-odoo")):
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        )  # fmt: skip
    return {name: folder / name for name in (
        "ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt", "client.key",
    )}  # fmt: skip


# -- PostgreSQL --------------------------------------------------------------------------


def pg_connect(dbname: str = "postgres", **overrides):
    import psycopg2  # only the tests that need PostgreSQL import it

    params = {"host": DB_HOST, "port": DB_PORT, "dbname": dbname, "connect_timeout": 5}
    if DB_USER:
        params["user"] = DB_USER
    if DB_PASSWORD:
        params["password"] = DB_PASSWORD
    params.update(overrides)
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    return conn


def pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason."""
    try:
        pg_connect().close()
    except Exception as exc:  # any failure means: skip with the reason
        return f"no PostgreSQL at {DB_HOST}:{DB_PORT} ({str(exc).strip().splitlines()[0]})"
    return None


def query(dbname: str, sql: str, params=(), **connect):
    conn = pg_connect(dbname, **connect)
    try:
        with conn.cursor() as cr:
            cr.execute(sql, params)
            return cr.fetchall() if cr.description else None
    finally:
        conn.close()


def drop_database(dbname: str, **connect) -> None:
    conn = pg_connect(**connect)
    try:
        with conn.cursor() as cr:
            cr.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )
            cr.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
    finally:
        conn.close()


def copy_database(template: str, name: str, **connect) -> None:
    conn = pg_connect(**connect)
    try:
        with conn.cursor() as cr:
            cr.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        conn.close()


# -- Odoo --------------------------------------------------------------------------------


def odoo_missing() -> str | None:
    probe = subprocess.run(
        [sys.executable, "-c", "import odoo.release as r; print(r.version_info[0])"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        return f"Odoo is not importable ({last})"
    if probe.stdout.strip() != "18":
        return f"Odoo {probe.stdout.strip()} found, ows_iot needs Odoo 18"
    return None


def addons_path() -> str:
    configured = os.environ.get("OWS_IOT_ADDONS_PATH")
    if configured:
        return configured
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, odoo; root = os.path.dirname(os.path.abspath(odoo.__file__));"
            "print(','.join(p for p in (os.path.join(root, 'addons'),"
            " os.path.join(os.path.dirname(root), 'addons')) if os.path.isdir(p)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{probe.stdout.strip()},{REPO_ROOT}"


def odoo_command(dbname: str, data_dir: Path, *args: str, db_port: int = DB_PORT) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "odoo",
        "-d",
        dbname,
        "--db_host",
        DB_HOST,
        "--db_port",
        str(db_port),
        f"--addons-path={addons_path()}",
        f"--data-dir={data_dir}",
        "--db-filter",
        f"^{dbname}$",
        *args,
    ]
    if DB_USER:
        command += ["--db_user", DB_USER]
    if DB_PASSWORD:
        command += ["--db_password", DB_PASSWORD]
    return command


def install_template(dbname: str, data_dir: Path, log: Path, timeout: float = 900) -> None:
    command = odoo_command(
        dbname, data_dir, "-i", "ows_iot", "--without-demo=all", "--stop-after-init",
        "--log-level=warn", f"--logfile={log}",
    )  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, timeout=timeout, capture_output=True, text=True)
    text = log.read_text(errors="replace") if log.exists() else ""
    if result.returncode != 0 or " ERROR " in text or " CRITICAL " in text:
        pytest.fail(
            f"installing ows_iot failed (status {result.returncode}):\n"
            f"{(text or result.stderr)[-4000:]}",
            pytrace=False,
        )


class OdooServer:
    """``python -m odoo`` on a free HTTP port, its log in a file."""

    def __init__(self, dbname: str, workdir: Path, *, name: str = "odoo", workers: int = 0,
                 env: dict | None = None, args: tuple[str, ...] = (),
                 db_port: int = DB_PORT):  # fmt: skip
        self.dbname = dbname
        self.db_port = db_port
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.workers = workers
        self.log = self.workdir / f"{name}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.args = args
        self.process: subprocess.Popen | None = None
        self._log_offset = 0

    def start(self) -> OdooServer:
        extra = ["--workers", str(self.workers)]
        if self.workers:
            extra += ["--gevent-port", str(free_port()), "--max-cron-threads", "1"]
        else:
            extra += ["--max-cron-threads", "1"]
        command = odoo_command(
            self.dbname, self.workdir.parent / "data", "--http-interface", "127.0.0.1",
            "--http-port", str(self.port), f"--logfile={self.log}", "--log-level=info",
            "--without-demo=all", *extra, *self.args, db_port=self.db_port,
        )  # fmt: skip
        # Not "-m odoo": a prefork server re-executes sys.argv[0] for its gevent process.
        command[:3] = [sys.executable, str(Path(__file__).with_name("odoo_bin.py"))]
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / f"{self.name}.stderr").open("ab"),
            start_new_session=True,
        )
        wait_until(
            lambda: self._check_alive() and accepts(self.port),
            120,
            f"{self.name} to listen on port {self.port}",
        )
        return self

    def _check_alive(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(
                f"{self.name} exited with status {self.process.returncode}:\n{self.tail()}",
                pytrace=False,
            )
        return True

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[int]:
        """Worker pids of a prefork server."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.pid)], capture_output=True, text=True
        ).stdout.split()
        return [int(pid) for pid in out]

    def stop(self, timeout: float = 30) -> int | None:
        """Graceful stop (SIGTERM to the server, as a service manager does)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not stop within {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup of any kind."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, size: int = 4000) -> str:
        text = self.text()
        stderr = self.workdir / f"{self.name}.stderr"
        if stderr.exists():
            text += stderr.read_text(errors="replace")
        return text[-size:]

    def errors(self) -> list[str]:
        return [
            line
            for line in self.text().splitlines()
            if " ERROR " in line or " CRITICAL " in line or "Traceback" in line
        ]

    # -- XML-RPC as the administrator --------------------------------------------------

    def rpc(self, model: str, method: str, *args, **kwargs):
        proxy = xmlrpc.client.ServerProxy(
            f"http://127.0.0.1:{self.port}/xmlrpc/2/object", allow_none=True
        )
        return proxy.execute_kw(self.dbname, 2, "admin", model, method, list(args), kwargs)


# -- the database as the tests see it ----------------------------------------------------


def sessions(dbname: str, **connect) -> list[dict]:
    rows = query(
        dbname,
        """
        SELECT s.session_id, d.device_id, s.status,
               extract(epoch FROM s.start_time), extract(epoch FROM s.end_time),
               s.working_duration_s, s.standby_duration_s, s.energy_wh, s.timing
          FROM mqtt_session s JOIN mqtt_device d ON d.id = s.device_id
         ORDER BY s.start_time, d.device_id
        """,
        **connect,
    )
    keys = ("session_id", "device_id", "status", "start", "end", "working_s", "standby_s",
            "energy_wh", "timing")  # fmt: skip
    return [
        dict(zip(keys, (float(v) if hasattr(v, "is_finite") else v for v in row))) for row in rows
    ]


def replay(devices: list[dict], capture: Path, until: float | None = None) -> list[dict]:
    """Sessions as ``python -m ows_iot.services.replay`` computes them."""
    devices_file = capture.with_suffix(".devices.json")
    devices_file.write_text(json.dumps(devices))
    command = [sys.executable, "-m", "ows_iot.services.replay", "--devices", str(devices_file),
               str(capture)]  # fmt: skip
    if until is not None:
        command += ["--until", str(until)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.fail(f"replay failed: {result.stderr}", pytrace=False)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [line for line in lines if line["kind"] == "session"]


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# -- a throwaway PostgreSQL cluster ------------------------------------------------------


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return versions[0].parent if versions else None


class ThrowawayPostgres:
    """A private PostgreSQL cluster on a free port that a test may stop and start."""

    def __init__(self):
        self.bindir = _pg_bindir()
        if self.bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.root = Path(tempfile.mkdtemp(prefix="ows-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._role_created = False
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the cluster as the postgres user.
            if not shutil.which("runuser"):
                pytest.skip("running as root without runuser to switch to postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")

    def _run(self, *command: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [*self.as_user, *command], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            pytest.fail(f"{command[0]} failed: {result.stderr or result.stdout}", pytrace=False)

    def init(self) -> ThrowawayPostgres:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync",
        )  # fmt: skip
        return self

    # Odoo refuses to run as the "postgres" superuser.
    ROLE = "ows"

    def start(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip
        if not self._role_created:
            self._run(
                str(self.bindir / "createuser"), "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "--superuser", self.ROLE,
            )  # fmt: skip
            self._role_created = True

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def connect(self) -> dict:
        return {"port": self.port, "user": self.ROLE}

    def copy_from(self, dbname: str, target: str) -> None:
        """Copy the database ``dbname`` of the main server into this cluster as ``target``."""
        dump = self.root / f"{dbname}.dump"
        source = ["-h", DB_HOST, "-p", str(DB_PORT)] + (["-U", DB_USER] if DB_USER else [])
        subprocess.run(
            [str(self.bindir / "pg_dump"), *source, "-Fc", "-f", str(dump), dbname],
            check=True, capture_output=True, env={**os.environ, **(
                {"PGPASSWORD": DB_PASSWORD} if DB_PASSWORD else {})},
        )  # fmt: skip
        dump.chmod(0o644)
        address = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.ROLE]
        self._run(str(self.bindir / "createdb"), *address, target)
        self._run(str(self.bindir / "pg_restore"), *address, "--no-owner", "-d", target, str(dump))

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(BaseException):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
