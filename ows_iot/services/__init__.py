"""Pure-Python core of ows_iot: parsers, session engine and user tools.

Nothing in this package imports Odoo, so the engine can be tested, replayed and
reused on its own.
"""
