from . import mqtt_device, mqtt_session, ows_iot_event, res_config_settings
from . import ows_iot_runtime
from . import mqtt_device_demo
