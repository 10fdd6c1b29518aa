"""Server tests (Odoo's runner, a database with the addon installed):

    odoo-bin -d <db> -i ipai_enterprise_bridge --test-enable --test-tags /ipai_enterprise_bridge --stop-after-init

They check the hooks queue the right events in the business transaction, and the queue's
delivery writes each outcome. The HTTP call is patched: no network.
"""

import datetime as dt
import json
from unittest.mock import patch

from odoo import Command, fields
from odoo.tests import TransactionCase, tagged

from ..utils.ipai_webhook import IpaiResponse, IpaiTransportError

SEND = "odoo.addons.ipai_enterprise_bridge.models.ipai_event_queue.send_ipai_event"


@tagged("post_install", "-at_install")
class TestIpaiBridge(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        icp = cls.env["ir.config_parameter"].sudo()
        icp.set_param("ipai.webhook.url", "http://127.0.0.1:9/odoo-webhook")
        icp.set_param("ipai.webhook.secret", "test-secret")
        cls.Queue = cls.env["ipai.event.queue"].sudo()
        cls.manager = cls.env["hr.employee"].create({"name": "Maria Santos", "work_email": "maria@example.com"})
        cls.employee = cls.env["hr.employee"].create(
            {"name": "Juan dela Cruz", "work_email": "juan@example.com", "parent_id": cls.manager.id}
        )
        cls.equipment = cls.env["maintenance.equipment"].create(
            {"name": "Projector Epson EB-X51", "serial_no": "PRJ-0012", "location": "Makati HQ"}
        )

    def _rows(self, record):
        return self.Queue.search(
            [("res_model", "=", record._name), ("res_id", "=", record.id)], order="id"
        )

    def _booking(self, **vals):
        now = fields.Datetime.now()
        return self.env["ipai.asset.booking"].create(
            {
                "equipment_id": self.equipment.id,
                "employee_id": self.employee.id,
                "start": vals.pop("start", now + dt.timedelta(hours=1)),
                "end": vals.pop("end", now + dt.timedelta(hours=9)),
                **vals,
            }
        )

    def test_a_booking_lifecycle_queues_one_event_per_step_in_the_same_transaction(self):
        booking = self._booking()
        booking.action_reserve()
        booking.action_checkout()
        booking.action_checkin()
        rows = self._rows(booking)
        self.assertEqual(rows.mapped("event_type"), ["asset.reserved", "asset.checked_out", "asset.checked_in"])
        self.assertEqual(set(rows.mapped("state")), {"pending"})
        event = json.loads(rows[0].body)
        self.assertEqual(event["aggregate_type"], "asset_booking")
        self.assertEqual(event["aggregate_id"], str(booking.id))
        payload = event["payload"]
        self.assertEqual(payload["asset_code"], "PRJ-0012")
        self.assertEqual(payload["employee_email"], "juan@example.com")
        self.assertEqual(payload["manager_email"], "maria@example.com")
        self.assertEqual(payload["location"], "Makati HQ")
        self.assertTrue(payload["start"].endswith("Z"))
        self.assertEqual(len(set(rows.mapped("idempotency_key"))), 3)

    def test_nothing_is_queued_while_the_webhook_url_is_not_set(self):
        self.env["ir.config_parameter"].sudo().set_param("ipai.webhook.url", "")
        booking = self._booking()
        booking.action_reserve()
        self.assertFalse(self._rows(booking))

    def test_queuing_the_same_change_twice_yields_one_row(self):
        booking = self._booking()
        booking.action_reserve()
        booking._ipai_emit("asset.reserved")
        self.assertEqual(len(self._rows(booking)), 1)

    def test_delivery_marks_accepted_rows_sent_and_client_errors_failed(self):
        a, b = self._booking(), self._booking(start=fields.Datetime.now() + dt.timedelta(days=2),
                                              end=fields.Datetime.now() + dt.timedelta(days=3))
        a.action_reserve()
        b.action_reserve()
        rows = self._rows(a) | self._rows(b)
        answers = [
            IpaiResponse(202, {"id": "6f1c", "status": "queued"}),
            IpaiResponse(422, {"error": "unknown_event_type", "message": "no"}),
        ]
        with patch(SEND, side_effect=lambda *args, **kw: answers.pop(0)) as send:
            rows._ipai_deliver()
        self.assertEqual(send.call_count, 2)
        url, secret, body, key = send.call_args_list[0].args[:4]
        self.assertEqual((url, secret), ("http://127.0.0.1:9/odoo-webhook", "test-secret"))
        self.assertEqual((body, key), (rows[0].body, rows[0].idempotency_key))
        self.assertEqual(rows[0].state, "sent")
        self.assertEqual(rows[0].bus_event_id, "6f1c")
        self.assertEqual(rows[1].state, "failed")
        self.assertIn("unknown_event_type", rows[1].last_error)
        rows[1].action_requeue()
        self.assertEqual((rows[1].state, rows[1].attempts), ("pending", 0))

    def test_an_outage_keeps_rows_pending_for_the_cron_with_the_same_key(self):
        booking = self._booking()
        booking.action_reserve()
        row = self._rows(booking)
        key, body = row.idempotency_key, row.body
        with patch(SEND, side_effect=IpaiTransportError("connection refused")):
            row._ipai_deliver()
        self.assertEqual((row.state, row.attempts), ("pending", 1))
        self.assertGreater(row.next_attempt_at, fields.Datetime.now())
        row.next_attempt_at = fields.Datetime.now() - dt.timedelta(days=1)
        with patch(SEND, return_value=IpaiResponse(200, {"id": "x", "status": "duplicate"})) as send:
            self.Queue._cron_send_pending()
        self.assertEqual(send.call_args.args[2:4], (body, key))
        self.assertEqual(row.state, "sent")

    def test_the_overdue_cron_escalates_once_per_level(self):
        now = fields.Datetime.now()
        booking = self._booking(start=now - dt.timedelta(days=5), end=now - dt.timedelta(days=4))
        booking.action_checkout()
        booking.env["ipai.asset.booking"]._cron_ipai_overdue()
        booking.env["ipai.asset.booking"]._cron_ipai_overdue()
        overdue = self._rows(booking).filtered(lambda r: r.event_type == "asset.overdue")
        self.assertEqual(len(overdue), 1)
        payload = json.loads(overdue.body)["payload"]
        self.assertEqual((payload["escalation_level"], payload["days_overdue"]), (2, 4))
        self.assertEqual(booking.ipai_overdue_level, 2)

    def test_finance_tasks_emit_created_and_stage_events(self):
        project = self.env["project.project"].create({"name": "Month-end close", "ipai_finance": True})
        review = self.env["project.task.type"].create({"name": "For Review", "project_ids": [Command.link(project.id)]})
        filed = self.env["project.task.type"].create(
            {"name": "Lodged", "ipai_finance_event": "filed", "project_ids": [Command.link(project.id)]}
        )
        task = self.env["project.task"].create(
            {"name": "BIR 1601-C October", "project_id": project.id, "ipai_bir_form": "1601-C", "ipai_period": "2026-10"}
        )
        task.write({"stage_id": review.id})
        task.write({"stage_id": filed.id, "ipai_reference_no": "eFPS-123"})
        rows = self._rows(task)
        self.assertEqual(
            rows.mapped("event_type"), ["finance_task.created", "finance_task.submitted", "finance_task.filed"]
        )
        payload = json.loads(rows[-1].body)["payload"]
        self.assertEqual((payload["bir_form"], payload["period"], payload["reference_no"]), ("1601-C", "2026-10", "eFPS-123"))
        self.assertTrue(payload["filed_at"])

    def test_tasks_outside_finance_projects_emit_nothing(self):
        project = self.env["project.project"].create({"name": "Marketing"})
        task = self.env["project.task"].create({"name": "Banner", "project_id": project.id})
        self.assertFalse(self._rows(task))

    def test_an_expense_report_submit_and_refuse_queue_one_event_per_expense(self):
        product = self.env["product.product"].create({"name": "Meals", "can_be_expensed": True, "standard_price": 0})
        expenses = self.env["hr.expense"].create(
            [
                {"name": "Client lunch", "employee_id": self.employee.id, "product_id": product.id,
                 "total_amount_currency": 1250.5},
                {"name": "Taxi", "employee_id": self.employee.id, "product_id": product.id,
                 "total_amount_currency": 320.0},
            ]
        )
        sheet = self.env["hr.expense.sheet"].create(
            {"name": "November", "employee_id": self.employee.id, "expense_line_ids": [Command.set(expenses.ids)]}
        )
        sheet.action_submit_sheet()
        submitted = self.Queue.search([("event_type", "=", "expense.submitted"), ("aggregate_id", "in", [str(i) for i in expenses.ids])])
        self.assertEqual(len(submitted), 2)
        payload = json.loads(submitted[0].body)["payload"]
        self.assertEqual(payload["sheet_id"], sheet.id)
        self.assertEqual(payload["status"], "submit")
        self.assertEqual(payload["category"], "Meals")
        self.assertTrue(payload["submitted_at"])
        sheet._do_refuse("No receipt")
        rejected = self.Queue.search([("event_type", "=", "expense.rejected"), ("aggregate_id", "in", [str(i) for i in expenses.ids])])
        self.assertEqual(len(rejected), 2)
        self.assertEqual(json.loads(rejected[0].body)["payload"]["reason"], "No receipt")
