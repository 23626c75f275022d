"""Real-format messages of each meter model, with the vendor documentation they follow.

Each entry: the model, its source, the device configuration, the message (topic and
payload) and what the parser must read from it: ``power`` (W), ``component``,
``online`` (True/False), ``ts`` (the device's timestamp), ``liveness`` (no power,
but a sign of life) or ``drop`` (the reason).
"""

import json

GEN2_NOTIFICATIONS = "https://shelly-api-docs.shelly.cloud/gen2/General/Notifications"
GEN2_EM = "https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/EM"
GEN2_EM1 = "https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/EM1"
GEN2_RGBW = "https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/RGBW"
GEN2_RGB = "https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/RGB"
GEN2_CCT = "https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/CCT"
GEN2_MQTT = "https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Mqtt"
GEN1_PLUG = "https://shelly-api-docs.shelly.cloud/gen1/#shelly-plug-plugs-mqtt"
GEN1_SHELLY2 = "https://shelly-api-docs.shelly.cloud/gen1/#shelly2-mqtt"
GEN1_3EM = "https://shelly-api-docs.shelly.cloud/gen1/#shelly-3em-mqtt"
GEN1_RGBW2 = "https://shelly-api-docs.shelly.cloud/gen1/#shelly-rgbw2-color-mqtt"
GEN1_RGBW2_WHITE = "https://shelly-api-docs.shelly.cloud/gen1/#shelly-rgbw2-white-mqtt"
GEN1_BULB = "https://shelly-api-docs.shelly.cloud/gen1/#shelly-bulb-mqtt"
GEN1_DUO = "https://shelly-api-docs.shelly.cloud/gen1/#shelly-duo-mqtt"
GEN1_VINTAGE = "https://shelly-api-docs.shelly.cloud/gen1/#shelly-vintage-mqtt"
GEN1_COMMON = "https://shelly-api-docs.shelly.cloud/gen1/#mqtt-support"
TASMOTA_MQTT = "https://tasmota.github.io/docs/MQTT/"
TASMOTA_ENERGY = "https://tasmota.github.io/docs/Power-Monitoring-Calibration/"
TASMOTA_STATUS = "https://tasmota.github.io/docs/JSON-Status-Responses/"
Z2M_TOPICS = "https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html"
Z2M_AVAILABILITY = "https://www.zigbee2mqtt.io/guide/configuration/device-availability.html"
ESPHOME_MQTT = "https://esphome.io/components/mqtt.html"

PLUS1PM = "shellyplus1pm-441793d69718"
PRO3EM = "shellypro3em-08f9e0e5a1b2"
RGBWPM = "shellyplusrgbwpm-a0a3b3c4d5e6"
PRORGBWW = "shellyprorgbwwpm-b0b1b2b3b4b5"
PLUGS = "shellyplug-s-7C87CEB4A1B2"
SHELLY2 = "shelly2-3C71BF1A2B3C"
EM3 = "shellyem3-ECFABCC7F0A2"
RGBW2 = "shellyrgbw2-E8DB84807745"
BULB = "shellybulb-D8BFC01A2B3C"
DUO = "shellybulbduo-B2C3D4E5F6A7"
VINTAGE = "shellyvintage-C1D2E3F4A5B6"


def _json(data):
    return json.dumps(data, separators=(",", ":")).encode()


def gen2(prefix, **extra):
    return {"device_id": prefix, "mqtt_topic": prefix, "parser_type": "shelly_gen2", **extra}


def gen1(device_id, **extra):
    return {
        "device_id": device_id,
        "mqtt_topic": f"shellies/{device_id}",
        "parser_type": "shelly_gen1",
        **extra,
    }


TASMOTA = {"device_id": "compressor", "mqtt_topic": "tasmota_A1B2C3", "parser_type": "tasmota"}
TASMOTA_SWAPPED = dict(TASMOTA, full_topic="%topic%/%prefix%/")
TASMOTA_3CH = {"device_id": "saw", "mqtt_topic": "tasmota_PZEM3", "parser_type": "tasmota"}
Z2M = {
    "device_id": "0xa4c138d1e2f3a4b5",
    "mqtt_topic": "zigbee2mqtt/laser plug",
    "parser_type": "zigbee2mqtt",
}
ESPHOME = {"device_id": "lathe", "mqtt_topic": "lathe", "parser_type": "esphome"}


def rpc(prefix, method, params):
    return _json({"src": prefix, "dst": f"{prefix}/events", "method": method, "params": params})


TASMOTA_SENSOR = {
    "Time": "2024-03-01T10:15:00",
    "ENERGY": {
        "TotalStartTime": "2023-10-01T12:00:00",
        "Total": 12.345,
        "Yesterday": 1.204,
        "Today": 0.412,
        "Period": 2,
        "Power": 245,
        "ApparentPower": 260,
        "ReactivePower": 87,
        "Factor": 0.94,
        "Voltage": 231,
        "Current": 1.124,
    },
}
TASMOTA_SENSOR_3CH = {
    "Time": "2024-03-01T10:15:00",
    "ENERGY": {
        "TotalStartTime": "2023-10-01T12:00:00",
        "Total": [120.5, 118.2, 119.9],
        "Yesterday": [4.1, 4.0, 4.2],
        "Today": [1.2, 1.1, 1.3],
        "Period": [20, 19, 20],
        "Power": [1200, 1150, 1180],
        "ApparentPower": [1260, 1210, 1240],
        "ReactivePower": [380, 370, 375],
        "Factor": [0.95, 0.95, 0.95],
        "Voltage": [230, 231, 229],
        "Current": [5.478, 5.238, 5.414],
    },
}

GOLDEN = [
    # -- Shelly Gen2+ ---------------------------------------------------------------
    {
        "model": "Shelly Plus 1PM NotifyStatus",
        "source": GEN2_NOTIFICATIONS,
        "config": gen2(PLUS1PM),
        "topic": f"{PLUS1PM}/events/rpc",
        "payload": rpc(
            PLUS1PM, "NotifyStatus", {"ts": 1709288100.55, "switch:0": {"id": 0, "apower": 152.3}}
        ),
        "power": 152.3,
        "component": "switch:0",
        "ts": 1709288100.55,
    },
    {
        "model": "Shelly Plus 1PM NotifyEvent",
        "source": GEN2_NOTIFICATIONS,
        "config": gen2(PLUS1PM),
        "topic": f"{PLUS1PM}/events/rpc",
        "payload": rpc(
            PLUS1PM,
            "NotifyEvent",
            {
                "ts": 1709288101.0,
                "events": [
                    {"component": "input:0", "id": 0, "event": "single_push", "ts": 1709288101.0}
                ],
            },
        ),
        "liveness": True,
        "ts": 1709288101.0,
    },
    {
        "model": "Shelly Plus 1PM online (last will)",
        "source": GEN2_MQTT,
        "config": gen2(PLUS1PM),
        "topic": f"{PLUS1PM}/online",
        "payload": b"false",
        "online": False,
    },
    {
        "model": "Shelly Pro 3EM triphase em:0",
        "source": GEN2_EM,
        "config": gen2(PRO3EM),
        "topic": f"{PRO3EM}/status/em:0",
        "payload": _json(
            {
                "id": 0,
                "a_current": 4.029,
                "a_voltage": 236.1,
                "a_act_power": 951.2,
                "a_aprt_power": 951.9,
                "a_pf": 1,
                "b_current": 4.027,
                "b_voltage": 236.201,
                "b_act_power": -951.1,
                "b_aprt_power": 951.8,
                "b_pf": 1,
                "c_current": 3.03,
                "c_voltage": 236.402,
                "c_act_power": 715.4,
                "c_aprt_power": 716.2,
                "c_pf": 1,
                "n_current": 11.029,
                "total_current": 11.083,
                "total_act_power": 715.5,
                "total_aprt_power": 2619.9,
            }
        ),
        "power": 715.5,
        "component": "em:0",
    },
    {
        "model": "Shelly Pro 3EM monophase em1:1 (all phases)",
        "source": GEN2_EM1,
        "config": gen2(PRO3EM, channel="em1:*"),
        "topic": f"{PRO3EM}/events/rpc",
        "payload": rpc(
            PRO3EM,
            "NotifyStatus",
            {
                "ts": 1709288100.0,
                "em1:1": {
                    "id": 1,
                    "current": 2.2,
                    "voltage": 230.1,
                    "act_power": 440.5,
                    "aprt_power": 460.3,
                    "pf": 0.96,
                    "freq": 50,
                    "calibration": "factory",
                },
            },
        ),
        "power": 440.5,
        "component": "em1:*",
        "ts": 1709288100.0,
    },
    {
        "model": "Shelly Pro 3EM monophase status/em1:2 (all phases)",
        "source": GEN2_EM1,
        "config": gen2(PRO3EM, channel="em1:*"),
        "topic": f"{PRO3EM}/status/em1:2",
        "payload": _json(
            {
                "id": 2,
                "current": 1.1,
                "voltage": 229.4,
                "act_power": 210.0,
                "aprt_power": 230.2,
                "pf": 0.91,
                "freq": 50,
                "calibration": "factory",
            }
        ),
        "power": 210.0,
        "component": "em1:*",
    },
    {
        "model": "Shelly Plus RGBW PM rgbw:0",
        "source": GEN2_RGBW,
        "config": gen2(RGBWPM),
        "topic": f"{RGBWPM}/status/rgbw:0",
        "payload": _json(
            {
                "id": 0,
                "source": "init",
                "output": True,
                "brightness": 100,
                "rgb": [255, 255, 255],
                "white": 0,
                "temperature": {"tC": 45.2, "tF": 113.4},
                "aenergy": {"total": 0.512, "by_minute": [0, 0, 0], "minute_ts": 1709288100},
                "apower": 12.4,
                "voltage": 23.9,
                "current": 0.52,
            }
        ),
        "power": 12.4,
        "component": "rgbw:0",
    },
    {
        "model": "Shelly Plus RGBW PM rgb:0 NotifyStatus",
        "source": GEN2_RGB,
        "config": gen2(RGBWPM),
        "topic": f"{RGBWPM}/events/rpc",
        "payload": rpc(
            RGBWPM,
            "NotifyStatus",
            {"ts": 1709288102.3, "rgb:0": {"id": 0, "apower": 18.9, "current": 0.79}},
        ),
        "power": 18.9,
        "component": "rgb:0",
        "ts": 1709288102.3,
    },
    {
        "model": "Shelly Pro RGBWW PM cct:1",
        "source": GEN2_CCT,
        "config": gen2(PRORGBWW, channel="cct:1"),
        "topic": f"{PRORGBWW}/status/cct:1",
        "payload": _json(
            {
                "id": 1,
                "source": "WS_in",
                "output": True,
                "brightness": 80,
                "ct": 4000,
                "apower": 9.6,
                "voltage": 24.1,
                "current": 0.4,
                "aenergy": {"total": 1.2, "by_minute": [0, 0, 0], "minute_ts": 1709288100},
            }
        ),
        "power": 9.6,
        "component": "cct:1",
    },
    # -- Shelly Gen1 ----------------------------------------------------------------
    {
        "model": "Shelly Plug S relay/0/power",
        "source": GEN1_PLUG,
        "config": gen1(PLUGS),
        "topic": f"shellies/{PLUGS}/relay/0/power",
        "payload": b"42.47",
        "power": 42.47,
        "component": "relay:0",
    },
    {
        "model": "Shelly Plug S relay/0/energy",
        "source": GEN1_PLUG,
        "config": gen1(PLUGS),
        "topic": f"shellies/{PLUGS}/relay/0/energy",
        "payload": b"15201",
        "liveness": True,
    },
    {
        "model": "Shelly 2 (SHSW-21) relay/power",
        "source": GEN1_SHELLY2,
        "config": gen1(SHELLY2),
        "topic": f"shellies/{SHELLY2}/relay/power",
        "payload": b"120.50",
        "power": 120.5,
        "component": "relay",
    },
    {
        "model": "Shelly 3EM emeter/1/power (all phases)",
        "source": GEN1_3EM,
        "config": gen1(EM3, channel="emeter/*"),
        "topic": f"shellies/{EM3}/emeter/1/power",
        "payload": b"1201.37",
        "power": 1201.37,
        "component": "emeter:*",
    },
    {
        "model": "Shelly 3EM emeter/1/voltage",
        "source": GEN1_3EM,
        "config": gen1(EM3, channel="emeter/*"),
        "topic": f"shellies/{EM3}/emeter/1/voltage",
        "payload": b"231.62",
        "liveness": True,
    },
    {
        "model": "Shelly RGBW2 color/0/status",
        "source": GEN1_RGBW2,
        "config": gen1(RGBW2),
        "topic": f"shellies/{RGBW2}/color/0/status",
        "payload": _json(
            {
                "ison": True,
                "mode": "color",
                "timer_started": 0,
                "timer_duration": 0,
                "timer_remaining": 0,
                "red": 255,
                "green": 0,
                "blue": 0,
                "white": 0,
                "gain": 100,
                "effect": 0,
                "power": 8.64,
                "overpower": False,
            }
        ),
        "power": 8.64,
        "component": "color:0",
    },
    {
        "model": "Shelly RGBW2 color/0/power",
        "source": GEN1_RGBW2,
        "config": gen1(RGBW2),
        "topic": f"shellies/{RGBW2}/color/0/power",
        "payload": b"8.64",
        "power": 8.64,
        "component": "color:0",
    },
    {
        "model": "Shelly RGBW2 white/2/status",
        "source": GEN1_RGBW2_WHITE,
        "config": gen1(RGBW2, channel="white/2"),
        "topic": f"shellies/{RGBW2}/white/2/status",
        "payload": _json(
            {
                "ison": True,
                "mode": "white",
                "timer_started": 0,
                "timer_duration": 0,
                "timer_remaining": 0,
                "brightness": 50,
                "power": 3.2,
                "overpower": False,
            }
        ),
        "power": 3.2,
        "component": "white:2",
    },
    {
        "model": "Shelly RGBW2 white/1/power",
        "source": GEN1_RGBW2_WHITE,
        "config": gen1(RGBW2),
        "topic": f"shellies/{RGBW2}/white/1/power",
        "payload": b"4.10",
        "power": 4.1,
        "component": "white:1",
    },
    {
        "model": "Shelly RGBW2 color/0/set (a command)",
        "source": GEN1_RGBW2,
        "config": gen1(RGBW2),
        "topic": f"shellies/{RGBW2}/color/0/set",
        "payload": _json({"turn": "on", "red": 255}),
        "drop": "unknown_topic",
    },
    {
        "model": "Shelly Bulb color/0/power",
        "source": GEN1_BULB,
        "config": gen1(BULB),
        "topic": f"shellies/{BULB}/color/0/power",
        "payload": b"9.00",
        "power": 9.0,
        "component": "color:0",
    },
    {
        "model": "Shelly Duo light/0/status",
        "source": GEN1_DUO,
        "config": gen1(DUO),
        "topic": f"shellies/{DUO}/light/0/status",
        "payload": _json(
            {
                "ison": True,
                "has_timer": False,
                "timer_started": 0,
                "timer_duration": 0,
                "timer_remaining": 0,
                "brightness": 100,
                "white": 60,
                "temp": 4200,
                "power": 8.4,
            }
        ),
        "power": 8.4,
        "component": "light:0",
    },
    {
        "model": "Shelly Vintage light/0/power",
        "source": GEN1_VINTAGE,
        "config": gen1(VINTAGE),
        "topic": f"shellies/{VINTAGE}/light/0/power",
        "payload": b"6.80",
        "power": 6.8,
        "component": "light:0",
    },
    {
        "model": "Shelly Gen1 info",
        "source": GEN1_COMMON,
        "config": gen1(PLUGS),
        "topic": f"shellies/{PLUGS}/info",
        "payload": _json(
            {
                "wifi_sta": {
                    "connected": True,
                    "ssid": "workshop",
                    "ip": "192.168.1.20",
                    "rssi": -58,
                },
                "relays": [{"ison": True}],
                "meters": [{"power": 42.47, "is_valid": True}],
                "uptime": 18961,
            }
        ),
        "liveness": True,
    },
    {
        "model": "Shelly Gen1 announce",
        "source": GEN1_COMMON,
        "config": gen1(PLUGS),
        "topic": f"shellies/{PLUGS}/announce",
        "payload": _json(
            {
                "id": PLUGS,
                "model": "SHPLG-S",
                "mac": "7C87CEB4A1B2",
                "ip": "192.168.1.20",
                "new_fw": False,
                "fw_ver": "20230913-114008/v1.14.0-gcb84623",
            }
        ),
        "liveness": True,
    },
    {
        "model": "Shelly Gen1 online (last will)",
        "source": GEN1_COMMON,
        "config": gen1(PLUGS),
        "topic": f"shellies/{PLUGS}/online",
        "payload": b"false",
        "online": False,
    },
    # -- Tasmota --------------------------------------------------------------------
    {
        "model": "Tasmota Sonoff POW R2 tele/SENSOR",
        "source": TASMOTA_ENERGY,
        "config": TASMOTA,
        "topic": "tele/tasmota_A1B2C3/SENSOR",
        "payload": _json(TASMOTA_SENSOR),
        "power": 245.0,
        "component": "ENERGY.Power",
    },
    {
        "model": "Tasmota %topic%/%prefix%/ order tele/SENSOR",
        "source": TASMOTA_MQTT,
        "config": TASMOTA_SWAPPED,
        "topic": "tasmota_A1B2C3/tele/SENSOR",
        "payload": _json(TASMOTA_SENSOR),
        "power": 245.0,
        "component": "ENERGY.Power",
    },
    {
        "model": "Tasmota PZEM-004T x3 tele/SENSOR (summed)",
        "source": TASMOTA_ENERGY,
        "config": TASMOTA_3CH,
        "topic": "tele/tasmota_PZEM3/SENSOR",
        "payload": _json(TASMOTA_SENSOR_3CH),
        "power": 3530.0,
        "component": "ENERGY.Power",
    },
    {
        "model": "Tasmota PZEM-004T x3 tele/SENSOR (channel 1)",
        "source": TASMOTA_ENERGY,
        "config": dict(TASMOTA_3CH, channel="1"),
        "topic": "tele/tasmota_PZEM3/SENSOR",
        "payload": _json(TASMOTA_SENSOR_3CH),
        "power": 1150.0,
        "component": "ENERGY.Power.1",
    },
    {
        "model": "Tasmota stat/STATUS10",
        "source": TASMOTA_STATUS,
        "config": TASMOTA,
        "topic": "stat/tasmota_A1B2C3/STATUS10",
        "payload": _json({"StatusSNS": TASMOTA_SENSOR}),
        "power": 245.0,
        "component": "ENERGY.Power",
    },
    {
        "model": "Tasmota tele/STATE",
        "source": TASMOTA_MQTT,
        "config": TASMOTA,
        "topic": "tele/tasmota_A1B2C3/STATE",
        "payload": _json(
            {
                "Time": "2024-03-01T10:15:00",
                "Uptime": "0T01:02:03",
                "UptimeSec": 3723,
                "Heap": 27,
                "SleepMode": "Dynamic",
                "Sleep": 50,
                "LoadAvg": 19,
                "MqttCount": 1,
                "POWER": "ON",
                "Wifi": {
                    "AP": 1,
                    "SSId": "workshop",
                    "RSSI": 78,
                    "Signal": -61,
                    "LinkCount": 1,
                    "Downtime": "0T00:00:03",
                },
            }
        ),
        "liveness": True,
    },
    {
        "model": "Tasmota tele/LWT Offline",
        "source": TASMOTA_MQTT,
        "config": TASMOTA,
        "topic": "tele/tasmota_A1B2C3/LWT",
        "payload": b"Offline",
        "online": False,
    },
    {
        "model": "Tasmota tele/LWT Online",
        "source": TASMOTA_MQTT,
        "config": TASMOTA,
        "topic": "tele/tasmota_A1B2C3/LWT",
        "payload": b"Online",
        "online": True,
    },
    {
        "model": "Tasmota %topic%/%prefix%/ cmnd (a command)",
        "source": TASMOTA_MQTT,
        "config": TASMOTA_SWAPPED,
        "topic": "tasmota_A1B2C3/cmnd/POWER",
        "payload": b"OFF",
        "drop": "unknown_topic",
    },
    # -- Zigbee2MQTT ----------------------------------------------------------------
    {
        "model": "Zigbee2MQTT TS011F plug state",
        "source": Z2M_TOPICS,
        "config": Z2M,
        "topic": "zigbee2mqtt/laser plug",
        "payload": _json(
            {
                "state": "ON",
                "power": 1530.2,
                "voltage": 229,
                "current": 6.68,
                "energy": 12.34,
                "linkquality": 120,
                "last_seen": 1709288100123,
            }
        ),
        "power": 1530.2,
        "component": "power",
        "ts": 1709288100.123,
    },
    {
        "model": "Zigbee2MQTT three-phase meter power_l1..3",
        "source": Z2M_TOPICS,
        "config": Z2M,
        "topic": "zigbee2mqtt/laser plug",
        "payload": _json(
            {
                "power_l1": 1200.5,
                "power_l2": 1100,
                "power_l3": 1150,
                "voltage_l1": 230.1,
                "voltage_l2": 231.0,
                "voltage_l3": 229.8,
                "energy": 4312.2,
                "linkquality": 96,
            }
        ),
        "power": 3450.5,
        "component": "power_l1..3",
    },
    {
        "model": "Zigbee2MQTT availability offline",
        "source": Z2M_AVAILABILITY,
        "config": Z2M,
        "topic": "zigbee2mqtt/laser plug/availability",
        "payload": _json({"state": "offline"}),
        "online": False,
    },
    {
        "model": "Zigbee2MQTT availability online",
        "source": Z2M_AVAILABILITY,
        "config": Z2M,
        "topic": "zigbee2mqtt/laser plug/availability",
        "payload": _json({"state": "online"}),
        "online": True,
    },
    {
        "model": "Zigbee2MQTT legacy availability offline",
        "source": Z2M_AVAILABILITY,
        "config": Z2M,
        "topic": "zigbee2mqtt/laser plug/availability",
        "payload": b"offline",
        "online": False,
    },
    {
        "model": "Zigbee2MQTT /set (a command)",
        "source": Z2M_TOPICS,
        "config": Z2M,
        "topic": "zigbee2mqtt/laser plug/set",
        "payload": _json({"state": "OFF"}),
        "drop": "unknown_topic",
    },
    {
        "model": "Zigbee2MQTT /get (a command)",
        "source": Z2M_TOPICS,
        "config": Z2M,
        "topic": "zigbee2mqtt/laser plug/get",
        "payload": _json({"state": ""}),
        "drop": "unknown_topic",
    },
    # -- ESPHome --------------------------------------------------------------------
    {
        "model": "ESPHome power sensor state",
        "source": ESPHOME_MQTT,
        "config": ESPHOME,
        "topic": "lathe/sensor/power/state",
        "payload": b"1534.2",
        "power": 1534.2,
        "component": "sensor/power",
    },
    {
        "model": "ESPHome named power sensor state",
        "source": ESPHOME_MQTT,
        "config": dict(ESPHOME, channel="lathe_power"),
        "topic": "lathe/sensor/lathe_power/state",
        "payload": b"812.00",
        "power": 812.0,
        "component": "sensor/lathe_power",
    },
    {
        "model": "ESPHome voltage sensor state",
        "source": ESPHOME_MQTT,
        "config": ESPHOME,
        "topic": "lathe/sensor/voltage/state",
        "payload": b"230.4",
        "liveness": True,
    },
    {
        "model": "ESPHome status offline (last will)",
        "source": ESPHOME_MQTT,
        "config": ESPHOME,
        "topic": "lathe/status",
        "payload": b"offline",
        "online": False,
    },
    {
        "model": "ESPHome status online (birth)",
        "source": ESPHOME_MQTT,
        "config": ESPHOME,
        "topic": "lathe/status",
        "payload": b"online",
        "online": True,
    },
    {
        "model": "ESPHome switch command",
        "source": ESPHOME_MQTT,
        "config": ESPHOME,
        "topic": "lathe/switch/relay/command",
        "payload": b"OFF",
        "drop": "unknown_topic",
    },
]

# -- announcements -------------------------------------------------------------------

PRO3EM_FULL_STATUS = rpc(
    PRO3EM,
    "NotifyFullStatus",
    {
        "ts": 1709288100.0,
        "ble": {},
        "cloud": {"connected": True},
        "em1:0": {
            "id": 0,
            "current": 2.1,
            "voltage": 230.2,
            "act_power": 400.1,
            "aprt_power": 420.0,
            "pf": 0.95,
            "freq": 50,
            "calibration": "factory",
        },
        "em1:1": {
            "id": 1,
            "current": 2.2,
            "voltage": 230.1,
            "act_power": 440.5,
            "aprt_power": 460.3,
            "pf": 0.96,
            "freq": 50,
            "calibration": "factory",
        },
        "em1:2": {
            "id": 2,
            "current": 1.1,
            "voltage": 229.4,
            "act_power": 210.0,
            "aprt_power": 230.2,
            "pf": 0.91,
            "freq": 50,
            "calibration": "factory",
        },
        "em1data:0": {"id": 0, "total_act_energy": 1200.5, "total_act_ret_energy": 0},
        "mqtt": {"connected": True},
        "sys": {"mac": "08F9E0E5A1B2", "restart_required": False, "uptime": 1234},
        "wifi": {"sta_ip": "192.168.1.40", "status": "got ip", "ssid": "workshop", "rssi": -60},
    },
)
EM3_ANNOUNCE = _json(
    {
        "id": EM3,
        "model": "SHEM-3",
        "mac": "ECFABCC7F0A2",
        "ip": "192.168.1.21",
        "new_fw": False,
        "fw_ver": "20230913-114244/v1.14.0-gcb84623",
    }
)
TASMOTA_DISCOVERY_CONFIG = _json(
    {
        "ip": "192.168.1.30",
        "dn": "Compressor",
        "fn": ["Compressor", None, None, None, None, None, None, None],
        "hn": "tasmota-A1B2C3-0451",
        "mac": "A4CF12A1B2C3",
        "md": "Sonoff Pow R2",
        "ty": 0,
        "if": 0,
        "ofln": "Offline",
        "onln": "Online",
        "state": ["OFF", "ON", "TOGGLE", "HOLD"],
        "sw": "13.2.0",
        "t": "tasmota_A1B2C3",
        "ft": "%prefix%/%topic%/",
        "tp": ["cmnd", "stat", "tele"],
        "rl": [1, 0, 0, 0, 0, 0, 0, 0],
        "swc": [-1] * 8,
        "swn": [None] * 8,
        "btn": [0] * 8,
        "so": {
            "4": 0,
            "11": 0,
            "13": 0,
            "17": 0,
            "20": 0,
            "30": 0,
            "68": 0,
            "73": 0,
            "82": 0,
            "114": 0,
            "117": 0,
        },
        "lk": 0,
        "lt_st": 0,
        "sho": [0, 0, 0, 0],
        "sht": [[0, 0, 0]] * 4,
        "ver": 1,
    }
)
TASMOTA_DISCOVERY_SENSORS = _json(
    {"sn": {"Time": "2024-03-01T10:15:00", "ENERGY": TASMOTA_SENSOR["ENERGY"]}, "ver": 1}
)
Z2M_BRIDGE_DEVICES = _json(
    [
        {
            "ieee_address": "0x00124b0024c1d2e3",
            "type": "Coordinator",
            "network_address": 0,
            "supported": True,
            "friendly_name": "Coordinator",
            "definition": None,
        },
        {
            "ieee_address": "0xa4c138d1e2f3a4b5",
            "type": "Router",
            "network_address": 41234,
            "supported": True,
            "friendly_name": "laser plug",
            "power_source": "Mains (single phase)",
            "definition": {
                "model": "TS011F_plug_1",
                "vendor": "Tuya",
                "description": "Smart plug (with power monitoring)",
                "exposes": [
                    {
                        "type": "switch",
                        "features": [
                            {
                                "type": "binary",
                                "name": "state",
                                "property": "state",
                                "access": 7,
                                "value_on": "ON",
                                "value_off": "OFF",
                            }
                        ],
                    },
                    {
                        "type": "numeric",
                        "name": "power",
                        "property": "power",
                        "access": 5,
                        "unit": "W",
                    },
                    {
                        "type": "numeric",
                        "name": "voltage",
                        "property": "voltage",
                        "access": 5,
                        "unit": "V",
                    },
                    {
                        "type": "numeric",
                        "name": "energy",
                        "property": "energy",
                        "access": 5,
                        "unit": "kWh",
                    },
                ],
            },
        },
        {
            "ieee_address": "0x00158d0001a2b3c4",
            "type": "EndDevice",
            "network_address": 3211,
            "supported": True,
            "friendly_name": "door",
            "power_source": "Battery",
            "definition": {
                "model": "MCCGQ11LM",
                "vendor": "Aqara",
                "description": "Door and window contact sensor",
                "exposes": [
                    {"type": "binary", "name": "contact", "property": "contact", "access": 1}
                ],
            },
        },
    ]
)
