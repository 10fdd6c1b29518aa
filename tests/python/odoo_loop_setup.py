"""Prepares a copy of the addon's clean Odoo 18 install for the Odoo loop suite
(tests/tests/odoo_loop.rs). Read on stdin by ``odoo-bin shell -d <db> --no-http``
(``env`` is the superuser's environment); parameters come from the environment:

    IPAI_LOOP_WEBHOOK_URL   the bus's /odoo-webhook URL (``ipai.webhook.url``)
    IPAI_LOOP_SECRET        the bus's secret list (``ipai.webhook.secret``; the addon signs
                            with its first entry)

Makes the people of the loop, as real users (password = login):

* Juan dela Cruz, an employee (``juan.delacruz@example.com``), whose manager is
* Maria Santos (``maria.santos@example.com``), the approver of his expense reports
  (``employee.parent_id.user_id``, so ``hr.expense.sheet.user_id``): the login the
  Mattermost stand-in's directory knows;
* Ana Reyes (``ana.reyes@example.com``), an accountant (``account.group_account_manager``, and
  the expense officer right ``hr_expense.group_hr_expense_user`` without which she cannot
  read a report to post it; a project user for the month-end close tasks);
* the bus (``bus@example.com``), an expense administrator with an API key, the one the
  bus's approvals and handlers call Odoo as, and the addon's bus integration user
  (``ipai_enterprise_bridge.group_ipai_bus``: it may ask Odoo to resend the events
  reconciliation found missing, ``ipai.event.queue.ipai_resend_keys``);
* the administrator ``admin`` (password ``admin``) is the install's own;

and a bookable projector and a finance project ("Month-end close") whose stages emit
``finance_task.created/in_progress/submitted/approved/filed``.

Prints one line ``IPAI-LOOP {json}`` with the ids and the bus's API key.
"""

import json
import os

from odoo import Command

icp = env["ir.config_parameter"].sudo()  # noqa: F821 (odoo-bin shell)
icp.set_param("ipai.webhook.url", os.environ["IPAI_LOOP_WEBHOOK_URL"])
icp.set_param("ipai.webhook.secret", os.environ["IPAI_LOOP_SECRET"])

Users = env["res.users"].with_context(no_reset_password=True, mail_create_nolog=True)  # noqa: F821


def user(login, name, groups):
    return Users.create(
        {
            "name": name,
            "login": login,
            "password": login,
            "email": login,
            "groups_id": [Command.set([env.ref(g).id for g in ["base.group_user"] + groups])],  # noqa: F821
        }
    )


maria = user("maria.santos@example.com", "Maria Santos", ["hr_expense.group_hr_expense_team_approver"])
juan = user("juan.delacruz@example.com", "Juan dela Cruz", [])
ana = user(
    "ana.reyes@example.com",
    "Ana Reyes",
    ["account.group_account_manager", "hr_expense.group_hr_expense_user", "project.group_project_user"],
)
bus = user("bus@example.com", "IPAI Bus", ["hr_expense.group_hr_expense_manager", "ipai_enterprise_bridge.group_ipai_bus"])

Employees = env["hr.employee"]  # noqa: F821
maria_emp = Employees.create({"name": "Maria Santos", "user_id": maria.id, "work_email": maria.email})
juan_emp = Employees.create(
    {
        "name": "Juan dela Cruz",
        "user_id": juan.id,
        "work_email": juan.email,
        "parent_id": maria_emp.id,
        "ipai_employee_code": "E-0042",
    }
)

product = env["product.product"].create(  # noqa: F821
    {"name": "Meals", "can_be_expensed": True, "standard_price": 0, "type": "service"}
)

# Asset: a bookable projector.
equipment = env["maintenance.equipment"].create(  # noqa: F821
    {"name": "Projector Epson EB-X51", "serial_no": "PRJ-0012", "location": "Makati HQ", "ipai_bookable": True}
)

# Finance: a finance project whose stages emit the finance_task events (the explicit field).
Stage = env["project.task.type"]  # noqa: F821
stages = {
    event: Stage.create({"name": name, "sequence": seq, "ipai_finance_event": event}).id
    for seq, (event, name) in enumerate(
        [("created", "To Do"), ("in_progress", "Preparing"), ("submitted", "For Review"),
         ("approved", "Approved"), ("filed", "Filed")]
    )
}
project = env["project.project"].create(  # noqa: F821
    {"name": "Month-end close", "ipai_finance": True, "type_ids": [Command.set(list(stages.values()))]}
)

key = env["res.users.apikeys"].with_user(bus).sudo()._generate(None, "ipai bus (loop suite)", False)  # noqa: F821

env.cr.commit()  # noqa: F821
print(
    "IPAI-LOOP "
    + json.dumps(
        {
            "maria_uid": maria.id,
            "juan_uid": juan.id,
            "ana_uid": ana.id,
            "bus_uid": bus.id,
            "maria_employee": maria_emp.id,
            "juan_employee": juan_emp.id,
            "product": product.id,
            "bus_key": key,
            "equipment": equipment.id,
            "project": project.id,
            "stages": stages,
            "company_currency": env.company.currency_id.name,  # noqa: F821
        }
    )
)
