"""Pytest setup shared by the pure and end-to-end tests.

ows_iot/tests/ is also Odoo's test package: its __init__.py imports the Odoo test
modules (test_*.py), which only load inside an Odoo server. Pytest would execute
that __init__.py when importing ows_iot/tests/pure/* or ows_iot/tests/e2e/*, so it
is replaced here by an empty package with the same path, and the Odoo test modules
are kept out of collection. scripts/run-tests runs them through Odoo instead.
"""

import sys
import types
from pathlib import Path

_ODOO_TESTS_DIR = Path(__file__).resolve().parent / "ows_iot" / "tests"

if "ows_iot.tests" not in sys.modules:
    _package = types.ModuleType("ows_iot.tests")
    _package.__path__ = [str(_ODOO_TESTS_DIR)]
    _package.__file__ = str(_ODOO_TESTS_DIR / "__init__.py")
    sys.modules["ows_iot.tests"] = _package

collect_ignore_glob = ["ows_iot/tests/test_*.py", "ows_iot/tests/__init__.py"]
