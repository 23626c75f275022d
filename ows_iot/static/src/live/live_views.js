/** @odoo-module **/

import { patch } from "@web/core/utils/patch";
import { FormController } from "@web/views/form/form_controller";
import { KanbanController } from "@web/views/kanban/kanban_controller";
import { ListController } from "@web/views/list/list_controller";
import { liveIds, useLiveUpdates } from "./live_service";

/**
 * Kanban, list and form views of devices and sessions follow the ingestion: on a
 * notification naming what they show, they reload it (never over unsaved edits).
 */
const LIVE_MODELS = ["mqtt.device", "mqtt.session"];

function shownIds(model) {
    const root = model.root;
    if (!root) {
        return new Set();
    }
    if (root.groups) {
        // Grouped: a change may move a record between groups; any record counts.
        return null;
    }
    return new Set((root.records || []).map((record) => record.resId));
}

function namesShown(payload, resModel, ids) {
    const named = liveIds(payload);
    const changed = resModel === "mqtt.device" ? named.devices : named.sessions;
    if (!changed.size) {
        return false;
    }
    if (resModel === "mqtt.session") {
        // A new session may belong on the page, wherever the others are.
        return true;
    }
    return ids === null || [...changed].some((id) => ids.has(id));
}

function useLiveMultiRecord(controller) {
    if (!LIVE_MODELS.includes(controller.props.resModel)) {
        return;
    }
    useLiveUpdates(
        function (payload) {
            return namesShown(payload, this.props.resModel, shownIds(this.model));
        },
        async function () {
            const root = this.model.root;
            if (root.editedRecord || (root.selection && root.selection.length)) {
                return; // the user is at work on it: the next notification will do
            }
            if (root.records && root.records.some((record) => record.dirty)) {
                return;
            }
            await this.model.load();
        }
    );
}

patch(KanbanController.prototype, {
    setup() {
        super.setup(...arguments);
        useLiveMultiRecord(this);
    },
});

patch(ListController.prototype, {
    setup() {
        super.setup(...arguments);
        useLiveMultiRecord(this);
    },
});

patch(FormController.prototype, {
    setup() {
        super.setup(...arguments);
        if (!LIVE_MODELS.includes(this.props.resModel)) {
            return;
        }
        useLiveUpdates(
            function (payload) {
                const record = this.model.root;
                if (!record || !record.resId) {
                    return false;
                }
                const named = liveIds(payload);
                const ids = this.props.resModel === "mqtt.device" ? named.devices : named.sessions;
                return ids.has(record.resId);
            },
            async function () {
                const record = this.model.root;
                if (await record.isDirty()) {
                    return;
                }
                await record.load();
            }
        );
    },
});
