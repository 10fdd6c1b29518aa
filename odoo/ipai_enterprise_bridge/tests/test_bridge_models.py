"""Server tests (Odoo's runner, a database with the addon installed):

    odoo-bin -d <db> -i ipai_enterprise_bridge --test-enable --test-tags /ipai_enterprise_bridge --stop-after-init

They check that the hooks queue the right events in the business transaction (and wake
the sender cron instead of sending), that the sender writes each outcome and keeps each
record's order, and the access rules. The HTTP call is patched: no network. The pure
tests (``test_pure_*.py``) run the sender against real loopback servers.
"""

import datetime as dt
import json
from unittest.mock import patch

from freezegun import freeze_time

from odoo import Command, fields
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import TransactionCase, new_test_user, tagged

from ..utils.ipai_webhook import IpaiResponse, IpaiTransportError

SEND = "odoo.addons.ipai_enterprise_bridge.models.ipai_event_queue.send_ipai_event"
SENDER_CRON = "ipai_enterprise_bridge.ir_cron_ipai_send_events"


def accepted(*_args, **_kw):
    return IpaiResponse(202, {"id": "bus-id", "status": "queued"})


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
        cls.user = new_test_user(cls.env, login="juan", groups="base.group_user")
        cls.other_user = new_test_user(cls.env, login="pedro", groups="base.group_user")
        cls.employee = cls.env["hr.employee"].create({
            "name": "Juan dela Cruz", "work_email": "juan@example.com", "parent_id": cls.manager.id,
            "user_id": cls.user.id, "ipai_employee_code": "E-0042", "identification_id": "NATIONAL-123",
        })
        cls.other = cls.env["hr.employee"].create({"name": "Pedro", "user_id": cls.other_user.id})
        # Company-paid expenses need the outstanding account an accountant sets in the
        # Expenses settings (18.0's _get_expense_account_destination refuses without it).
        cls.env.company.expense_outstanding_account_id = cls.env["account.account"].create(
            {"name": "Outstanding expense payments", "code": "101990", "account_type": "asset_current", "reconcile": True}
        )
        cls.equipment = cls.env["maintenance.equipment"].create(
            {"name": "Projector Epson EB-X51", "serial_no": "PRJ-0012", "location": "Makati HQ", "ipai_bookable": True}
        )

    def _rows(self, record):
        return self.Queue.search([("res_model", "=", record._name), ("res_id", "=", record.id)], order="id")

    def _booking(self, employee=None, **vals):
        now = fields.Datetime.now()
        return self.env["ipai.asset.booking"].create({
            "equipment_id": self.equipment.id,
            "employee_id": (employee or self.employee).id,
            "start": vals.pop("start", now + dt.timedelta(hours=1)),
            "end": vals.pop("end", now + dt.timedelta(hours=9)),
            **vals,
        })

    def _send(self, **patch_kw):
        with patch(SEND, **patch_kw) as send:
            summary = self.Queue._ipai_send_due()
        return send, summary

    # ------------------------------------------------------------ queue and delivery

    def test_a_booking_lifecycle_queues_one_event_per_step_and_sends_nothing_in_the_request(self):
        cron = self.env.ref(SENDER_CRON)
        triggers_before = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        with patch(SEND) as send:
            booking = self._booking()
            booking.action_reserve()
            booking.action_checkout()
            booking.action_checkin()
        send.assert_not_called()
        # One wake-up of the sender for the transaction, committed with the change.
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), triggers_before + 1)
        rows = self._rows(booking)
        self.assertEqual(rows.mapped("event_type"), ["asset.reserved", "asset.checked_out", "asset.checked_in"])
        self.assertEqual(set(rows.mapped("state")), {"pending"})
        event = json.loads(rows[0].body)
        self.assertEqual((event["aggregate_type"], event["aggregate_id"]), ("asset_booking", str(booking.id)))
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

    def test_the_sender_sends_in_order_and_records_each_outcome(self):
        a = self._booking()
        b = self._booking(start=fields.Datetime.now() + dt.timedelta(days=2),
                          end=fields.Datetime.now() + dt.timedelta(days=3))
        a.action_reserve()
        b.action_reserve()
        a.action_checkout()
        answers = {a.id: [IpaiResponse(422, {"error": "unknown_event_type", "message": "no"})],
                   b.id: [IpaiResponse(202, {"id": "6f1c", "status": "queued"})]}

        def bus(url, secret, body, key, **kw):
            return answers[int(json.loads(body)["aggregate_id"])].pop(0)

        with self.assertLogs("odoo.addons.ipai_enterprise_bridge.utils.sender", "ERROR") as logged:
            send, summary = self._send(side_effect=bus)
        self.assertIn("failed for good: HTTP 422", logged.output[0])
        self.assertEqual(send.call_count, 2)  # a's checkout waits behind its failed reservation
        url, secret, body, key = send.call_args_list[0].args[:4]
        self.assertEqual((url, secret), ("http://127.0.0.1:9/odoo-webhook", "test-secret"))
        ra, rb = self._rows(a), self._rows(b)
        self.assertEqual((body, key), (ra[0].body, ra[0].idempotency_key))
        self.assertEqual(ra.mapped("state"), ["failed", "pending"])
        self.assertEqual(ra[1].attempts, 0)
        self.assertIn("unknown_event_type", ra[0].last_error)
        self.assertTrue(ra[0].needs_attention)
        self.assertTrue(ra[0].activity_ids, "an admin is told about the failed row")
        self.assertEqual((rb.state, rb.bus_event_id), ("sent", "6f1c"))
        # The admin requeues: the failed row goes first, then the checkout.
        ra[0].action_requeue()
        send, _summary = self._send(side_effect=accepted)
        self.assertEqual(ra.mapped("state"), ["sent", "pending"])
        send, _summary = self._send(side_effect=accepted)
        self.assertEqual(ra.mapped("state"), ["sent", "sent"])

    def test_a_cancelled_row_releases_its_record(self):
        booking = self._booking()
        booking.action_reserve()
        booking.action_checkout()
        first, second = self._rows(booking)
        first.write({"state": "failed", "last_error": "HTTP 422 x"})
        self._send(side_effect=accepted)
        self.assertEqual(second.state, "pending")
        first.action_cancel()
        self._send(side_effect=accepted)
        self.assertEqual((first.state, second.state), ("cancelled", "sent"))

    def test_no_answer_keeps_rows_pending_with_the_same_key_and_the_sender_does_not_raise(self):
        booking = self._booking()
        booking.action_reserve()
        row = self._rows(booking)
        key, body = row.idempotency_key, row.body
        for error in (IpaiTransportError("connection reset"), RuntimeError("bug in a library")):
            row.next_attempt_at = fields.Datetime.now() - dt.timedelta(days=1)
            self._send(side_effect=error)
            self.assertEqual(row.state, "pending")
            self.assertGreater(row.next_attempt_at, fields.Datetime.now())
        self.assertEqual(row.attempts, 2)
        self.assertIn("bug in a library", row.last_error)
        row.next_attempt_at = fields.Datetime.now() - dt.timedelta(days=1)
        send, _summary = self._send(return_value=IpaiResponse(200, {"id": "x", "status": "duplicate"}))
        self.assertEqual(send.call_args.args[2:4], (body, key))
        self.assertEqual(row.state, "sent")

    def test_a_401_is_retried_and_alerts_an_admin_once(self):
        a, b = self._booking(), self._booking(start=fields.Datetime.now() + dt.timedelta(days=2),
                                              end=fields.Datetime.now() + dt.timedelta(days=3))
        a.action_reserve()
        b.action_reserve()
        unauthorized = IpaiResponse(401, {"error": "invalid_signature", "message": "bad"})
        self._send(return_value=unauthorized)
        for row in (self._rows(a) | self._rows(b)):
            row.next_attempt_at = fields.Datetime.now() - dt.timedelta(days=1)
        self._send(return_value=unauthorized)
        rows = self._rows(a) | self._rows(b)
        self.assertEqual(set(rows.mapped("state")), {"pending"})
        activities = self.env["mail.activity"].search([("res_model", "=", "ipai.event.queue"), ("res_id", "in", rows.ids)])
        self.assertTrue(activities)
        self.assertEqual(len(set(activities.mapped("summary"))), 1, "one alert per cause, not per row")

    def test_the_cron_entry_point_never_raises(self):
        booking = self._booking()
        booking.action_reserve()
        with patch.object(type(self.Queue), "_ipai_send_due", side_effect=RuntimeError("boom")), \
                self.assertLogs("odoo.addons.ipai_enterprise_bridge.models.ipai_event_queue", "ERROR") as logged:
            self.Queue._cron_send_pending()  # logged, not raised
        self.assertIn("the rows stay queued", logged.output[0])

    # ------------------------------------------------------------------- bookings

    def test_the_overdue_cron_escalates_once_per_level(self):
        now = fields.Datetime.now().replace(microsecond=0)
        booking = self._booking(start=now - dt.timedelta(days=5), end=now - dt.timedelta(days=4))
        booking.action_checkout()
        with freeze_time(now):  # exactly 4 days past the end, however slow the test
            booking.env["ipai.asset.booking"]._cron_ipai_overdue()
            booking.env["ipai.asset.booking"]._cron_ipai_overdue()
        overdue = self._rows(booking).filtered(lambda r: r.event_type == "asset.overdue")
        self.assertEqual(len(overdue), 1)
        payload = json.loads(overdue.body)["payload"]
        self.assertEqual((payload["escalation_level"], payload["days_overdue"]), (2, 4))
        self.assertEqual(booking.ipai_overdue_level, 2)

    def test_employees_see_and_change_only_their_own_bookings(self):
        mine = self._booking()
        theirs = self._booking(employee=self.other, start=fields.Datetime.now() + dt.timedelta(days=5),
                               end=fields.Datetime.now() + dt.timedelta(days=6))
        Booking = self.env["ipai.asset.booking"].with_user(self.user)
        self.assertEqual(Booking.search([("id", "in", (mine | theirs).ids)]), mine.with_user(self.user))
        with self.assertRaises(AccessError):
            theirs.with_user(self.user).action_cancel()
        mine.with_user(self.user).action_reserve()
        self.assertEqual(mine.state, "reserved")

    def test_a_clash_with_someone_elses_booking_is_seen(self):
        start = fields.Datetime.now() + dt.timedelta(days=10)
        theirs = self._booking(employee=self.other, start=start, end=start + dt.timedelta(hours=4))
        theirs.action_reserve()
        mine = self._booking(start=start + dt.timedelta(hours=1), end=start + dt.timedelta(hours=2))
        with self.assertRaises(ValidationError):
            mine.with_user(self.user).action_reserve()

    def test_employees_can_pick_bookable_equipment_only(self):
        hidden = self.env["maintenance.equipment"].create({"name": "CFO laptop"})
        visible = self.env["maintenance.equipment"].with_user(self.user).search([("id", "in", (hidden | self.equipment).ids)])
        self.assertEqual(visible.ids, self.equipment.ids)

    def test_no_national_id_reaches_a_payload(self):
        booking = self._booking()
        booking.action_reserve()
        body = self._rows(booking).body
        self.assertNotIn("NATIONAL-123", body)

    # --------------------------------------------------------------------- finance

    def _finance_project(self, **vals):
        project = self.env["project.project"].create({"name": "Month-end close", "ipai_finance": True, **vals})
        stage = lambda name, event=False: self.env["project.task.type"].create(  # noqa: E731
            {"name": name, "ipai_finance_event": event, "project_ids": [Command.link(project.id)]})
        return project, stage

    def test_finance_tasks_emit_created_and_stage_events_by_the_explicit_field_only(self):
        project, stage = self._finance_project()
        review = stage("For Review", "submitted")
        done = stage("Done")  # a name that reads like an event, but no explicit event: nothing
        filed = stage("Lodged", "filed")
        task = self.env["project.task"].create(
            {"name": "BIR 1601-C October", "project_id": project.id, "ipai_bir_form": "1601-C", "ipai_period": "2026-10"}
        )
        task.write({"stage_id": review.id})
        task.write({"stage_id": done.id})
        task.write({"stage_id": filed.id, "ipai_reference_no": "eFPS-123"})
        rows = self._rows(task)
        self.assertEqual(rows.mapped("event_type"),
                         ["finance_task.created", "finance_task.submitted", "finance_task.filed"])
        payload = json.loads(rows[-1].body)["payload"]
        self.assertEqual((payload["bir_form"], payload["period"], payload["reference_no"]), ("1601-C", "2026-10", "eFPS-123"))
        self.assertTrue(payload["filed_at"])

    def test_a_stage_set_at_create_or_by_a_project_change_emits(self):
        project, stage = self._finance_project()
        progress = stage("Preparation", "in_progress")
        task = self.env["project.task"].create({"name": "2550M", "project_id": project.id, "stage_id": progress.id})
        self.assertEqual(self._rows(task).mapped("event_type"), ["finance_task.created", "finance_task.in_progress"])
        other, other_stage = self._finance_project(name="Q4 close")
        other_stage("Submitted", "submitted")
        task.write({"project_id": other.id})  # 18.0 recomputes the stage from the project
        self.assertEqual(self._rows(task)[-1:].event_type, "finance_task.submitted")

    def test_tasks_outside_finance_projects_emit_nothing(self):
        project = self.env["project.project"].create({"name": "Marketing"})
        task = self.env["project.task"].create({"name": "Banner", "project_id": project.id})
        self.assertFalse(self._rows(task))

    def test_a_portal_user_can_move_a_shared_task_into_a_filed_stage(self):
        portal = new_test_user(self.env, login="client", groups="base.group_portal")
        project, stage = self._finance_project(privacy_visibility="portal")
        filed = stage("Filed", "filed")
        project.message_subscribe(partner_ids=portal.partner_id.ids)
        self.env["project.collaborator"].create({"project_id": project.id, "partner_id": portal.partner_id.id})
        task = self.env["project.task"].create({"name": "0619-E", "project_id": project.id})
        task.with_user(portal).write({"stage_id": filed.id})
        self.assertTrue(task.ipai_filed_at)
        self.assertEqual(self._rows(task)[-1:].event_type, "finance_task.filed")

    # --------------------------------------------------------------------- expenses

    def _sheet(self, payment_mode="own_account", lines=2):
        product = self.env["product.product"].create({"name": "Meals", "can_be_expensed": True, "standard_price": 0})
        expenses = self.env["hr.expense"].create([
            {"name": "Line %d" % i, "employee_id": self.employee.id, "product_id": product.id,
             "total_amount_currency": 100.0 * (i + 1), "payment_mode": payment_mode}
            for i in range(lines)
        ])
        return self.env["hr.expense.sheet"].create(
            {"name": "November", "employee_id": self.employee.id, "expense_line_ids": [Command.set(expenses.ids)]}
        ), expenses

    def _expense_rows(self, expenses, event_type):
        return self.Queue.search([("event_type", "=", event_type), ("aggregate_id", "in", [str(i) for i in expenses.ids])])

    def test_report_transitions_are_stamped_once_and_shared_by_every_line(self):
        sheet, expenses = self._sheet()
        sheet.action_submit_sheet()
        submitted = self._expense_rows(expenses, "expense.submitted")
        self.assertEqual(len(submitted), 2)
        payloads = [json.loads(r.body)["payload"] for r in submitted]
        self.assertEqual(payloads[0]["sheet_id"], sheet.id)
        self.assertEqual(payloads[0]["employee_code"], "E-0042")
        self.assertEqual(len({p["submitted_at"] for p in payloads}), 1)
        sheet._do_refuse("No receipt")
        rejected = [json.loads(r.body)["payload"] for r in self._expense_rows(expenses, "expense.rejected")]
        self.assertEqual(len(rejected), 2)
        self.assertEqual(rejected[0]["reason"], "No receipt")
        self.assertTrue(sheet.ipai_refused_at)
        self.assertEqual({p["refused_at"] for p in rejected}, {fields.Datetime.to_string(sheet.ipai_refused_at).replace(" ", "T") + "Z"})

    def test_approval_is_stamped_and_a_company_paid_report_is_announced_paid_once(self):
        sheet, expenses = self._sheet(payment_mode="company_account")
        sheet.action_submit_sheet()
        sheet._do_approve()
        approved = [json.loads(r.body)["payload"] for r in self._expense_rows(expenses, "expense.approved")]
        self.assertEqual(len(approved), 2)
        self.assertEqual(len({p["approved_at"] for p in approved}), 1)
        self.assertTrue(sheet.ipai_approved_at)
        sheet.action_sheet_move_post()
        self.assertIn(sheet.payment_state, ("paid", "in_payment"))
        paid = self._expense_rows(expenses, "expense.paid")
        self.assertEqual(len(paid), 2)
        self.assertTrue(all(expenses.mapped("ipai_paid_emitted")))
        self.env["hr.expense.sheet"]._cron_ipai_scan_paid()
        self.assertEqual(len(self._expense_rows(expenses, "expense.paid")), 2)

    def test_paid_is_not_marked_emitted_while_nothing_can_be_queued(self):
        sheet, expenses = self._sheet(payment_mode="company_account")
        sheet.action_submit_sheet()
        sheet._do_approve()
        self.env["ir.config_parameter"].sudo().set_param("ipai.webhook.url", "")
        sheet.action_sheet_move_post()
        self.assertFalse(any(expenses.mapped("ipai_paid_emitted")))
        self.env["ir.config_parameter"].sudo().set_param("ipai.webhook.url", "http://127.0.0.1:9/odoo-webhook")
        self.env["hr.expense.sheet"]._cron_ipai_scan_paid()
        self.assertEqual(len(self._expense_rows(expenses, "expense.paid")), 2)
