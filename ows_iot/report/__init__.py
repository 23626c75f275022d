from . import mqtt_session_billing_report
