# Run by scripts/test-odoo.sh in `odoo-bin shell` on a database where the previous release
# of ipai_enterprise_bridge (18.0.1.0.0) is installed: data its 18.0.1.1.0 migration turns
# into the explicit fields. check_upgraded.py reads the result after the upgrade.
# `env` is the shell's superuser environment.
stage = env["project.task.type"].create({"name": "Filed with BIR"})
manager = env["hr.employee"].create({"name": "Upgrade Manager", "work_email": "m@example.com"})
employee = env["hr.employee"].create(
    {"name": "Upgrade Employee", "work_email": "e@example.com", "parent_id": manager.id}
)
product = env["product.product"].create({"name": "Upgrade Meals", "can_be_expensed": True, "standard_price": 0})
expense = env["hr.expense"].create(
    {"name": "Dinner", "employee_id": employee.id, "product_id": product.id, "total_amount_currency": 80.0}
)
sheet = env["hr.expense.sheet"].create(
    {"name": "Upgrade report", "employee_id": employee.id, "expense_line_ids": [(6, 0, expense.ids)]}
)
# 1.0 marked lines "paid" on a partial payment: a line flagged on an unpaid report.
env.cr.execute("UPDATE hr_expense SET ipai_paid_emitted = TRUE WHERE id = %s", [expense.id])
env["ir.config_parameter"].set_param(
    "ipai.upgrade_check", "%d,%d" % (stage.id, expense.id)
)
env.cr.commit()
print("UPGRADE-SEED OK")
