from . import ows_iot_billing_report_wizard
from . import ows_iot_checkin_wizard
from . import ows_iot_session_assign_wizard
