"""Who may do what, over Odoo's real JSON-RPC endpoint (SPEC §15): only the addon's own code
queues an event, and the fields that drive escalations change only through its buttons and
crons. Each call goes through ``/jsonrpc`` (``object.execute_kw``) as the user it names, as a
script or a browser session would, so Odoo's own checks (private methods, access rights,
record rules) are part of what is tested.

Not an ``HttpCase``: these tests need no browser, and a suite holding an ``HttpCase`` makes
Odoo pregenerate every asset bundle first, JavaScript test bundles included, which an Odoo
tree without its ``static/tests`` folders (ours in CI) cannot build. What they need of it is
the one thing below: the HTTP server answering on the test transaction (test mode).

    odoo-bin -d <db> --test-enable --test-tags /ipai_enterprise_bridge
"""

import datetime as dt
import json

from odoo import fields
from odoo.tests import new_test_user, tagged

from . import rpc_case
FORGED = {
    "event_type": "expense.paid",
    "aggregate_id": 42,
    "facts": {"expense_id": 42, "amount": 999999, "payment_ref": "FORGED-REF", "status": "done"},
}


@tagged("post_install", "-at_install")
class TestOnlyTheAddonQueuesEvents(rpc_case.RpcCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        icp = cls.env["ir.config_parameter"].sudo()
        icp.set_param("ipai.webhook.url", "http://127.0.0.1:9/odoo-webhook")
        icp.set_param("ipai.webhook.secret", "test-secret")
        icp.set_param("ipai.asset.escalation_days", "1,3,7")
        cls.Queue = cls.env["ipai.event.queue"].sudo()
        cls.portal = new_test_user(cls.env, login="rpc_portal", groups="base.group_portal")
        cls.internal = new_test_user(cls.env, login="rpc_internal", groups="base.group_user")
        cls.employee_user = new_test_user(cls.env, login="rpc_employee", groups="base.group_user")
        cls.admin = new_test_user(cls.env, login="rpc_admin", groups="base.group_user,base.group_system")
        cls.employee = cls.env["hr.employee"].create(
            {"name": "Ana Reyes", "work_email": "ana@example.com", "user_id": cls.employee_user.id}
        )
        cls.equipment = cls.env["maintenance.equipment"].create(
            {"name": "Laptop ThinkPad T14", "serial_no": "LAP-0007", "ipai_bookable": True}
        )

    # ----------------------------------------------------------------------- helpers

    def overdue_booking(self, days_late):
        now = fields.Datetime.now()
        booking = self.env["ipai.asset.booking"].create({
            "equipment_id": self.equipment.id,
            "employee_id": self.employee.id,
            "start": now - dt.timedelta(days=days_late + 1),
            "end": now - dt.timedelta(days=days_late),
        })
        booking.action_checkout()
        return booking

    def unprivileged(self):
        return {"portal": self.portal, "internal user": self.internal, "employee": self.employee_user}

    # ------------------------------------------------------------------------- tests

    def test_no_user_can_make_odoo_queue_a_payload_of_their_choosing(self):
        before = self.Queue.search_count([])
        for who, user in dict(self.unprivileged(), administrator=self.admin).items():
            with self.subTest(user=who):
                # The queue API is private: Odoo's RPC refuses leading-underscore methods.
                self.assertRefused(self.rpc(user, "ipai.event.queue", "_ipai_enqueue",
                                            FORGED["event_type"], FORGED["aggregate_id"], FORGED["facts"]))
                # The old public name is gone (Odoo logs the unknown method as an error).
                with self.assertLogs("odoo.http", "ERROR"):
                    gone = self.rpc(user, "ipai.event.queue", "enqueue",
                                    FORGED["event_type"], FORGED["aggregate_id"], FORGED["facts"])
                self.assertIn("does not exist", gone["refused"]["message"])
                # Nor can a row be written directly.
                self.assertRefused(self.rpc(user, "ipai.event.queue", "create", {
                    "event_type": "expense.paid", "aggregate_type": "expense", "aggregate_id": "42",
                    "idempotency_key": "forged-%s" % user.login, "body": json.dumps(FORGED),
                }))
        self.assertEqual(self.Queue.search_count([]), before)

    def test_only_the_bridge_administrators_read_the_queue_and_no_one_rewrites_a_body(self):
        booking = self.overdue_booking(days_late=0)
        row = self.Queue.search([("res_model", "=", "ipai.asset.booking"), ("res_id", "=", booking.id)])
        self.assertEqual(row.event_type, "asset.checked_out")
        for who, user in self.unprivileged().items():
            with self.subTest(user=who):
                self.assertRefused(self.rpc(user, "ipai.event.queue", "search_read", [], fields=["body"]))
        # The administrators' view works: list, read, and the buttons.
        listed = self.rpc(self.admin, "ipai.event.queue", "search_read", [("id", "=", row.id)],
                          fields=["event_type", "state", "body"])
        self.assertEqual([(r["event_type"], r["state"]) for r in listed["result"]], [("asset.checked_out", "pending")])
        self.assertEqual(listed["result"][0]["body"], row.body)
        # Even they cannot change what the sender signs.
        self.assertRefused(self.rpc(self.admin, "ipai.event.queue", "write", [row.id], {"body": json.dumps(FORGED)}))
        self.assertRefused(self.rpc(self.admin, "ipai.event.queue", "write", [row.id], {"state": "sent"}))
        self.assertIn("result", self.rpc(self.admin, "ipai.event.queue", "action_cancel", [row.id]))
        self.assertEqual(row.state, "cancelled")

    def test_an_employee_cannot_silence_the_escalations_on_their_own_booking(self):
        booking = self.overdue_booking(days_late=9)
        me = self.employee_user
        # They see their booking (record rules) ...
        self.assertEqual(self.rpc(me, "ipai.asset.booking", "read", [booking.id], ["state"])["result"][0]["state"],
                         "checked_out")
        # ... but may not forge its escalation level, state or check-in time.
        now = fields.Datetime.to_string(fields.Datetime.now())
        for forged in ({"ipai_overdue_level": 3}, {"state": "checked_in"}, {"checked_in_at": now}):
            with self.subTest(forged=forged):
                self.assertRefused(self.rpc(me, "ipai.asset.booking", "write", [booking.id], forged))
        self.assertRefused(self.rpc(me, "ipai.asset.booking", "create", {
            "equipment_id": self.equipment.id, "employee_id": self.employee.id, "state": "checked_in",
            "start": "2026-01-01 08:00:00", "end": "2026-01-01 17:00:00",
        }))
        self.assertEqual((booking.state, booking.ipai_overdue_level), ("checked_out", 0))
        # So the overdue cron escalates as it should: 9 days late is level 3.
        self.env["ipai.asset.booking"]._cron_ipai_overdue()
        overdue = self.Queue.search([("res_model", "=", "ipai.asset.booking"), ("res_id", "=", booking.id),
                                     ("event_type", "=", "asset.overdue")])
        self.assertEqual(len(overdue), 1)
        self.assertEqual(json.loads(overdue.body)["payload"]["escalation_level"], 3)
        # The buttons still work for them, and queue their events.
        self.assertIn("result", self.rpc(me, "ipai.asset.booking", "action_checkin", [booking.id]))
        self.assertEqual(booking.state, "checked_in")
        self.assertTrue(self.Queue.search_count([("res_id", "=", booking.id), ("event_type", "=", "asset.checked_in")]))

    def test_someone_elses_booking_cannot_be_moved_by_its_buttons(self):
        booking = self.overdue_booking(days_late=2)
        self.assertRefused(self.rpc(self.internal, "ipai.asset.booking", "action_checkin", [booking.id]))
        self.assertEqual(booking.state, "checked_out")

    def test_the_announcement_flags_and_stamps_of_expenses_and_tasks_are_not_writable(self):
        product = self.env["product.product"].create({"name": "Taxi", "can_be_expensed": True, "standard_price": 0})
        expense = self.env["hr.expense"].create(
            {"name": "Taxi", "employee_id": self.employee.id, "product_id": product.id, "total_amount_currency": 120.0}
        )
        me = self.employee_user
        self.assertIn("result", self.rpc(me, "hr.expense", "write", [expense.id], {"name": "Taxi to the airport"}))
        self.assertRefused(self.rpc(me, "hr.expense", "write", [expense.id], {"ipai_paid_emitted": True}))
        self.assertFalse(expense.ipai_paid_emitted)
        sheet = self.env["hr.expense.sheet"].create(
            {"name": "December", "employee_id": self.employee.id, "expense_line_ids": [(6, 0, expense.ids)]}
        )
        self.assertRefused(self.rpc(me, "hr.expense.sheet", "write", [sheet.id],
                                    {"ipai_approved_at": "2026-12-01 09:00:00"}))
        project = self.env["project.project"].create({"name": "BIR filings", "ipai_finance": True})
        task = self.env["project.task"].create({"name": "1601-C November", "project_id": project.id})
        # Not even an administrator may mark a task's overdue alert as already sent.
        self.assertRefused(self.rpc(self.admin, "project.task", "write", [task.id],
                                    {"ipai_overdue_notified_on": "2099-01-01"}))
        self.assertFalse(task.ipai_overdue_notified_on)
