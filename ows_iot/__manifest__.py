# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "OWS IoT Machine Sessions",
    "summary": "Turn Shelly power readings received over MQTT into billable machine sessions",
    "version": "18.0.1.0.0",
    "category": "Manufacturing",
    "author": "OWS IoT",
    "license": "LGPL-3",
    "depends": ["base", "mail", "product", "web"],
    "data": [
        "security/ows_iot_security.xml",
        "security/ir.model.access.csv",
        "security/ows_iot_rules.xml",
        "data/ir_sequence_data.xml",
        "data/ir_config_parameter_data.xml",
        "data/ir_cron_data.xml",
        "views/ows_iot_runtime_views.xml",
        "report/mqtt_session_billing_report.xml",
        "wizard/ows_iot_billing_report_wizard_views.xml",
        "views/ows_iot_event_views.xml",
        "views/mqtt_session_views.xml",
        "views/mqtt_device_views.xml",
        "views/res_config_settings_views.xml",
        "views/ows_iot_menus.xml",
    ],
    # Loaded server-wide (--load=base,web,ows_iot), this starts the MQTT ingestion.
    "post_load": "post_load",
    "assets": {
        "web.assets_backend": ["ows_iot/static/src/scss/ows_iot_backend.scss"],
        "web.report_assets_common": ["ows_iot/static/src/scss/billing_report.scss"],
        "web.assets_tests": ["ows_iot/static/tests/tours/**/*"],
    },
    "application": True,
}
