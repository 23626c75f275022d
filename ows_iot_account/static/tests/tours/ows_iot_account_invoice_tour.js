/** @odoo-module **/

import { registry } from "@web/core/registry";

const DEVICE_NAME = "Invoice Tour Laser";

registry.category("web_tour.tours").add("ows_iot_account_invoice_tour", {
    url: "/odoo/action-ows_iot.mqtt_session_action",
    steps: () => [
        {
            content: "Search the sessions of the tour's machine",
            trigger: ".o_list_view .o_searchview_input",
            run: `edit ${DEVICE_NAME}`,
        },
        {
            content: "Search it as the device",
            trigger: ".o_searchview_autocomplete .o_menu_item:contains('Device')",
            run: "click",
        },
        {
            content: "Both of its sessions are listed",
            trigger: `.o_list_view .o_data_row:contains('${DEVICE_NAME}'):eq(1)`,
        },
        {
            content: "Select all listed sessions",
            trigger: ".o_list_view thead .o_list_record_selector input",
            run: "click",
        },
        {
            content: "Create their invoice",
            trigger: ".o_control_panel button:contains('Create Invoices')",
            run: "click",
        },
        {
            content: "The wizard counts the two sessions",
            trigger: ".modal .o_field_widget[name='session_count']:contains('2')",
        },
        {
            content: "One line per session",
            trigger: ".modal .o_field_widget[name='grouping'] input[data-value='session']",
            run: "click",
        },
        {
            content: "Create the invoice",
            trigger: ".modal button[name='action_create_invoices']",
            run: "click",
        },
        {
            content: "The draft invoice opens with a line per session",
            trigger: ".o_form_view .o_field_widget[name='invoice_line_ids'] .o_data_row:eq(1)",
        },
        {
            content: "Its smart button leads to the two sessions",
            trigger: ".o_form_view button[name='action_view_ows_iot_sessions']:contains('2')",
            run: "click",
        },
        {
            content: "The sessions are billed and show their invoice",
            trigger: ".o_list_view .o_data_row:contains('Billed'):eq(1)",
        },
    ],
});
