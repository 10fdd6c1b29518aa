from . import models


def post_init_hook(env):
    """Expense reports already paid when the addon is installed must not be announced
    as newly paid by the paid-detection cron."""
    env.cr.execute(
        """
        UPDATE hr_expense e
           SET ipai_paid_emitted = TRUE
          FROM hr_expense_sheet s
         WHERE e.sheet_id = s.id
           AND s.state = 'done'
        """
    )
