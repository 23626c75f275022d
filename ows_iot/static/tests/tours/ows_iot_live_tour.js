/** @odoo-module **/

import { registry } from "@web/core/registry";

/**
 * The device kanban is open; the test then feeds a reading of 1,234 W through the
 * leader's commit. The card must show it without the page being reloaded (the
 * marker set on the first step would be gone).
 */
registry.category("web_tour.tours").add("ows_iot_live_tour", {
    steps: () => [
        {
            content: "The saw's card shows no power yet",
            trigger: ".o_kanban_record:contains('Tour Live Saw') .o_ows_iot_power:contains('0')",
            run() {
                window.owsIotLiveTourMarker = true;
            },
        },
        {
            content: "The new reading appears on the open kanban",
            trigger: ".o_kanban_record:contains('Tour Live Saw') .o_ows_iot_power:contains('1,234')",
            timeout: 20000,
            run() {
                if (!window.owsIotLiveTourMarker) {
                    console.error("The kanban was reloaded instead of updated live");
                }
            },
        },
        {
            content: "The card shows the session that started",
            trigger: ".o_kanban_record:contains('Tour Live Saw'):contains('SES/')",
        },
    ],
});
