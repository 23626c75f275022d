from . import ows_iot_billing_report_wizard
from . import mqtt_device_test_message
