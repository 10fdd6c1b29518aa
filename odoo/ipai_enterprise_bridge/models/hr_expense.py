"""Expense events (SPEC §4, aggregate = ``hr.expense``, one event per expense line).

Hook points are Odoo 18's ``hr.expense.sheet`` methods where the state really changes
(``addons/hr_expense/models/hr_expense_sheet.py``):

* ``_do_submit``    (called by ``action_submit_sheet``)                  -> expense.submitted
* ``_do_approve``   (``action_approve_expense_sheets`` and the duplicate
  wizard; a sheet with duplicates returns a wizard before approving)     -> expense.approved
* ``_do_refuse``    (the refuse wizard's ``action_refuse``, ``ipai_refuse``) -> expense.rejected
* paid in full (state ``done`` and ``payment_state`` ``paid``/``in_payment``) after
  ``action_sheet_move_post`` (company-paid), after a payment registered through
  ``account.payment.register``, or found by the cron (bank reconciliation and any
  other path)                                                            -> expense.paid

Each report transition is stamped once on the report (``ipai_submitted_at``,
``ipai_approved_at``, ``ipai_refused_at``, ``ipai_paid_at``) and that stamp goes on every
line's event, so the bus can tell one report decision from the next (SPEC §4).
"""

from odoo import api, fields, models

from ..utils.payloads import FULLY_PAID_PAYMENT_STATES, expense_report_fully_paid
from ..utils.people import employee_facts

_REPORT_STAMPS = ("ipai_approved_at", "ipai_refused_at", "ipai_paid_at")


class HrEmployee(models.Model):
    _inherit = "hr.employee"

    ipai_employee_code = fields.Char(
        string="Employee Code (IPAI)",
        copy=False,
        groups="hr.group_hr_user",
        help="The code sent to the IPAI integration bus as employee_code. Never a national ID, "
        "tax or passport number: events reach the bus's log and chat channels.",
    )


class HrExpense(models.Model):
    _name = "hr.expense"
    _inherit = ["hr.expense", "ipai.guarded.fields"]
    # Set once expense.paid is queued: a user who could set it would silence the event.
    _ipai_guarded = {"ipai_paid_emitted": False}

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
        facts = employee_facts(self.employee_id.sudo())
        facts.pop("manager_email")
        amount = self.total_amount_currency if "total_amount_currency" in self._fields else self.total_amount
        facts.update({
            "expense_id": self.id,
            "amount": amount,
            "currency": self.currency_id.name,
            "description": self.name,
            "date": self.date,
            "category": self.product_id.name or "Other",
            "sheet_id": sheet.id if sheet else False,
            # The report's state after the change (submit/approve/post/done/cancel).
            "status": sheet.state if sheet else self.state,
        })
        if sheet:
            facts.update(sheet._ipai_stamps())
        return facts


class HrExpenseSheet(models.Model):
    _name = "hr.expense.sheet"
    _inherit = ["hr.expense.sheet", "ipai.guarded.fields"]
    # The report's decision times: the bus tells one decision from the next by them.
    _ipai_guarded = dict.fromkeys(("ipai_submitted_at",) + _REPORT_STAMPS, False)

    ipai_submitted_at = fields.Datetime(string="Submitted At", readonly=True, copy=False)
    ipai_approved_at = fields.Datetime(string="Approved At (IPAI)", readonly=True, copy=False)
    ipai_refused_at = fields.Datetime(string="Refused At (IPAI)", readonly=True, copy=False)
    ipai_paid_at = fields.Datetime(string="Paid At (IPAI)", readonly=True, copy=False)

    # ------------------------------------------------------------------------ emitting

    def _ipai_stamps(self):
        """The report's transition stamps, as payload fields."""
        self.ensure_one()
        sheet = self.sudo()
        return {
            "submitted_at": sheet.ipai_submitted_at,
            "approved_at": sheet.ipai_approved_at,
            "refused_at": sheet.ipai_refused_at,
            "paid_at": sheet.ipai_paid_at,
        }

    def _ipai_stamp(self, field_name):
        """Stamps a transition on these reports (the addon's own field: sudo, as the
        approver may not be allowed to write the report)."""
        if self:
            self.sudo().write({field_name: fields.Datetime.now()})

    def _ipai_emit(self, event_type, expenses=None, **event_fields):
        """Queues ``event_type`` for each expense line of these reports (or of
        ``expenses``), in the current transaction. Returns the lines a row was queued
        for (none while ``ipai.webhook.url`` is unset)."""
        queue = self.env["ipai.event.queue"]
        queued = self.env["hr.expense"]
        if not queue._ipai_enabled():
            return queued
        for sheet in self:
            lines = sheet.expense_line_ids if expenses is None else (expenses & sheet.expense_line_ids)
            for expense in lines:
                facts = expense._ipai_facts(sheet)
                facts.update(event_fields)
                stamps = [d for d in (expense.write_date, sheet.write_date) if d]
                row = queue._ipai_enqueue(
                    event_type,
                    expense.id,
                    facts,
                    record=expense,
                    write_date=max(stamps) if stamps else None,
                )
                if row:
                    queued |= expense
        return queued

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

    def _ipai_fully_paid(self):
        self.ensure_one()
        sheet = self.sudo()
        return expense_report_fully_paid(sheet.state, sheet.payment_state)

    def _ipai_emit_paid(self):
        """expense.paid for the lines of reports now paid in full that have not had one
        yet; a partial payment or a reversal announces nothing. Only lines a row was
        queued for are marked, so a report paid while the URL is unset is announced
        once it is set. Safe to call from any path, any number of times."""
        for sheet in self.filtered(lambda s: s._ipai_fully_paid()):
            lines = sheet.expense_line_ids.sudo().filtered(lambda e: not e.ipai_paid_emitted)
            if not lines:
                continue
            if not sheet.sudo().ipai_paid_at:
                sheet._ipai_stamp("ipai_paid_at")
            queued = sheet._ipai_emit("expense.paid", expenses=lines, payment_ref=sheet._ipai_payment_ref())
            queued.sudo().write({"ipai_paid_emitted": True})

    @api.model
    def _cron_ipai_scan_paid(self, limit=500):
        """Cron: reports paid through a path without a hook (e.g. bank reconciliation)."""
        if not self.env["ipai.event.queue"]._ipai_enabled():
            return
        sheets = self.sudo().search(
            [
                ("state", "=", "done"),
                ("payment_state", "in", list(FULLY_PAID_PAYMENT_STATES)),
                ("expense_line_ids.ipai_paid_emitted", "=", False),
            ],
            limit=limit,
        )
        sheets._ipai_emit_paid()

    # ---------------------------------------------------------------------------- hooks

    def _do_submit(self):
        res = super()._do_submit()
        self._ipai_stamp("ipai_submitted_at")
        self._ipai_emit("expense.submitted")
        return res

    def _do_approve(self):
        before = {sheet.id: sheet.state for sheet in self}
        res = super()._do_approve()
        approved = self.filtered(
            lambda s: before.get(s.id) in ("draft", "submit") and s.state in ("approve", "post", "done")
        )
        approved._ipai_stamp("ipai_approved_at")
        approved._ipai_emit("expense.approved", approved_by=self.env.user.name)
        approved._ipai_emit_paid()
        return res

    def _do_refuse(self, reason):
        res = super()._do_refuse(reason)
        self._ipai_stamp("ipai_refused_at")
        self._ipai_emit("expense.rejected", reason=reason or "-", refused_by=self.env.user.name)
        return res

    def action_sheet_move_post(self):
        res = super().action_sheet_move_post()
        self._ipai_emit_paid()
        return res

    def _do_reset_approval(self):
        res = super()._do_reset_approval()
        self.expense_line_ids.sudo().write({"ipai_paid_emitted": False})
        self.sudo().write(dict.fromkeys(_REPORT_STAMPS, False))
        return res

    # ------------------------------------------------------------------ RPC entry point

    def ipai_refuse(self, reason):
        """Refuse with a reason over JSON-RPC (the bus's Mattermost approvals call this;
        ``_do_refuse`` is private). Same rights check as the refuse wizard."""
        self._check_can_refuse()
        self._do_refuse(reason)
        return True
