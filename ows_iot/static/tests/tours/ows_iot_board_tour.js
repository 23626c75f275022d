/** @odoo-module **/

import { registry } from "@web/core/registry";

/**
 * The app opens on the board: a tile per machine with its state, power, user and
 * running session; the location filter; the wall screen without the menu.
 */
registry.category("web_tour.tours").add("ows_iot_board_tour", {
    steps: () => [
        {
            content: "Open the apps menu",
            trigger: ".o_navbar_apps_menu button",
            run: "click",
        },
        {
            content: "Open the IoT app",
            trigger: ".dropdown-menu .o_app[data-menu-xmlid='ows_iot.ows_iot_menu_root']",
            run: "click",
        },
        {
            content: "The app opens on the board: the running machine's tile",
            trigger:
                ".o_ows_iot_tile.o_ows_iot_tile_standby:contains('Tour Board Saw')" +
                ":contains('Tour Board Customer'):contains('50 W')",
        },
        {
            content: "Its running session: time so far and amount",
            trigger:
                ".o_ows_iot_tile:contains('Tour Board Saw') .o_ows_iot_tile_elapsed:contains(':')",
        },
        {
            content: "The out-of-order machine is marked",
            trigger:
                ".o_ows_iot_tile.o_ows_iot_tile_out_of_order:contains('Tour Board Laser')" +
                " .o_ows_iot_mark_out_of_order:contains('Lens broken')",
        },
        {
            content: "The silent machine is marked offline",
            trigger: ".o_ows_iot_tile:contains('Tour Board Drill') .o_ows_iot_mark_offline",
        },
        {
            content: "Filter by location",
            trigger: "select.o_ows_iot_board_location",
            run: "select Tour Hall B",
        },
        {
            content: "Only the machines of that location are left",
            trigger:
                ".o_ows_iot_board_tiles:not(:has(.o_ows_iot_tile:contains('Tour Board Saw')))" +
                ":has(.o_ows_iot_tile:contains('Tour Board Laser'))",
        },
        {
            content: "Open the wall screen",
            trigger: ".o_ows_iot_board_wall",
            run: "click",
        },
        {
            content: "The wall screen: the board without the menu",
            trigger: "body.o_ows_iot_kiosk .o_ows_iot_board_kiosk .o_ows_iot_tile",
        },
        {
            content: "The menu is hidden",
            trigger: "body.o_ows_iot_kiosk:not(:has(.o_main_navbar:visible))",
        },
    ],
});
