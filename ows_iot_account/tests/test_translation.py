# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import polib

from odoo.tests import TransactionCase, tagged
from odoo.tools.misc import file_path
from odoo.tools.translate import TranslationModuleReader


@tagged("post_install", "-at_install")
class TestGermanTranslation(TransactionCase):
    def test_every_exported_term_has_a_german_translation(self):
        german = {
            entry.msgid: entry.msgstr
            for entry in polib.pofile(file_path("ows_iot_account/i18n/de.po"))
            if entry.msgstr and not entry.obsolete
        }
        terms = {
            row[4] for row in TranslationModuleReader(self.env.cr, modules=["ows_iot_account"])
        }
        missing = sorted(term for term in terms if term not in german)
        self.assertFalse(missing, f"Terms without German translation: {missing}")

    def test_template_and_translation_agree(self):
        template = polib.pofile(file_path("ows_iot_account/i18n/ows_iot_account.pot"))
        german = polib.pofile(file_path("ows_iot_account/i18n/de.po"))
        self.assertEqual({e.msgid for e in template} - {e.msgid for e in german}, set())

    def test_wizard_in_german(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.env["ir.module.module"]._load_module_terms(
            ["ows_iot", "ows_iot_account"], ["de_DE"], overwrite=True
        )
        env = self.env(context=dict(self.env.context, lang="de_DE"))
        wizard = env["mqtt.session.invoice.wizard"]
        arch = wizard.get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("Rechnungen erstellen", arch)
        groupings = dict(wizard.fields_get(["grouping"])["grouping"]["selection"])
        self.assertEqual(groupings["session"], "Eine Zeile je Sitzung")
