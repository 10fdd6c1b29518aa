"""expense.paid when a payment is registered for an expense report's bill."""

from odoo import models


class AccountPaymentRegister(models.TransientModel):
    _inherit = "account.payment.register"

    def _create_payments(self):
        payments = super()._create_payments()
        moves = self.line_ids.move_id
        if "expense_sheet_id" in moves._fields:
            moves.expense_sheet_id._ipai_emit_paid()
        return payments
