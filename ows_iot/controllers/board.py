# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The wall screen's address: the machine board full screen, without the menu."""

from odoo import http
from odoo.http import request

KIOSK_ACTION = "ows_iot.mqtt_device_action_board_kiosk"


class OwsIotBoard(http.Controller):
    @http.route("/ows_iot/board", type="http", auth="user", methods=["GET"])
    def board(self):
        """Log in (a display user of the IoT users' group), then the board fills the
        screen; bookmark this address on the wall screen's browser."""
        return request.redirect(f"/odoo/action-{KIOSK_ACTION}")
