/** @odoo-module **/

import { rpc } from "@web/core/network/rpc";
import { registry } from "@web/core/registry";

const DEVICE_NAME = "Tour Laser Cutter";
const DEVICE_ID = "shellyplus1pm-tour01";

/**
 * The meter of the new device reports one finished session: 40 minutes, of which
 * 30 working, sent to the ingestion exactly as the MQTT runtime would.
 */
async function meterReportsSession() {
    const end = Math.floor(Date.now() / 1000) - 60;
    const start = end - 2400;
    const sessionId = "6b1f0c4e-1d2a-4b7e-9c3d-7a0e5f2b9c01";
    const [result] = await rpc("/web/dataset/call_kw/ows.iot.event/ingest_events", {
        model: "ows.iot.event",
        method: "ingest_events",
        args: [
            [
                {
                    event_uid: "tour-session-stopped-1",
                    event_type: "session_stopped",
                    device_id: DEVICE_ID,
                    session_id: sessionId,
                    timestamp: end + 15,
                    payload: {
                        start,
                        end,
                        status: "completed",
                        state: "idle",
                        power_w: 0,
                        working_s: 1800,
                        standby_s: 600,
                        total_s: 2400,
                        energy_wh: 750,
                        start_power_w: 45,
                        end_power_w: 40,
                        avg_power_w: 1125,
                        peak_power_w: 1900,
                        seq: 4,
                    },
                },
            ],
        ],
        kwargs: {},
    });
    if (result.status !== "created") {
        throw new Error(`The session was not ingested: ${result.message}`);
    }
}

registry.category("web_tour.tours").add("ows_iot_manager_tour", {
    url: "/odoo",
    steps: () => [
        {
            content: "Open the apps menu",
            trigger: ".o_navbar_apps_menu button",
            run: "click",
        },
        {
            content: "Open the IoT app",
            trigger: ".o_app[data-menu-xmlid='ows_iot.ows_iot_menu_root']",
            run: "click",
        },
        {
            content: "Go to the devices",
            trigger: ".o_main_navbar [data-menu-xmlid='ows_iot.ows_iot_menu_devices']",
            run: "click",
        },
        {
            content: "Create a device",
            trigger: ".o_kanban_view .o-kanban-button-new",
            run: "click",
        },
        {
            content: "Name the machine",
            trigger: ".o_form_view .o_field_widget[name='name'] input",
            run: `edit ${DEVICE_NAME}`,
        },
        {
            content: "Enter the meter's device ID",
            trigger: ".o_form_view .o_field_widget[name='device_id'] input",
            run: `edit ${DEVICE_ID}`,
        },
        {
            content: "Enter its MQTT topic prefix",
            trigger: ".o_form_view .o_field_widget[name='mqtt_topic'] input",
            run: `edit ${DEVICE_ID}`,
        },
        {
            content: "Open the billing settings",
            trigger: ".o_notebook .nav-link[name='billing']",
            run: "click",
        },
        {
            content: "Set the price per unit",
            trigger: ".o_form_view .o_field_widget[name='price_unit'] input",
            run: "edit 2.50",
        },
        {
            content: "Save the device",
            trigger: ".o_form_view .o_form_button_save",
            run: "click",
        },
        {
            content: "Wait until it is saved; then its meter reports a session",
            trigger: ".o_form_view .o_form_saved",
            run: meterReportsSession,
        },
        {
            content: "Back to the devices",
            trigger: ".o_back_button",
            run: "click",
        },
        {
            content: "Search the new device",
            trigger: ".o_kanban_view .o_searchview_input",
            run: `edit ${DEVICE_NAME}`,
        },
        {
            trigger: ".o_searchview_input",
            run: "press Enter",
        },
        {
            content: "The kanban shows the new device with its session",
            trigger: `.o_kanban_record:contains('${DEVICE_NAME}'):contains('1 Sessions')`,
        },
        {
            content: "Open its sessions",
            trigger: `.o_kanban_record:contains('${DEVICE_NAME}') a[name='action_view_sessions']`,
            run: "click",
        },
        {
            content: "The session is listed with its amount: 30 one-minute units at 2.50",
            trigger: ".o_list_view .o_data_row:contains('00:40'):contains('75.00')",
        },
        {
            content: "Open the reporting menu",
            trigger: ".o_main_navbar [data-menu-xmlid='ows_iot.ows_iot_menu_reporting']",
            run: "click",
        },
        {
            content: "Open the billing report",
            trigger: ".dropdown-item[data-menu-xmlid='ows_iot.ows_iot_menu_billing_report']",
            run: "click",
        },
        {
            content: "Start the period early enough",
            trigger: ".modal .o_field_widget[name='date_from'] input",
            run: "edit 01/01/2020",
        },
        {
            content: "Only this device",
            trigger: ".modal .o_field_widget[name='device_ids'] input",
            run: `edit ${DEVICE_NAME}`,
        },
        {
            trigger: `.o-autocomplete--dropdown-item a:contains('${DEVICE_NAME}')`,
            run: "click",
        },
        {
            content: "Exactly its session matches",
            trigger: ".modal .o_field_widget[name='session_count']:contains('1')",
        },
        {
            content: "Print the billing report",
            trigger: ".modal button[name='action_print']",
            run: "click",
        },
        {
            content: "The report is downloaded and the wizard closed",
            trigger: "body:not(:has(.modal))",
        },
    ],
});
