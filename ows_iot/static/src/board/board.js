/** @odoo-module **/

import { Component, onMounted, onWillStart, onWillUnmount, useState } from "@odoo/owl";
import { deserializeDateTime } from "@web/core/l10n/dates";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { useLiveUpdates } from "../live/live_service";

const { DateTime } = luxon;

// The board asks again this often even without notifications (the minute cron
// brings the running sessions' amounts up to date).
const REFRESH_MS = 60000;

export function formatPower(watts) {
    const value = Math.abs(watts || 0);
    if (value >= 1000) {
        return `${(value / 1000).toLocaleString(undefined, {
            minimumFractionDigits: 2,
            maximumFractionDigits: 2,
        })} kW`;
    }
    return `${Math.round(value).toLocaleString()} W`;
}

export function formatElapsed(seconds) {
    const total = Math.max(0, Math.floor(seconds));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const secs = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return `${hours}:${pad(minutes)}:${pad(secs)}`;
}

/**
 * The machine board: one tile per machine, what it does now. Opened with
 * `kiosk` in the action's context it fills the screen without the menu, for a
 * display user on a wall screen.
 */
export class MachineBoard extends Component {
    static template = "ows_iot.MachineBoard";
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.kiosk = Boolean(this.props.action?.context?.kiosk);
        this.state = useState({
            tiles: [],
            companies: [],
            locations: [],
            companyId: "",
            location: "",
            now: DateTime.now(),
            loaded: false,
        });
        onWillStart(() => this.load());
        useLiveUpdates(
            (payload) => (payload.devices || []).length > 0,
            () => this.load()
        );
        onMounted(() => {
            this.clockTimer = setInterval(() => (this.state.now = DateTime.now()), 1000);
            this.refreshTimer = setInterval(() => this.load(), REFRESH_MS);
            if (this.kiosk) {
                document.body.classList.add("o_ows_iot_kiosk");
            }
        });
        onWillUnmount(() => {
            clearInterval(this.clockTimer);
            clearInterval(this.refreshTimer);
            document.body.classList.remove("o_ows_iot_kiosk");
        });
    }

    async load() {
        const data = await this.orm.call("mqtt.device", "get_board_data", [], {
            company_ids: this.state.companyId ? [Number(this.state.companyId)] : [],
            location: this.state.location || false,
        });
        this.state.tiles = data.tiles;
        this.state.companies = data.companies;
        this.state.locations = data.locations;
        this.state.loaded = true;
    }

    onCompanyChange(ev) {
        this.state.companyId = ev.target.value;
        this.load();
    }

    onLocationChange(ev) {
        this.state.location = ev.target.value;
        this.load();
    }

    tileClass(tile) {
        if (tile.out_of_order) {
            return "o_ows_iot_tile_out_of_order";
        }
        if (!tile.online) {
            return "o_ows_iot_tile_offline";
        }
        return `o_ows_iot_tile_${tile.state}`;
    }

    clock() {
        return this.state.now.toLocaleString(DateTime.TIME_SIMPLE);
    }

    power(tile) {
        return formatPower(tile.power_w);
    }

    since(tile) {
        const start = deserializeDateTime(tile.session.start);
        const today = this.state.now.hasSame(start, "day");
        return start.toLocaleString(today ? DateTime.TIME_SIMPLE : DateTime.DATETIME_SHORT);
    }

    elapsed(tile) {
        const start = deserializeDateTime(tile.session.start);
        return formatElapsed(this.state.now.diff(start, "seconds").seconds);
    }

    lastSeen(tile) {
        return deserializeDateTime(tile.last_seen).toRelative({ base: this.state.now });
    }

    openDevice(tile) {
        if (this.kiosk) {
            return;
        }
        this.action.doAction({
            type: "ir.actions.act_window",
            res_model: "mqtt.device",
            res_id: tile.id,
            views: [[false, "form"]],
        });
    }

    openWallScreen() {
        this.action.doAction("ows_iot.mqtt_device_action_board_kiosk");
    }

    toggleFullScreen() {
        if (document.fullscreenElement) {
            document.exitFullscreen();
        } else {
            document.documentElement.requestFullscreen?.();
        }
    }
}

registry.category("actions").add("ows_iot.board", MachineBoard);
