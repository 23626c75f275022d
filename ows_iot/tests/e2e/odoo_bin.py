"""Start Odoo as ``odoo-bin`` does.

A script rather than ``python -m odoo``: a prefork server re-executes its own
``sys.argv[0]`` to start the gevent process, which fails for ``__main__.py``.
"""

import os

# As odoo-bin: the server's timezone is UTC before anything imports time.
os.environ["TZ"] = "UTC"

import odoo

if __name__ == "__main__":
    odoo.cli.main()
