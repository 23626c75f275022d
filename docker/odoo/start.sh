#!/bin/bash
# Start the demo's Odoo: on the first start install ows_iot into the database, point
# it at the compose file's broker and make sure the two demo machines exist; then serve.
set -euo pipefail

DB="${OWS_IOT_DB:-ows}"
ODOO_CONF="${ODOO_CONF:-/etc/odoo/odoo.conf}"
DATA_DIR="${OWS_IOT_DATA_DIR:-/var/lib/odoo}"
MARKER="$DATA_DIR/.ows_iot_installed_$DB"
read -r -a odoo <<<"${ODOO_BIN:-odoo}"
options=(-c "$ODOO_CONF" -d "$DB")

if [[ ! -f "$MARKER" ]]; then
    echo "ows_iot demo: installing ows_iot into database $DB (first start, a few minutes)"
    "${odoo[@]}" "${options[@]}" -i ows_iot --stop-after-init --no-http
    "${odoo[@]}" shell "${options[@]}" --no-http <<'PY'
import os
params = env["ir.config_parameter"].sudo()
params.set_param("ows_iot.mqtt_host", os.environ.get("OWS_IOT_MQTT_HOST", "mosquitto"))
params.set_param("ows_iot.mqtt_port", os.environ.get("OWS_IOT_MQTT_PORT", "1883"))
params.set_param("ows_iot.mqtt_client_id", os.environ.get("OWS_IOT_MQTT_CLIENT_ID", "ows-iot-demo"))
Device = env["mqtt.device"].with_context(active_test=False)
for values in (
    {"name": "Shaper Origin", "device_id": "shellypmminig3-48f6eeb73a1c",
     "mqtt_topic": "shellypmminig3-48f6eeb73a1c", "parser_type": "shelly_gen2"},
    {"name": "3D Printer (Plug S)", "device_id": "shellyplug-s-7C87CEB4A1B2",
     "mqtt_topic": "shellies/shellyplug-s-7C87CEB4A1B2", "parser_type": "shelly_gen1"},
):
    if not Device.search([("device_id", "=", values["device_id"])]):
        Device.create(values)
env.cr.commit()
PY
    touch "$MARKER"
fi
# Say when Odoo answers, and where to log in: its own log does not.
URL="${OWS_IOT_DEMO_URL:-http://localhost:8069}"
HEALTH="${OWS_IOT_HEALTH_URL:-http://127.0.0.1:8069/web/health}"
(
    for _ in $(seq 1 "${OWS_IOT_READY_TIMEOUT_S:-600}"); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "$HEALTH" 2>/dev/null; then
            echo "ows_iot demo: Odoo is ready: open $URL and log in as admin / admin" \
                 "(IoT → Sessions; IoT → Configuration → Ingestion Status)"
            exit 0
        fi
        sleep 1
    done
    echo "ows_iot demo: Odoo did not answer on $HEALTH within ${OWS_IOT_READY_TIMEOUT_S:-600} s" >&2
) &
echo "ows_iot demo: starting Odoo on database $DB"
exec "${odoo[@]}" "${options[@]}" "$@"
