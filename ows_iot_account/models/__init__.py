from . import account_move, account_move_line, mqtt_session
