/** @odoo-module **/

import { registry } from "@web/core/registry";

/**
 * Opened on the action of one menu: its view (or wizard) must load and no error
 * dialog may appear. A failing RPC fails the tour by itself (console error).
 */
registry.category("web_tour.tours").add("ows_iot_menu_tour", {
    steps: () => [
        {
            content: "The menu's view or wizard is shown",
            trigger:
                ".o_action_manager .o_view_controller, .o_action_manager .o_ows_iot_board_tiles, " +
                ".o_action_manager .o_ows_iot_timeline_body, .modal .o_form_view",
        },
        {
            content: "No error dialog",
            trigger: "body:not(:has(.o_error_dialog))",
        },
    ],
});
