-- A restored copy must not consume its original's broker session: without a broker
-- host the leader does not connect, and without the explicit client id a broker
-- configured later derives it from this database's own uuid.
DELETE FROM ir_config_parameter
 WHERE key IN ('ows_iot.mqtt_host', 'ows_iot.mqtt_client_id');
