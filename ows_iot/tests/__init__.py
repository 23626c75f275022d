# Odoo runs the tests imported here; the pure tests in pure/ and e2e/ are run by
# pytest and must not be collected by Odoo.
if __name__ == "odoo.addons.ows_iot.tests":
    from . import (
        test_alerts,
        test_api,
        test_billing,
        test_demo_data,
        test_device,
        test_ingest,
        test_packaging,
        test_portal,
        test_retention,
        test_runtime,
        test_security,
        test_session_billing,
        test_settings_connection,
        test_tour,
        test_translation,
        test_views_report,
    )
