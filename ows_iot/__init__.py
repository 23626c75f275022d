# The Odoo parts load only inside Odoo, so that ``ows_iot.services`` stays importable
# (and testable) on a machine without Odoo.
if __name__ == "odoo.addons.ows_iot":
    from . import controllers, models, report, wizard
    from .runtime import post_load
