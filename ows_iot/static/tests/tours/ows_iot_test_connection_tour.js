/** @odoo-module **/

import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("ows_iot_test_connection_tour", {
    steps: () => [
        {
            content: "Test the saved broker settings",
            trigger: "button[name='action_ows_iot_test_connection']",
            run: "click",
        },
        {
            content: "The broker accepted the login",
            trigger: ".o_notification:has(.o_notification_bar.bg-success):contains('Connection works')",
        },
        {
            content: "Type a wrong password, without saving",
            trigger: ".o_field_widget[name='ows_iot_mqtt_password'] input",
            run: "edit wrong-password",
        },
        {
            content: "Test again",
            trigger: "button[name='action_ows_iot_test_connection']",
            run: "click",
        },
        {
            content: "The broker's reason is shown",
            trigger: ".o_notification:has(.o_notification_bar.bg-danger):contains('Wrong user name or password')",
        },
    ],
});
