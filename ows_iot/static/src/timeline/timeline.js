/** @odoo-module **/

import { Component, onMounted, onWillStart, onWillUnmount, useState } from "@odoo/owl";
import { deserializeDateTime, serializeDateTime } from "@web/core/l10n/dates";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { useLiveUpdates } from "../live/live_service";
import { formatElapsed } from "../board/board";

const { DateTime } = luxon;

// Per cent of the row's width below which a bar shows no label.
const MIN_LABEL_WIDTH = 4;

const STATUS_CLASS = {
    running: "o_ows_iot_bar_running",
    completed: "o_ows_iot_bar_completed",
    timeout: "o_ows_iot_bar_timeout",
};

/**
 * The sessions of a day or a week, one row per machine: a bar per session from its
 * start to its end (a running one to now). Community only: drawn here, no gantt.
 */
export class SessionTimeline extends Component {
    static template = "ows_iot.SessionTimeline";
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.state = useState({
            scale: this.props.action?.context?.timeline_scale === "week" ? "week" : "day",
            anchor: DateTime.now().startOf("day"),
            devices: [],
            sessions: [],
            locations: [],
            location: "",
            now: DateTime.now(),
            loaded: false,
        });
        onWillStart(() => this.load());
        useLiveUpdates(
            (payload) => (payload.sessions || []).length > 0,
            () => this.load()
        );
        onMounted(() => {
            // Running sessions grow with the clock.
            this.clockTimer = setInterval(() => (this.state.now = DateTime.now()), 30000);
        });
        onWillUnmount(() => clearInterval(this.clockTimer));
    }

    get range() {
        const start =
            this.state.scale === "week"
                ? this.state.anchor.startOf("week")
                : this.state.anchor.startOf("day");
        const end = start.plus(this.state.scale === "week" ? { weeks: 1 } : { days: 1 });
        return { start, end };
    }

    async load() {
        const { start, end } = this.range;
        const deviceDomain = this.state.location ? [["location", "=", this.state.location]] : [];
        const [devices, allDevices] = await Promise.all([
            this.orm.searchRead("mqtt.device", deviceDomain, ["name", "location"], {
                order: "name, id",
            }),
            this.orm.searchRead("mqtt.device", [["location", "!=", false]], ["location"]),
        ]);
        const sessions = await this.orm.searchRead(
            "mqtt.session",
            [
                ["device_id", "in", devices.map((d) => d.id)],
                ["start_time", "<", serializeDateTime(end)],
                "|",
                ["end_time", "=", false],
                ["end_time", ">", serializeDateTime(start)],
            ],
            ["device_id", "display_name", "start_time", "end_time", "status", "partner_id"],
            { order: "start_time" }
        );
        this.state.devices = devices;
        this.state.sessions = sessions;
        this.state.locations = [...new Set(allDevices.map((d) => d.location))].sort();
        this.state.now = DateTime.now();
        this.state.loaded = true;
    }

    // -- navigation ---------------------------------------------------------------

    setScale(scale) {
        this.state.scale = scale;
        this.load();
    }

    move(step) {
        const unit = this.state.scale === "week" ? { weeks: step } : { days: step };
        this.state.anchor = this.state.anchor.plus(unit);
        this.load();
    }

    today() {
        this.state.anchor = DateTime.now().startOf("day");
        this.load();
    }

    onLocationChange(ev) {
        this.state.location = ev.target.value;
        this.load();
    }

    // -- drawing ------------------------------------------------------------------

    get title() {
        const { start, end } = this.range;
        if (this.state.scale === "day") {
            return start.toLocaleString({ weekday: "long", day: "numeric", month: "long", year: "numeric" });
        }
        const last = end.minus({ days: 1 });
        return `${start.toLocaleString(DateTime.DATE_MED)} – ${last.toLocaleString(DateTime.DATE_MED)}`;
    }

    get ticks() {
        const { start, end } = this.range;
        const span = end.diff(start).as("milliseconds");
        const ticks = [];
        if (this.state.scale === "day") {
            for (let hour = 0; hour < 24; hour += 2) {
                const at = start.plus({ hours: hour });
                ticks.push({
                    key: hour,
                    left: (at.diff(start).as("milliseconds") / span) * 100,
                    label: at.toLocaleString(DateTime.TIME_SIMPLE),
                });
            }
        } else {
            for (let day = 0; day < 7; day++) {
                const at = start.plus({ days: day });
                ticks.push({
                    key: day,
                    left: (day / 7) * 100,
                    label: at.toLocaleString({ weekday: "short", day: "numeric", month: "numeric" }),
                });
            }
        }
        return ticks;
    }

    get nowLeft() {
        const { start, end } = this.range;
        const now = this.state.now;
        if (now < start || now >= end) {
            return null;
        }
        return (now.diff(start).as("milliseconds") / end.diff(start).as("milliseconds")) * 100;
    }

    rows() {
        const { start, end } = this.range;
        const span = end.diff(start).as("milliseconds");
        const byDevice = {};
        for (const session of this.state.sessions) {
            const from = deserializeDateTime(session.start_time);
            const to = session.end_time
                ? deserializeDateTime(session.end_time)
                : session.status === "running"
                ? this.state.now
                : from;
            const left = Math.max(0, from.diff(start).as("milliseconds"));
            const right = Math.min(span, to.diff(start).as("milliseconds"));
            if (right < 0 || left > span) {
                continue;
            }
            const partner = session.partner_id ? session.partner_id[1] : "";
            const duration = formatElapsed(to.diff(from).as("seconds"));
            const until = session.end_time
                ? to.toLocaleString(DateTime.TIME_SIMPLE)
                : _t("running");
            const width = (Math.max(0, right - left) / span) * 100;
            (byDevice[session.device_id[0]] ||= []).push({
                id: session.id,
                left: (left / span) * 100,
                width,
                className: STATUS_CLASS[session.status] || "",
                // Narrow bars carry no label (a cut letter reads as noise); the
                // tooltip has it all.
                label: width >= MIN_LABEL_WIDTH ? partner || session.display_name : "",
                title: [
                    session.display_name,
                    partner,
                    `${from.toLocaleString(DateTime.DATETIME_SHORT)} – ${until}`,
                    duration,
                ]
                    .filter(Boolean)
                    .join("\n"),
            });
        }
        return this.state.devices.map((device) => ({
            device,
            bars: byDevice[device.id] || [],
        }));
    }

    openSession(bar) {
        this.action.doAction({
            type: "ir.actions.act_window",
            res_model: "mqtt.session",
            res_id: bar.id,
            views: [[false, "form"]],
        });
    }
}

registry.category("actions").add("ows_iot.timeline", SessionTimeline);
