# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import polib

from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged
from odoo.tools.misc import file_path
from odoo.tools.translate import TranslationModuleReader


@tagged("post_install", "-at_install")
class TestGermanTranslation(TransactionCase):
    """The first users run Odoo in German: every term of the addon is translated."""

    def test_every_exported_term_has_a_german_translation(self):
        german = {
            entry.msgid: entry.msgstr
            for entry in polib.pofile(file_path("ows_iot/i18n/de.po"))
            if entry.msgstr and not entry.obsolete
        }
        terms = {row[4] for row in TranslationModuleReader(self.env.cr, modules=["ows_iot"])}
        missing = sorted(term for term in terms if term not in german)
        self.assertFalse(
            missing,
            "Terms without German translation (export the .pot again and complete "
            "ows_iot/i18n/de.po): %s" % missing,
        )

    def test_every_field_and_view_term_is_translated_where_it_is_used(self):
        # Odoo applies a translation to a field, selection or view only through the
        # occurrence listed with it: a term translated for one field stays English
        # on another field of the same name.
        translated = {
            (entry.msgid, occurrence)
            for entry in polib.pofile(file_path("ows_iot/i18n/de.po"))
            if entry.msgstr and not entry.obsolete
            for occurrence, _line in entry.occurrences
        }
        missing = sorted(
            f"{kind}:{name}:{xmlid} {source!r}"
            for _module, kind, name, xmlid, source, *_rest in TranslationModuleReader(
                self.env.cr, modules=["ows_iot"]
            )
            if kind in ("model", "model_terms")
            and (source, f"{kind}:{name}:{xmlid}") not in translated
        )
        self.assertFalse(
            missing,
            "Fields and views whose term is translated only elsewhere (export the .pot "
            "again and merge it into ows_iot/i18n/de.po): %s" % missing,
        )

    def test_template_and_translation_agree(self):
        template = {entry.msgid for entry in polib.pofile(file_path("ows_iot/i18n/ows_iot.pot"))}
        german = {entry.msgid for entry in polib.pofile(file_path("ows_iot/i18n/de.po"))}
        self.assertEqual(template - german, set())

    def test_backend_in_german(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.env["ir.module.module"]._load_module_terms(["ows_iot"], ["de_DE"], overwrite=True)
        env = self.env(context=dict(self.env.context, lang="de_DE"))
        self.assertEqual(env.ref("ows_iot.ows_iot_menu_sessions").name, "Sitzungen")
        self.assertEqual(env.ref("ows_iot.ows_iot_menu_billing_report").name, "Abrechnungsbericht")
        fields = env["mqtt.device"].fields_get(["device_id", "standby_threshold_w"])
        self.assertEqual(fields["device_id"]["string"], "Geräte-ID")
        self.assertEqual(fields["standby_threshold_w"]["string"], "Leerlaufschwelle (W)")
        states = dict(
            env["mqtt.session"].fields_get(["billing_state"])["billing_state"]["selection"]
        )
        self.assertEqual(states["billed"], "Abgerechnet")
        arch = env["mqtt.session"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("Als abgerechnet markieren", arch)
        wizard = env["ows.iot.billing.report.wizard"].create(
            {"date_from": "2001-01-01", "date_to": "2001-01-31"}
        )
        with self.assertRaisesRegex(UserError, "Keine beendete Sitzung"):
            wizard.action_print()
