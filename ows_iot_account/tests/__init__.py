from . import test_invoice, test_portal, test_tour, test_translation
