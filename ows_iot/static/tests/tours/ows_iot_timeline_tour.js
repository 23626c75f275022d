/** @odoo-module **/

import { registry } from "@web/core/registry";

/**
 * The timeline: a row per machine, a bar per session of the day; the week; a bar
 * opens its session.
 */
registry.category("web_tour.tours").add("ows_iot_timeline_tour", {
    steps: () => [
        {
            content: "Open the timeline",
            trigger: ".o_main_navbar .o_menu_sections [data-menu-xmlid='ows_iot.ows_iot_menu_timeline']",
            run: "click",
        },
        {
            content: "A row per machine, the idle one included",
            trigger:
                ".o_ows_iot_timeline_body:has(.o_ows_iot_timeline_row:contains('Tour Timeline Saw'))" +
                ":has(.o_ows_iot_timeline_row:contains('Tour Timeline Idle'))",
        },
        {
            content: "Today's two sessions of the saw, the running one to now",
            trigger:
                ".o_ows_iot_timeline_row:contains('Tour Timeline Saw')" +
                ":has(.o_ows_iot_bar_completed):has(.o_ows_iot_bar_running)",
        },
        {
            content: "The idle machine has no bar today",
            trigger:
                ".o_ows_iot_timeline_row:contains('Tour Timeline Idle'):not(:has(.o_ows_iot_timeline_bar))",
        },
        {
            content: "Switch to the week",
            trigger: ".o_ows_iot_timeline_week",
            run: "click",
        },
        {
            content: "Seven days on the axis, the saw's sessions still shown",
            trigger:
                ".o_ows_iot_timeline_axis .o_ows_iot_timeline_tick:nth-child(7)" +
                ":not(:has(~ .o_ows_iot_timeline_tick))",
        },
        {
            content: "The saw's bars in the week",
            trigger: ".o_ows_iot_timeline_row:contains('Tour Timeline Saw') .o_ows_iot_bar_running",
        },
        {
            content: "Back to the day",
            trigger: ".o_ows_iot_timeline_day",
            run: "click",
        },
        {
            content: "Go to yesterday",
            trigger: ".o_ows_iot_timeline_prev",
            run: "click",
        },
        {
            content: "Yesterday the idle machine worked",
            trigger:
                ".o_ows_iot_timeline_row:contains('Tour Timeline Idle') .o_ows_iot_bar_completed",
        },
        {
            content: "Back to today",
            trigger: ".o_ows_iot_timeline_today",
            run: "click",
        },
        {
            content: "Today again: the idle machine has no bar",
            trigger:
                ".o_ows_iot_timeline_row:contains('Tour Timeline Idle'):not(:has(.o_ows_iot_timeline_bar))",
        },
        {
            content: "Open the completed session from its bar",
            trigger: ".o_ows_iot_timeline_row:contains('Tour Timeline Saw') .o_ows_iot_bar_completed",
            run: "click",
        },
        {
            content: "Its form opens",
            trigger: ".o_form_view .o_field_widget[name='device_id']:contains('Tour Timeline Saw')",
        },
    ],
});
