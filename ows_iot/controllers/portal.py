# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import _, http
from odoo.exceptions import AccessError, MissingError
from odoo.http import request

from odoo.addons.portal.controllers.portal import CustomerPortal
from odoo.addons.portal.controllers.portal import pager as portal_pager

SESSIONS_PER_PAGE = 20


class MachineSessionPortal(CustomerPortal):
    """The member's own machine sessions under /my; the record rules decide which."""

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "ows_iot_session_count" in counters:
            Session = request.env["mqtt.session"]
            values["ows_iot_session_count"] = (
                Session.search_count(self._ows_iot_session_domain())
                if Session.has_access("read")
                else 0
            )
        return values

    def _ows_iot_session_domain(self):
        # Running sessions have no figures yet; the record rules limit to the member.
        return [("status", "!=", "running")]

    @http.route(
        ["/my/machine-sessions", "/my/machine-sessions/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_my_machine_sessions(self, page=1, **kw):
        Session = request.env["mqtt.session"]
        if not Session.has_access("read"):
            return request.redirect("/my")
        domain = self._ows_iot_session_domain()
        pager = portal_pager(
            url="/my/machine-sessions",
            total=Session.search_count(domain),
            page=page,
            step=SESSIONS_PER_PAGE,
        )
        sessions = Session.search(domain, limit=SESSIONS_PER_PAGE, offset=pager["offset"])
        values = self._prepare_portal_layout_values()
        values.update(
            {
                # Read through sudo after the search: the member sees the machine's
                # name without access to the devices themselves.
                "sessions": sessions.sudo(),
                "page_name": "ows_iot_session",
                "pager": pager,
                "default_url": "/my/machine-sessions",
            }
        )
        return request.render("ows_iot.portal_my_machine_sessions", values)

    @http.route(["/my/machine-sessions/<int:session_id>"], type="http", auth="user", website=True)
    def portal_my_machine_session(self, session_id, **kw):
        session = request.env["mqtt.session"].browse(session_id).exists()
        try:
            if not session:
                raise MissingError(_("This session does not exist."))
            session.check_access("read")
        except (AccessError, MissingError):
            return request.redirect("/my")
        values = self._prepare_portal_layout_values()
        values.update({"session": session.sudo(), "page_name": "ows_iot_session"})
        return request.render("ows_iot.portal_my_machine_session", values)
