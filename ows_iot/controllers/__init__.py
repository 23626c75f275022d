# validation.py is plain Python (tested without Odoo); the routes load inside Odoo only.
if __name__ == "odoo.addons.ows_iot.controllers":
    from . import board, main, portal
