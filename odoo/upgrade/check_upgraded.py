# Run by scripts/test-odoo.sh in `odoo-bin shell` after upgrading the database seeded by
# seed_previous.py to the current ipai_enterprise_bridge: the 18.0.1.1.0 migration ran and
# the current version's rules hold on old data. Prints UPGRADE-CHECK OK, or what is wrong.
from odoo.exceptions import AccessError

problems = []
module = env["ir.module.module"].search([("name", "=", "ipai_enterprise_bridge")])
manifest_version = module.get_module_info("ipai_enterprise_bridge")["version"]
if module.latest_version != manifest_version or module.state != "installed":
    problems.append("module %s at %s, manifest %s" % (module.state, module.latest_version, manifest_version))
stage_id, expense_id = (int(x) for x in env["ir.config_parameter"].get_param("ipai.upgrade_check").split(","))
stage = env["project.task.type"].browse(stage_id)
if stage.ipai_finance_event != "filed":
    problems.append("stage %r emits %r, expected 'filed'" % (stage.name, stage.ipai_finance_event))
expense = env["hr.expense"].browse(expense_id)
if expense.ipai_paid_emitted:
    problems.append("a line of an unpaid report is still marked paid")
# The guarded fields hold on upgraded data too: an ordinary user may not set the flag.
user = env["res.users"].create({"name": "Upgrade User", "login": "upgrade_user", "groups_id": [(6, 0, [env.ref("base.group_user").id])]})
try:
    expense.with_user(user).write({"ipai_paid_emitted": True})
    problems.append("an ordinary user set ipai_paid_emitted")
except AccessError:
    pass
env.cr.rollback()
print("UPGRADE-CHECK " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
