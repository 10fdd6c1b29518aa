"""Expense events (SPEC §4, aggregate = ``hr.expense``, one event per expense line).

Hook points are Odoo 18's ``hr.expense.sheet`` methods where the state really changes:

* ``_do_submit``    (called by ``action_submit_sheet``)                  -> expense.submitted
* ``_do_approve``   (``action_approve_expense_sheets`` and the duplicate
  wizard; a sheet with duplicates returns a wizard before approving)     -> expense.approved
* ``_do_refuse``    (the refuse wizard's ``action_refuse``, ``ipai_refuse``) -> expense.rejected
* state ``done``    after ``action_sheet_move_post`` (company-paid), after a payment
  registered through ``account.payment.register``, or found by the cron (bank
  reconciliation and any other path)                                     -> expense.paid
"""

from odoo import api, fields, models

_EMPLOYEE_CODE_FIELDS = ("employee_code", "registration_number", "barcode", "identification_id")


def _employee_code(employee):
    for name in _EMPLOYEE_CODE_FIELDS:
        if name in employee._fields and employee[name]:
            return employee[name]
    return ""


class HrExpense(models.Model):
    _inherit = "hr.expense"

    ipai_paid_emitted = fields.Boolean(
        string="IPAI paid event emitted",
        copy=False,
        readonly=True,
        help="Set once expense.paid is queued; cleared when the report is reset to draft.",
    )

    def _ipai_facts(self, sheet=None):
        """The expense as plain values for ``utils.payloads.expense_payload``."""
        self.ensure_one()
        sheet = sheet or self.sheet_id
        employee = self.employee_id.sudo()
        amount = self.total_amount_currency if "total_amount_currency" in self._fields else self.total_amount
        return {
            "expense_id": self.id,
            "employee_id": employee.id,
            "employee_name": employee.name,
            "employee_code": _employee_code(employee),
            "employee_email": employee.work_email,
            "amount": amount,
            "currency": self.currency_id.name,
            "description": self.name,
            "date": self.date,
            "category": self.product_id.name or "Other",
            "submitted_at": sheet.ipai_submitted_at if sheet else False,
            "sheet_id": sheet.id if sheet else False,
            # The report's state after the change (submit/approve/post/done/cancel).
            "status": sheet.state if sheet else self.state,
        }


class HrExpenseSheet(models.Model):
    _inherit = "hr.expense.sheet"

    ipai_submitted_at = fields.Datetime(string="Submitted At", readonly=True, copy=False)

    # ------------------------------------------------------------------------ emitting

    def _ipai_emit(self, event_type, expenses=None, **event_fields):
        """Queues ``event_type`` for each expense line of these reports (or of
        ``expenses``), in the current transaction."""
        queue = self.env["ipai.event.queue"]
        if not queue._ipai_enabled():
            return
        for sheet in self:
            lines = sheet.expense_line_ids if expenses is None else (expenses & sheet.expense_line_ids)
            for expense in lines:
                facts = expense._ipai_facts(sheet)
                facts.update(event_fields)
                stamps = [d for d in (expense.write_date, sheet.write_date) if d]
                queue.enqueue(
                    event_type,
                    expense.id,
                    facts,
                    record=expense,
                    write_date=max(stamps) if stamps else None,
                )

    def _ipai_payment_ref(self):
        self.ensure_one()
        moves = self.sudo().account_move_ids
        payments = self.env["account.payment"].sudo()
        if "origin_payment_id" in moves._fields:
            payments |= moves.mapped("origin_payment_id")
        if hasattr(moves, "_get_reconciled_payments"):
            payments |= moves._get_reconciled_payments()
        names = [n for n in payments.mapped("name") if n and n != "/"]
        names = names or [n for n in moves.mapped("name") if n and n != "/"]
        return ", ".join(sorted(set(names))) or self.name

    def _ipai_emit_paid(self):
        """expense.paid for the lines of reports now ``done`` that have not had one yet.
        Safe to call from any path, any number of times."""
        now = fields.Datetime.now()
        for sheet in self.filtered(lambda s: s.state == "done"):
            lines = sheet.expense_line_ids.filtered(lambda e: not e.ipai_paid_emitted)
            if not lines:
                continue
            sheet._ipai_emit("expense.paid", expenses=lines, paid_at=now, payment_ref=sheet._ipai_payment_ref())
            lines.sudo().write({"ipai_paid_emitted": True})

    @api.model
    def _cron_ipai_scan_paid(self, limit=500):
        """Cron: reports paid through a path without a hook (e.g. bank reconciliation)."""
        sheets = self.sudo().search(
            [("state", "=", "done"), ("expense_line_ids.ipai_paid_emitted", "=", False)],
            limit=limit,
        )
        sheets._ipai_emit_paid()

    # ---------------------------------------------------------------------------- hooks

    def _do_submit(self):
        res = super()._do_submit()
        self.sudo().write({"ipai_submitted_at": fields.Datetime.now()})
        self._ipai_emit("expense.submitted")
        return res

    def _do_approve(self):
        before = {sheet.id: sheet.state for sheet in self}
        res = super()._do_approve()
        approved = self.filtered(lambda s: before.get(s.id) in ("draft", "submit") and s.state in ("approve", "post", "done"))
        approved._ipai_emit("expense.approved", approved_by=self.env.user.name, approved_at=fields.Datetime.now())
        approved._ipai_emit_paid()
        return res

    def _do_refuse(self, reason):
        res = super()._do_refuse(reason)
        self._ipai_emit("expense.rejected", reason=reason or "-", refused_by=self.env.user.name)
        return res

    def action_sheet_move_post(self):
        res = super().action_sheet_move_post()
        self._ipai_emit_paid()
        return res

    def _do_reset_approval(self):
        res = super()._do_reset_approval()
        self.expense_line_ids.sudo().write({"ipai_paid_emitted": False})
        return res

    # ------------------------------------------------------------------ RPC entry point

    def ipai_refuse(self, reason):
        """Refuse with a reason over JSON-RPC (the bus's Mattermost approvals call this;
        ``_do_refuse`` is private). Same rights check as the refuse wizard."""
        self._check_can_refuse()
        self._do_refuse(reason)
        return True
