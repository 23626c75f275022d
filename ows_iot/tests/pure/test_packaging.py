"""The addons declare what they need where Odoo, pip and OCA's tools look for it."""

import ast
from pathlib import Path

import pytest

from ows_iot.services import mqtt_client

REPO = Path(__file__).resolve().parents[3]
ADDONS = sorted(path.parent.name for path in REPO.glob("*/__manifest__.py"))


def manifest(addon):
    return ast.literal_eval((REPO / addon / "__manifest__.py").read_text())


def test_paho_is_an_external_dependency_of_the_manifest_and_the_requirements():
    declared = manifest("ows_iot")["external_dependencies"]["python"]
    assert declared == [mqtt_client.PAHO_REQUIREMENT] == ["paho-mqtt>=2,<3"]
    requirements = (REPO / "requirements.txt").read_text().split()
    assert mqtt_client.PAHO_REQUIREMENT in requirements


@pytest.mark.parametrize("addon", ADDONS)
def test_every_addon_builds_with_whool_and_says_where_it_stands(addon):
    pyproject = (REPO / addon / "pyproject.toml").read_text().splitlines()
    assert pyproject == [
        "[build-system]",
        'requires = ["whool"]',
        'build-backend = "whool.buildapi"',
    ]
    values = manifest(addon)
    assert values["license"] == "LGPL-3"
    assert values["development_status"] in ("Alpha", "Beta", "Production/Stable", "Mature")
    assert values["website"].startswith("https://")
    assert (REPO / addon / "readme" / "INSTALL.md").is_file()
    assert (REPO / addon / "README.rst").is_file()
    assert (REPO / addon / "static" / "description" / "index.html").is_file()


def test_a_missing_paho_is_named_with_its_requirement(monkeypatch):
    monkeypatch.setattr(mqtt_client, "mqtt", None)
    assert mqtt_client.paho_missing() == (
        "paho-mqtt is not installed: nothing is ingested (pip install 'paho-mqtt>=2,<3')"
    )
    with pytest.raises(mqtt_client.SettingsError, match="paho-mqtt is not installed"):
        mqtt_client.MqttClient(
            mqtt_client.MqttSettings(host="127.0.0.1", client_id="test"),
            on_message=lambda message: None,
        )
