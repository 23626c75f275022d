"""What scripts/run-tests needs before it starts, said in one line.

    python scripts/prerequisites.py [--pure-only] [--no-pytest]

Prints nothing and exits 0 when everything is there; otherwise prints one line naming
what is missing, each with how to get it, and exits 1. Checked: pytest, pytest-timeout
and paho-mqtt for the pytest run; for the end-to-end and Odoo tests also PostgreSQL at
OWS_IOT_DB_HOST:OWS_IOT_DB_PORT (with OWS_IOT_DB_USER/OWS_IOT_DB_PASSWORD, else libpq's
defaults and ~/.pgpass), whose role may create databases, and Mosquitto for the
end-to-end tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

CREATEDB_SQL = (
    "SELECT rolcreatedb OR rolsuper, current_user FROM pg_roles WHERE rolname = current_user"
)


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def python_packages() -> list[str]:
    missing = [
        name
        for name, module in (
            ("pytest", "pytest"),
            ("pytest-timeout", "pytest_timeout"),
            ("paho-mqtt", "paho"),
        )
        if importlib.util.find_spec(module) is None
    ]
    return [f"{' '.join(missing)} (pip install -r requirements-dev.txt)"] if missing else []


def mosquitto() -> list[str]:
    if shutil.which("mosquitto") or any(
        os.access(path, os.X_OK) for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
    ):
        return []
    return ["Mosquitto (apt-get install mosquitto)"]


def _ask_postgres() -> tuple[bool, str]:
    """(may create databases, role) from the server, or raise with the reason."""
    host, port = _env("OWS_IOT_DB_HOST", "127.0.0.1"), _env("OWS_IOT_DB_PORT", "5432")
    user, password = _env("OWS_IOT_DB_USER"), _env("OWS_IOT_DB_PASSWORD")
    try:
        import psycopg2  # Odoo's driver, when Odoo is there
    except ImportError:
        psycopg2 = None
    if psycopg2 is not None:
        kwargs = {"host": host, "port": port, "dbname": "postgres", "connect_timeout": 5}
        if user:
            kwargs["user"] = user
        if password:
            kwargs["password"] = password
        try:
            conn = psycopg2.connect(**kwargs)
        except psycopg2.Error as exc:
            raise RuntimeError(str(exc).strip().splitlines()[0]) from exc
        try:
            with conn.cursor() as cr:
                cr.execute(CREATEDB_SQL)
                may_create, role = cr.fetchone()
        finally:
            conn.close()
        return bool(may_create), role
    if not shutil.which("psql"):
        raise LookupError("a PostgreSQL client (apt-get install postgresql-client)")
    command = ["psql", "-h", host, "-p", port, "-d", "postgres", "-Atq", "-F", "|"]
    if user:
        command += ["-U", user]
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    if password:
        env["PGPASSWORD"] = password
    result = subprocess.run(
        [*command, "-w", "-c", CREATEDB_SQL],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode:
        lines = result.stderr.strip().splitlines()
        raise RuntimeError(lines[0].removeprefix("psql: ") if lines else "psql failed")
    flag, role = result.stdout.strip().split("|")
    return flag == "t", role


def postgres() -> list[str]:
    where = f"{_env('OWS_IOT_DB_HOST', '127.0.0.1')}:{_env('OWS_IOT_DB_PORT', '5432')}"
    try:
        may_create, role = _ask_postgres()
    except LookupError as exc:
        return [str(exc)]
    except (RuntimeError, OSError) as exc:
        return [
            f"PostgreSQL at {where}: {exc} (start it; createuser -s $USER; or set OWS_IOT_DB_*)"
        ]
    if not may_create:
        return [
            f"the right to create databases for role {role} at {where} (ALTER ROLE {role} CREATEDB)"
        ]
    return []


def main(argv: list[str]) -> int:
    pure_only = "--pure-only" in argv
    with_pytest = "--no-pytest" not in argv
    missing = []
    if with_pytest:
        missing += python_packages()
        if not pure_only:
            missing += mosquitto()
    if not pure_only:
        missing += postgres()
    if missing:
        print("; ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
