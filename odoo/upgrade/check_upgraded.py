# Run by scripts/test-odoo.sh in `odoo-bin shell` after upgrading the database seeded by
# seed_previous.py to the current ipai_enterprise_bridge: the 18.0.1.1.0 migration ran, the
# current version's rules hold on old data, and 18.0.1.3.0's records exist.
# Prints UPGRADE-CHECK OK, or what is wrong.
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
# 18.0.1.3.0 (reconciliation, SPEC §11): the digest's model, cron and index, and the bus's
# group, none of them implied by the administrators' group.
if "ipai.bus.digest" not in env:
    problems.append("no model ipai.bus.digest")
cron = env.ref("ipai_enterprise_bridge.ir_cron_ipai_send_digest", raise_if_not_found=False)
if not cron or not cron.active or cron.code.strip() != "model._cron_send_digest()":
    problems.append("the digest cron is missing or inactive")
bus_group = env.ref("ipai_enterprise_bridge.group_ipai_bus", raise_if_not_found=False)
if not bus_group:
    problems.append("no group ipai_enterprise_bridge.group_ipai_bus")
elif env.ref("base.user_admin").has_group("ipai_enterprise_bridge.group_ipai_bus"):
    problems.append("the administrator is in the bus's group")
env.cr.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'ipai_event_queue_create_date_idx'")
if not env.cr.fetchone():
    problems.append("no index on ipai_event_queue.create_date")
env.cr.rollback()
print("UPGRADE-CHECK " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
