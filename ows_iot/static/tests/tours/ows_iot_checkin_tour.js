/** @odoo-module **/

import { registry } from "@web/core/registry";

const DEVICE_NAME = "Tour Check-in Router";
const MEMBER = "Tour Member Ada";

registry.category("web_tour.tours").add("ows_iot_checkin_tour", {
    url: "/odoo/action-ows_iot.mqtt_device_action",
    steps: () => [
        {
            content: "Check in on the machine's card",
            trigger: `.o_kanban_record:contains('${DEVICE_NAME}') .o_ows_iot_check_in`,
            run: "click",
        },
        {
            content: "Choose the member",
            trigger: ".modal .o_field_widget[name='partner_id'] input",
            run: `edit ${MEMBER}`,
        },
        {
            content: "Pick the member from the list",
            trigger: `.o-autocomplete--dropdown-item a:contains('${MEMBER}')`,
            run: "click",
        },
        {
            content: "Check in",
            trigger: ".modal button[name='action_check_in']",
            run: "click",
        },
        {
            content: "The check-in was sent",
            trigger: `.o_notification:contains('${MEMBER}')`,
        },
        {
            content: "The wizard is closed",
            trigger: "body:not(:has(.modal))",
        },
        {
            content: "The card shows the member checked in",
            trigger: `.o_kanban_record:contains('${DEVICE_NAME}') .o_ows_iot_checkin:contains('${MEMBER}')`,
        },
    ],
});
