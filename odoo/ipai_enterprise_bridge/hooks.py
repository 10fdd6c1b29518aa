"""Install and upgrade steps that turn old data into the addon's explicit fields once
(the runtime reads only the explicit fields):

* a finance stage's "IPAI finance event" from its name, where not set;
* an employee's "Employee Code (IPAI)" from Odoo's ``registration_number``, where not set;
* expense lines of reports already paid in full marked as announced, so installing the
  addon does not announce old payments.
"""

import logging

from .utils.payloads import FULLY_PAID_PAYMENT_STATES, stage_event_from_name

_logger = logging.getLogger(__name__)


def fill_stage_events(env):
    stages = env["project.task.type"].sudo().with_context(active_test=False).search(
        [("ipai_finance_event", "=", False)]
    )
    for stage in stages:
        event = stage_event_from_name(stage.with_context(lang="en_US").name)
        if event:
            stage.ipai_finance_event = event
            _logger.info("IPAI: stage %r now emits finance_task.%s (from its name)", stage.name, event)


def fill_employee_codes(env):
    employees = env["hr.employee"].sudo().with_context(active_test=False)
    if "registration_number" not in employees._fields:
        return
    for employee in employees.search([("ipai_employee_code", "=", False), ("registration_number", "!=", False)]):
        employee.ipai_employee_code = employee.registration_number


def mark_paid_reports(env):
    env.cr.execute(
        """
        UPDATE hr_expense e
           SET ipai_paid_emitted = TRUE
          FROM hr_expense_sheet s
         WHERE e.sheet_id = s.id
           AND s.state = 'done'
           AND s.payment_state IN %s
        """,
        [tuple(FULLY_PAID_PAYMENT_STATES)],
    )


def post_init_hook(env):
    fill_stage_events(env)
    fill_employee_codes(env)
    mark_paid_reports(env)
