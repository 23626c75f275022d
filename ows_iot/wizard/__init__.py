from . import ows_iot_billing_report_wizard
