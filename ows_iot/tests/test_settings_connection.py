# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Settings → IoT → Test connection, against a real Mosquitto with a password file
started on a free port for these tests."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from odoo.tests import HttpCase, TransactionCase, tagged

USER, PASSWORD = "odoo", "s3cret-pw"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BrokerWithPasswords:
    """A Mosquitto that admits USER with PASSWORD only, on a free port."""

    @classmethod
    def start_broker(cls):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists() or not shutil.which("mosquitto_passwd"):
            cls.skipTest(cls, "mosquitto is not installed")
        folder = Path(tempfile.mkdtemp(prefix="ows-iot-broker-"))
        cls.addClassCleanup(shutil.rmtree, folder, ignore_errors=True)
        passwords = folder / "passwords"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD],
            check=True,
            capture_output=True,
        )
        passwords.chmod(0o600)
        cls.port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(
            f"listener {cls.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {passwords}\nuser root\n"
        )
        cls.broker = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        cls.addClassCleanup(cls.broker.wait, 10)
        cls.addClassCleanup(cls.broker.terminate)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", cls.port)) == 0:
                    break
            if cls.broker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)


@tagged("post_install", "-at_install")
class TestConnectionTest(BrokerWithPasswords, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_broker()

    def check(self, **values):
        settings = self.env["res.config.settings"].create(
            {
                "ows_iot_mqtt_host": "127.0.0.1",
                "ows_iot_mqtt_port": self.port,
                "ows_iot_mqtt_username": USER,
                "ows_iot_mqtt_password": PASSWORD,
                **values,
            }
        )
        return settings.action_ows_iot_test_connection()["params"]

    def test_right_credentials_report_success(self):
        params = self.check()
        self.assertEqual(params["type"], "success", params["message"])
        self.assertIn(f"127.0.0.1:{self.port}", params["message"])

    def test_the_brokers_reason_is_reported(self):
        params = self.check(ows_iot_mqtt_password="wrong")
        self.assertEqual(params["type"], "danger")
        self.assertIn("Wrong user name or password", params["message"])
        params = self.check(ows_iot_mqtt_port=free_port())
        self.assertIn("Connection refused", params["message"])
        params = self.check(ows_iot_mqtt_tls=True, ows_iot_mqtt_ca_file="/nope.pem")
        self.assertIn("does not exist on this server", params["message"])

    def test_nothing_is_saved(self):
        self.check()
        params = self.env["ir.config_parameter"].sudo()
        self.assertNotEqual(params.get_param("ows_iot.mqtt_port"), str(self.port))


@tagged("post_install", "-at_install")
class TestConnectionTour(BrokerWithPasswords, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_broker()

    def test_test_connection_in_the_browser(self):
        """Settings → IoT: the saved settings connect; a wrong password typed into
        the form (not saved) is reported as such."""
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("ows_iot.mqtt_host", "127.0.0.1")
        params.set_param("ows_iot.mqtt_port", str(self.port))
        params.set_param("ows_iot.mqtt_username", USER)
        params.set_param("ows_iot.mqtt_password", PASSWORD)
        self.start_tour("/odoo/settings#ows_iot", "ows_iot_test_connection_tour", login="admin")
        self.assertEqual(params.get_param("ows_iot.mqtt_password"), PASSWORD)
