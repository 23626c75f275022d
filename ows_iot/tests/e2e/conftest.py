"""Fixtures of the end-to-end tests: an installed template database, a fresh copy per
test, private Mosquitto brokers and Odoo servers (see harness.py)."""

import hashlib
import os
from pathlib import Path

import pytest

from .harness import (
    REPO_ROOT,
    Mosquitto,
    copy_database,
    drop_database,
    install_template,
    odoo_missing,
    pg_available,
    query,
    unique_name,
)

KEEP_TEMPLATE = os.environ.get("OWS_IOT_E2E_KEEP_TEMPLATE") == "1"
# An installed database to copy instead of installing ows_iot again (development only:
# it must match the code under test).
GIVEN_TEMPLATE = os.environ.get("OWS_IOT_E2E_TEMPLATE")


def _addon_fingerprint() -> str:
    """Changes whenever anything installable changes, so a kept template is never stale."""
    digest = hashlib.sha256()
    addon = REPO_ROOT / "ows_iot"
    for path in sorted(addon.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".xml", ".csv", ".po", ".pot", ".json"):
            if "tests" in path.relative_to(addon).parts:
                continue
            digest.update(str(path.relative_to(addon)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


@pytest.fixture(scope="session")
def odoo_template(tmp_path_factory):
    """A database with ows_iot installed (without demo data), copied by each test."""
    reason = odoo_missing() or pg_available()
    if reason:
        pytest.skip(reason)
    if GIVEN_TEMPLATE:
        yield GIVEN_TEMPLATE
        return
    name = f"ows_e2e_tmpl_{_addon_fingerprint()}"
    exists = query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", [name])
    if not exists:
        work = tmp_path_factory.mktemp("template")
        try:
            install_template(name, work / "data", work / "install.log")
        except BaseException:
            drop_database(name)
            raise
    yield name
    if not KEEP_TEMPLATE:
        drop_database(name)


@pytest.fixture
def odoo_db(odoo_template):
    name = unique_name("ows_e2e")
    copy_database(odoo_template, name)
    yield name
    drop_database(name)


@pytest.fixture
def broker(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path
