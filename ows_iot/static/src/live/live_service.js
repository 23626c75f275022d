/** @odoo-module **/

import { EventBus, onWillUnmount, useComponent } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";

/**
 * The live updates of ows_iot: the ingestion sends one `ows_iot/live` bus
 * notification per commit (see models/mqtt_device_live.py) naming the devices and
 * sessions it changed; this service passes them on to the views that show them.
 */
export const LIVE_NOTIFICATION = "ows_iot/live";
// No view reloads more often than this, however many commits arrive.
export const LIVE_MIN_INTERVAL_MS = 1000;

export const owsIotLiveService = {
    dependencies: ["bus_service"],
    start(env, { bus_service }) {
        const bus = new EventBus();
        bus_service.subscribe(LIVE_NOTIFICATION, (payload) => {
            bus.trigger("update", payload);
        });
        bus_service.start();
        return {
            /** Calls `callback(payload)` for each notification; returns the unsubscribe. */
            subscribe(callback) {
                const listener = (ev) => callback(ev.detail);
                bus.addEventListener("update", listener);
                return () => bus.removeEventListener("update", listener);
            },
        };
    },
};

registry.category("services").add("ows_iot_live", owsIotLiveService);

/** The device and session ids a notification names. */
export function liveIds(payload) {
    return {
        devices: new Set((payload.devices || []).map((d) => d.id)),
        sessions: new Set((payload.sessions || []).map((s) => s.id)),
    };
}

/**
 * In a component: `reload(payload)` runs for the notifications `isRelevant(payload)`
 * accepts, at most once per LIVE_MIN_INTERVAL_MS (the last one waits), and never
 * while a previous reload runs or after the component is gone.
 */
export function useLiveUpdates(isRelevant, reload) {
    const component = useComponent();
    const live = useService("ows_iot_live");
    let timer = null;
    let lastRun = 0;
    let running = false;
    let pending = null;
    let alive = true;

    async function run() {
        timer = null;
        if (!alive) {
            return;
        }
        if (running) {
            timer = setTimeout(run, LIVE_MIN_INTERVAL_MS);
            return;
        }
        const payload = pending;
        pending = null;
        running = true;
        lastRun = Date.now();
        try {
            await reload.call(component, payload);
        } finally {
            running = false;
        }
    }

    const unsubscribe = live.subscribe((payload) => {
        if (!alive || !isRelevant.call(component, payload)) {
            return;
        }
        pending = payload;
        if (!timer) {
            const wait = Math.max(0, lastRun + LIVE_MIN_INTERVAL_MS - Date.now());
            timer = setTimeout(run, wait);
        }
    });
    onWillUnmount(() => {
        alive = false;
        unsubscribe();
        if (timer) {
            clearTimeout(timer);
        }
    });
}
