from . import mqtt_device
from . import ows_iot_event
from . import mqtt_session
from . import res_config_settings
from . import ows_iot_runtime
