"""18.0.1.1.0: stage events and employee codes become explicit fields (the names and
national IDs are no longer read at run time): fill them once from the old sources."""

from odoo import SUPERUSER_ID, api

from odoo.addons.ipai_enterprise_bridge import hooks


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    hooks.fill_stage_events(env)
    hooks.fill_employee_codes(env)
    # 1.0 marked lines "paid" on a partial payment or a reversal: let them be announced
    # when (and only when) their report is paid in full.
    cr.execute(
        """
        UPDATE hr_expense e
           SET ipai_paid_emitted = FALSE
          FROM hr_expense_sheet s
         WHERE e.sheet_id = s.id
           AND e.ipai_paid_emitted
           AND COALESCE(s.payment_state, 'not_paid') NOT IN ('paid', 'in_payment')
        """
    )
