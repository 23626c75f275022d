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
    ],
    # Loaded server-wide (--load=base,web,ows_iot), this starts the MQTT ingestion.
    "post_load": "post_load",
    "application": True,
}
