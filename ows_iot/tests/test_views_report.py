# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import date

from odoo.exceptions import UserError
from odoo.tests import Form, HttpCase, TransactionCase, new_test_user, tagged

from .common import session_event

REPORT = "ows_iot.report_mqtt_session_billing"
ROUTER = "shellypmminig3-0c8b95a1f2d4"
PRINTER = "shellyplug-s-1A2B3C4D5E6F"
DAY = 86400.0


class BillingData:
    """Two devices, their customers and a month of sessions, ingested as events."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.ref("base.main_company")
        cls.Device = cls.env["mqtt.device"]
        cls.Session = cls.env["mqtt.session"]
        cls.Event = cls.env["ows.iot.event"]
        cls.customer = cls.env["res.partner"].create({"name": "Maker Space Member"})
        # External ids of their own: the demo data holds devices with the usual ones.
        cls.device = cls.Device.create(
            {
                "name": "Shaper Origin",
                "device_id": ROUTER,
                "mqtt_topic": ROUTER,
                "company_id": cls.company.id,
                "partner_id": cls.customer.id,
            }
        )
        users = {}
        for login, groups in (
            ("iot_report_user", "base.group_user,ows_iot.group_ows_iot_user"),
            ("iot_report_manager", "base.group_user,ows_iot.group_ows_iot_manager"),
            ("iot_report_admin", "base.group_user,base.group_system"),
            ("iot_report_employee", "base.group_user"),
        ):
            users[login] = new_test_user(
                cls.env, login=login, groups=groups, company_id=cls.company.id, tz="Europe/Berlin"
            )
        cls.iot_user = users["iot_report_user"]
        cls.iot_manager = users["iot_report_manager"]
        cls.admin = users["iot_report_admin"]
        cls.employee = users["iot_report_employee"]
        cls.product = cls.env["product.product"].create(
            {"name": "CNC Router Time", "type": "service", "list_price": 4.5}
        )
        # 15-minute units rounded up, at least one; standby billed at half price.
        cls.device.write(
            {
                "product_id": cls.product.id,
                "billing_unit_s": 900,
                "billing_rounding": "up",
                "billing_min_units": 1,
                "bill_standby": True,
                "standby_rate": 0.5,
            }
        )
        cls.printer = cls.Device.create(
            {
                "name": "3D Printer",
                "device_id": PRINTER,
                "mqtt_topic": f"shellies/{PRINTER}",
                "parser_type": "shelly_gen1",
                "company_id": cls.company.id,
                "price_unit": 1.2,
                "partner_id": cls.customer.id,
                "billing_unit_s": 3600,
                "billing_rounding": "nearest",
            }
        )
        cls.other_customer = cls.env["res.partner"].create({"name": "Wood Corner"})
        cls.seq = 0
        # June 2024, Berlin time: three ended router sessions (two customers), one
        # printer session, a running router session and one in July.
        cls.cut = cls._session(cls.device, 1 * DAY, working=1800, standby=600, energy=650)
        cls.engrave = cls._session(cls.device, 2 * DAY, working=900, energy=300)
        cls.other = cls._session(cls.device, 3 * DAY, working=3000, energy=900)
        cls.other.partner_id = cls.other_customer
        cls.print_job = cls._session(cls.printer, 4 * DAY, working=9000, standby=300, energy=250)
        cls.running = cls._session(cls.device, 5 * DAY, working=600, end=False)
        cls.july = cls._session(cls.device, 40 * DAY, working=600)

    @classmethod
    def _session(cls, device, offset, working=0.0, standby=0.0, energy=0.0, end=True):
        cls.seq += 1
        event = session_event(
            device.device_id,
            "session_stopped" if end else "session_heartbeat",
            cls.seq,
            offset + working + standby,
            start=offset,
            working=working,
            standby=standby,
            end=offset + working + standby if end else None,
            energy_wh=energy,
        )
        [result] = cls.Event.ingest_events([event])
        assert result["status"] == "created", result
        return cls.Session.search([("session_id", "=", event["session_id"])])


@tagged("post_install", "-at_install")
class TestViewsReport(BillingData, TransactionCase):
    """Backend views, the billing wizard and the billing report."""

    def _wizard(self, user=None, **values):
        Wizard = self.env["ows.iot.billing.report.wizard"]
        if user:
            Wizard = Wizard.with_user(user)
        values.setdefault("date_from", date(2024, 6, 1))
        values.setdefault("date_to", date(2024, 6, 30))
        return Wizard.create(values)

    # -- views ---------------------------------------------------------------------

    def test_views_load_for_users_and_managers(self):
        views = {
            "mqtt.device": ["kanban", "list", "form", "search"],
            "mqtt.session": ["list", "form", "pivot", "graph", "calendar", "search"],
            "ows.iot.event": ["list", "form", "search"],
            "ows.iot.billing.report.wizard": ["form"],
        }
        for user in (self.iot_user, self.iot_manager):
            for model, view_types in views.items():
                with self.subTest(user=user.login, model=model):
                    result = (
                        self.env[model].with_user(user).get_views([(False, t) for t in view_types])
                    )
                    self.assertEqual(set(result["views"]), set(view_types))

    def test_session_buttons_for_managers_only(self):
        form = self.Session.with_user(self.iot_user).get_views([(False, "form")])
        self.assertNotIn("action_mark_billed", form["views"]["form"]["arch"])
        form = self.Session.with_user(self.iot_manager).get_views([(False, "form")])
        arch = form["views"]["form"]["arch"]
        for button in ("action_mark_billed", "action_mark_free", "action_reset_to_bill"):
            self.assertIn(button, arch)

    def test_settings_password_only_for_system_administrators(self):
        Settings = self.env["res.config.settings"]
        arch = Settings.with_user(self.admin).get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("ows_iot_mqtt_host", arch)
        self.assertIn("ows_iot_mqtt_password", arch)
        settings = Settings.with_user(self.admin).create({"ows_iot_mqtt_password": "s3cret"})
        settings.execute()
        self.assertEqual(
            self.env["ir.config_parameter"].sudo().get_param("ows_iot.mqtt_password"), "s3cret"
        )

    def test_menus_by_group(self):
        Menu = self.env["ir.ui.menu"]
        settings = self.env.ref("ows_iot.ows_iot_menu_settings")
        configuration = self.env.ref("ows_iot.ows_iot_menu_configuration")
        sessions = self.env.ref("ows_iot.ows_iot_menu_sessions")
        user_menus = Menu.with_user(self.iot_user)._visible_menu_ids()
        self.assertIn(sessions.id, user_menus)
        self.assertNotIn(configuration.id, user_menus)
        manager_menus = Menu.with_user(self.iot_manager)._visible_menu_ids()
        self.assertIn(configuration.id, manager_menus)
        self.assertNotIn(settings.id, manager_menus)
        self.assertIn(settings.id, Menu.with_user(self.admin)._visible_menu_ids())
        employee_menus = Menu.with_user(self.employee)._visible_menu_ids()
        self.assertNotIn(self.env.ref("ows_iot.ows_iot_menu_root").id, employee_menus)

    def test_device_form_creates_a_device(self):
        with Form(self.Device.with_user(self.iot_manager)) as form:
            form.name = "Laser"
            form.device_id = "shellyplus1pm-laser"
            form.mqtt_topic = "shellyplus1pm-laser/"
            form.parser_type = "json_path"
            form.power_path = "sensor.power"
        device = form.save()
        self.assertEqual(device.mqtt_topic, "shellyplus1pm-laser")
        self.assertEqual(device.company_id, self.company)

    # -- wizard --------------------------------------------------------------------

    def test_wizard_filters_period_customers_devices(self):
        wizard = self._wizard(self.iot_manager)
        ended_june = self.cut | self.engrave | self.other | self.print_job
        self.assertEqual(wizard.session_count, 4)
        action = wizard.action_print()
        self.assertEqual(action["type"], "ir.actions.report")
        self.assertEqual(action["report_name"], REPORT)
        self.assertEqual(set(action["data"]["session_ids"]), set(ended_june.ids))
        self.assertEqual(set(action["context"]["active_ids"]), set(ended_june.ids))
        self.assertEqual(action["data"]["date_from"], "2024-06-01")
        self.assertTrue(action["close_on_report_download"])

        wizard = self._wizard(self.iot_manager, partner_ids=[self.other_customer.id])
        self.assertEqual(wizard.action_print()["data"]["session_ids"], self.other.ids)

        wizard = self._wizard(self.iot_manager, device_ids=[self.printer.id])
        self.assertEqual(wizard.action_print()["data"]["session_ids"], self.print_job.ids)

        wizard = self._wizard(
            self.iot_manager, date_from=date(2024, 7, 1), date_to=date(2024, 7, 31)
        )
        self.assertEqual(wizard.action_print()["data"]["session_ids"], self.july.ids)

    def test_wizard_period_follows_the_users_time_zone(self):
        # 2024-06-02 22:30 UTC is already June 3 in Berlin.
        late = self._session(self.printer, 1 * DAY + 12.5 * 3600, working=600)
        self.assertEqual(late.start_time.day, 2)
        wizard = self._wizard(
            self.iot_manager, date_from=date(2024, 6, 3), date_to=date(2024, 6, 3)
        )
        self.assertIn(late, self.Session.browse(wizard.action_print()["data"]["session_ids"]))
        wizard = self._wizard(
            self.iot_manager, date_from=date(2024, 6, 2), date_to=date(2024, 6, 2)
        )
        self.assertNotIn(late, self.Session.search(wizard._ows_session_domain()))

    def test_wizard_billing_filter(self):
        self.engrave.action_mark_billed()
        self.other.action_mark_free()
        to_bill = self._wizard(self.iot_manager)
        self.assertEqual(
            set(to_bill.action_print()["data"]["session_ids"]), {self.cut.id, self.print_job.id}
        )
        billed = self._wizard(self.iot_manager, billing_filter="billed")
        self.assertEqual(billed.action_print()["data"]["session_ids"], self.engrave.ids)
        everything = self._wizard(self.iot_manager, billing_filter="all")
        self.assertEqual(everything.session_count, 4)

    def test_wizard_refuses_an_empty_selection_and_a_reversed_period(self):
        wizard = self._wizard(self.iot_user, date_from=date(2023, 1, 1), date_to=date(2023, 1, 31))
        self.assertEqual(wizard.session_count, 0)
        with self.assertRaises(UserError):
            wizard.action_print()
        with self.assertRaises(UserError):
            self._wizard(date_from=date(2024, 6, 30), date_to=date(2024, 6, 1))

    def test_wizard_takes_the_selected_devices(self):
        Wizard = self.env["ows.iot.billing.report.wizard"].with_context(
            active_model="mqtt.device", active_ids=self.printer.ids
        )
        self.assertEqual(Wizard.create({}).device_ids, self.printer)

    # -- report --------------------------------------------------------------------

    def test_billing_figures(self):
        # 1800 s working + 600 s standby at half price = 2100 s: 3 quarter hours.
        self.assertEqual((self.cut.billable_units, self.cut.amount), (3, 13.5))
        self.assertEqual((self.engrave.billable_units, self.engrave.amount), (1, 4.5))
        self.assertEqual((self.other.billable_units, self.other.amount), (4, 18.0))
        # 9000 s of printing, standby not billed: 2.5 hours, halves round up.
        self.assertEqual((self.print_job.billable_units, self.print_job.amount), (3, 3.6))

    def test_report_groups_and_totals(self):
        self.other.action_mark_free()
        sessions = self.cut | self.engrave | self.other | self.print_job | self.running
        values = (
            self.env[f"report.{REPORT}"]
            .with_user(self.iot_user)
            ._get_report_values(sessions.ids, {"date_from": "2024-06-01", "date_to": "2024-06-30"})
        )
        self.assertEqual(values["running_count"], 1)
        self.assertEqual(values["docs"], sessions - self.running)
        customers = {group["partner"].name: group for group in values["customers"]}
        self.assertEqual(set(customers), {"Maker Space Member", "Wood Corner"})
        member = customers["Maker Space Member"]
        self.assertEqual(
            [group["device"] for group in member["devices"]], [self.printer, self.device]
        )
        router = member["devices"][1]
        self.assertEqual(router["sessions"], self.cut | self.engrave)
        totals = router["totals"]
        self.assertEqual(totals["count"], 2)
        self.assertAlmostEqual(totals["total_h"], 3300 / 3600)
        self.assertAlmostEqual(totals["working_h"], 2700 / 3600)
        self.assertAlmostEqual(totals["standby_h"], 600 / 3600)
        self.assertAlmostEqual(totals["energy_kwh"], 0.95)
        self.assertEqual(totals["units"], 4)
        self.assertEqual(totals["amounts"], [(self.company.currency_id, 18.0)])
        # A free session is listed with its time, but adds no units and no amount.
        wood = customers["Wood Corner"]["totals"]
        self.assertAlmostEqual(wood["total_h"], 3000 / 3600)
        self.assertEqual((wood["units"], wood["amounts"]), (0, []))
        grand = values["totals"]
        self.assertEqual(grand["count"], 4)
        self.assertAlmostEqual(grand["total_h"], (2400 + 900 + 3000 + 9300) / 3600)
        self.assertEqual(grand["units"], 4 + 3)
        self.assertEqual(grand["amounts"], [(self.company.currency_id, 18.0 + 3.6)])

    def test_report_renders_html_with_totals(self):
        sessions = self.cut | self.engrave
        html, report_type = (
            self.env["ir.actions.report"]
            .with_user(self.iot_user)
            ._render_qweb_html(
                REPORT, sessions.ids, {"date_from": "2024-06-01", "date_to": "2024-06-30"}
            )
        )
        self.assertEqual(report_type, "html")
        html = html.decode()
        for text in (
            "Machine Usage Billing",
            "Maker Space Member",
            "Shaper Origin",
            ROUTER,
            self.cut.name,
            self.engrave.name,
            "00:55",  # 40 + 15 minutes
            "00:45",  # working
            "00:10",  # standby
            "0.95",  # kWh
            "13.50",
            "18.00",
            "06/01/2024",
        ):
            self.assertIn(text, html)

    def test_report_without_data_takes_the_sessions_period(self):
        values = self.env[f"report.{REPORT}"]._get_report_values((self.cut | self.print_job).ids)
        # T0 is 2024-06-01 12:00 in Berlin; the sessions start one and four days later.
        self.assertEqual(values["date_from"], date(2024, 6, 2))
        self.assertEqual(values["date_to"], date(2024, 6, 5))
        self.assertIsNone(values["billing_filter"])


@tagged("post_install", "-at_install")
class TestBillingReportPdf(BillingData, HttpCase):
    """wkhtmltopdf fetches the report's assets over HTTP: that needs an HttpCase,
    whose requests share the test transaction."""

    def test_report_renders_pdf(self):
        sessions = self.cut | self.engrave | self.print_job
        pdf, report_type = (
            self.env["ir.actions.report"]
            .with_context(force_report_rendering=True)
            ._render_qweb_pdf(REPORT, sessions.ids)
        )
        self.assertEqual(report_type, "pdf")
        self.assertTrue(pdf.startswith(b"%PDF"))
        self.assertIn(b"/Type /Page", pdf)
