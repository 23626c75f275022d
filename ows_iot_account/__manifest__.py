# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "OWS IoT Machine Sessions - Invoicing",
    "summary": "Create customer invoices from IoT machine sessions",
    "version": "18.0.1.0.0",
    "category": "Accounting/Accounting",
    "author": "OWS IoT",
    "license": "LGPL-3",
    "website": "https://example.org/ows_iot",
    "development_status": "Beta",
    "depends": ["ows_iot", "account"],
    "data": [
        "security/ir.model.access.csv",
        "data/ir_cron_data.xml",
        "wizard/mqtt_session_invoice_wizard_views.xml",
        "views/mqtt_session_views.xml",
        "views/account_move_views.xml",
        "views/mqtt_session_portal_templates.xml",
    ],
    "assets": {
        "web.assets_tests": ["ows_iot_account/static/tests/tours/**/*"],
    },
    "auto_install": True,
}
