from . import mqtt_session_invoice_wizard
