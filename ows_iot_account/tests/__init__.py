from . import test_invoice
