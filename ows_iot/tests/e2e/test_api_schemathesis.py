"""Schemathesis against a live Odoo server, from the OpenAPI document in the repository.

Every check of Schemathesis runs (no 5xx, status codes, content types, headers and
bodies as documented, schema-invalid requests rejected, missing authentication
refused, unsupported methods answered 405), with the documented exceptions of
schemathesis.toml. The examples per operation and the seed can be set with
OWS_IOT_SCHEMATHESIS_EXAMPLES and OWS_IOT_SCHEMATHESIS_SEED.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .api_live import live_api
from .harness import REPO_ROOT

pytest.importorskip("schemathesis")

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
DOCUMENT = REPO_ROOT / "ows_iot" / "controllers" / "openapi.json"
CONFIG = HERE / "schemathesis.toml"
EXAMPLES = os.environ.get("OWS_IOT_SCHEMATHESIS_EXAMPLES", "100")
SEED = os.environ.get("OWS_IOT_SCHEMATHESIS_SEED", "20250314")


@pytest.fixture(scope="module")
def api(request, tmp_path_factory, odoo_template):
    yield from live_api(request, tmp_path_factory, odoo_template, "api_fuzz")


def test_schemathesis_finds_nothing(api, tmp_path):
    env = {
        **os.environ,
        "OWS_IOT_API_URL": api.base_url,
        "OWS_IOT_API_KEY": api.keys["manager"],
        "SCHEMATHESIS_HOOKS": "ows_iot.tests.e2e.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "NO_COLOR": "1",
    }
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
        "run", str(DOCUMENT),
        "--max-examples", EXAMPLES, "--seed", SEED,
        "--request-timeout", "60",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    # Run in tmp_path: Schemathesis keeps a cache directory where it runs.
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    output = result.stdout + result.stderr
    print(output[-1500:])  # the summary, shown with pytest -rP
    assert result.returncode == 0, output[-12000:]
    assert "6 selected / 6 total" in output, output[-4000:]
    server_errors = [line for line in api.server.errors() if "ows_iot" in line]
    assert not server_errors, "\n".join(server_errors[:20])
