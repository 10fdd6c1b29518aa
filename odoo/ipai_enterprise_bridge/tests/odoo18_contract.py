"""What the addon relies on in Odoo 18.0: every method it overrides or calls and every
field it reads, with the 18.0 name and signature, and where it was verified. Two tests
use it: ``test_pure_odoo18_contract.py`` (no Odoo: the addon's overrides match these
signatures, and nothing here is stale) and ``test_odoo18_contract.py`` (in a real Odoo:
the running server still has them), so an upgrade breaks a test, not production.

Sources, read in the odoo/odoo repository:

* [SHEET] ``addons/hr_expense/models/hr_expense_sheet.py`` (the version with
  ``account.move.origin_payment_id``, introduced in 18.0; the sheet model is gone after
  the 18 series): ``_do_submit``, ``_do_approve``, ``_do_refuse(reason)``,
  ``_do_reset_approval``, ``action_sheet_move_post``, ``_check_can_refuse``; ``state``
  is computed ``done`` whenever ``payment_state != 'not_paid'``.
* [CRON] ``odoo/addons/base/models/ir_cron.py``, 18.0 (``MAX_BATCH_PER_CRON_JOB``,
  ``MIN_FAILURE_COUNT_BEFORE_DEACTIVATION = 5``, ``MIN_DELTA_BEFORE_DEACTIVATION = 7 days``):
  ``_trigger(self, at=None)``, ``_notify_progress(self, *, done, remaining, deactivate=False)``,
  the job's context carries ``cron_id``.
* [RETRY] ``odoo/service/model.py``: ``retrying()`` commits (running post-commit
  callbacks) before the RPC answers, hence no sending in post-commit.
* [MAINT] ``addons/maintenance/security/maintenance.xml``: ``equipment_rule_user`` shows an
  employee only followed equipment.
* [TASK] ``addons/project/models/project_task.py`` (the stored copy is a later series;
  these members are unchanged since 17.0): ``stage_id`` computed from ``project_id``
  (``_compute_stage_id``), ``state`` with ``1_done``/``1_canceled``, ``date_deadline``
  a Datetime, ``create(vals_list)``, ``write(vals)``.
* [KNOWN] not re-read here, from Odoo 18.0 as documented: ``account.payment.register.
  _create_payments(self)``, ``account.move.payment_state`` values, ``expense_sheet_id``,
  ``_get_reconciled_payments``, ``mail.activity.mixin.activity_schedule``,
  ``hr.expense.total_amount_currency``, ``res.groups.users``. The server test checks them.
"""

# (model, method) -> (parameter names after self, the module that defines it in 18.0, source)
METHODS = {
    ("hr.expense.sheet", "_do_submit"): ((), "hr_expense", "SHEET"),
    ("hr.expense.sheet", "_do_approve"): ((), "hr_expense", "SHEET"),
    ("hr.expense.sheet", "_do_refuse"): (("reason",), "hr_expense", "SHEET"),
    ("hr.expense.sheet", "_do_reset_approval"): ((), "hr_expense", "SHEET"),
    ("hr.expense.sheet", "action_sheet_move_post"): ((), "hr_expense", "SHEET"),
    ("hr.expense.sheet", "_check_can_refuse"): ((), "hr_expense", "SHEET"),
    ("account.payment.register", "_create_payments"): ((), "account", "KNOWN"),
    ("account.move", "_get_reconciled_payments"): ((), "account", "KNOWN"),
    ("project.task", "create"): (("vals_list",), "project", "TASK"),
    ("project.task", "write"): (("vals",), "project", "TASK"),
    ("ir.cron", "_trigger"): (("at",), "base", "CRON"),
    ("ir.cron", "_notify_progress"): (("done", "remaining", "deactivate"), "base", "CRON"),
    ("mail.activity.mixin", "activity_schedule"): (
        ("act_type_xmlid", "date_deadline", "summary", "note", "act_values"), "mail", "KNOWN"),
}

# Methods the addon overrides (a subset of METHODS): (model, method).
OVERRIDES = {
    ("hr.expense.sheet", "_do_submit"),
    ("hr.expense.sheet", "_do_approve"),
    ("hr.expense.sheet", "_do_refuse"),
    ("hr.expense.sheet", "_do_reset_approval"),
    ("hr.expense.sheet", "action_sheet_move_post"),
    ("account.payment.register", "_create_payments"),
    ("project.task", "create"),
    ("project.task", "write"),
}

# (model, field) -> (field type, selection values the addon relies on or None, source)
FIELDS = {
    ("hr.expense.sheet", "state"): ("selection", ("draft", "submit", "approve", "post", "done", "cancel"), "SHEET"),
    ("hr.expense.sheet", "payment_state"): ("selection", ("not_paid", "in_payment", "paid", "partial", "reversed"), "SHEET"),
    ("hr.expense.sheet", "account_move_ids"): ("one2many", None, "SHEET"),
    ("hr.expense.sheet", "expense_line_ids"): ("one2many", None, "SHEET"),
    ("hr.expense.sheet", "name"): ("char", None, "SHEET"),
    ("hr.expense", "sheet_id"): ("many2one", None, "KNOWN"),
    ("hr.expense", "employee_id"): ("many2one", None, "KNOWN"),
    ("hr.expense", "total_amount_currency"): ("monetary", None, "KNOWN"),
    ("hr.expense", "currency_id"): ("many2one", None, "KNOWN"),
    ("hr.expense", "product_id"): ("many2one", None, "KNOWN"),
    ("hr.expense", "date"): ("date", None, "KNOWN"),
    ("account.move", "expense_sheet_id"): ("many2one", None, "SHEET"),
    ("account.move", "origin_payment_id"): ("many2one", None, "SHEET"),
    ("account.move", "payment_state"): ("selection", ("not_paid", "in_payment", "paid", "partial", "reversed"), "KNOWN"),
    ("account.payment.register", "line_ids"): ("many2many", None, "KNOWN"),
    ("hr.employee", "name"): ("char", None, "KNOWN"),
    ("hr.employee", "work_email"): ("char", None, "KNOWN"),
    ("hr.employee", "parent_id"): ("many2one", None, "KNOWN"),
    ("hr.employee", "user_id"): ("many2one", None, "KNOWN"),
    ("maintenance.equipment", "serial_no"): ("char", None, "MAINT"),
    ("maintenance.equipment", "location"): ("char", None, "MAINT"),
    ("project.task", "stage_id"): ("many2one", None, "TASK"),
    ("project.task", "project_id"): ("many2one", None, "TASK"),
    ("project.task", "state"): ("selection", ("1_done", "1_canceled"), "TASK"),
    ("project.task", "date_deadline"): ("datetime", None, "TASK"),
    ("project.task", "user_ids"): ("many2many", None, "TASK"),
    ("project.task.type", "name"): ("char", None, "TASK"),
    ("res.groups", "users"): ("many2many", None, "KNOWN"),
}

# Fields read only where they exist: (model, field) -> (field type, source). 18.0
# Community has no ``hr.employee.registration_number`` (an Enterprise payroll field); the
# install hook copies it into the employee code when a database has it.
OPTIONAL_FIELDS = {
    ("hr.employee", "registration_number"): ("char", "KNOWN"),
}

# Model names the addon's classes extend (``_inherit``) with the file they live in.
INHERITED_MODELS = {
    "hr.employee": "hr_expense.py",
    "hr.expense": "hr_expense.py",
    "hr.expense.sheet": "hr_expense.py",
    "account.payment.register": "account_payment_register.py",
    "maintenance.equipment": "ipai_asset_booking.py",
    "project.project": "project.py",
    "project.task.type": "project.py",
    "project.task": "project.py",
}
