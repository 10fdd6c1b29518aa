"""Finance PPM / BIR tasks (SPEC §4, aggregate = ``project.task``).

Only tasks of projects flagged "IPAI finance project" emit events:

* task created                                   -> finance_task.created
* ``write({'stage_id': ...})`` to a stage whose "IPAI finance event" is set (or, when it
  is not, whose name reads like one: "In Progress", "For Review", "Approved", "Filed")
                                                  -> finance_task.<in_progress|submitted|approved|filed>
* daily cron for tasks past their deadline and not filed/closed -> finance_task.overdue
"""

from odoo import api, fields, models

from ..utils.payloads import FINANCE_STAGE_EVENTS, days_overdue, finance_event_for_stage

_CLOSED_TASK_STATES = ("1_done", "1_canceled")


class ProjectProject(models.Model):
    _inherit = "project.project"

    ipai_finance = fields.Boolean(
        string="IPAI finance project",
        help="Tasks of this project emit finance_task.* events to the IPAI integration bus.",
    )


class ProjectTaskType(models.Model):
    _inherit = "project.task.type"

    ipai_finance_event = fields.Selection(
        selection=[(e, e.replace("_", " ").title()) for e in FINANCE_STAGE_EVENTS],
        string="IPAI finance event",
        help="Event emitted when a finance task enters this stage. Empty: guessed from the stage name.",
    )


class ProjectTask(models.Model):
    _inherit = "project.task"

    ipai_bir_form = fields.Char(string="BIR Form", help="e.g. 1601-C, 2550M, 0619-E")
    ipai_period = fields.Char(string="Filing Period", help="e.g. 2026-10")
    ipai_reviewer_id = fields.Many2one("res.users", string="Reviewer")
    ipai_reference_no = fields.Char(string="Filing Reference No.", copy=False)
    ipai_filed_at = fields.Datetime(string="Filed At", copy=False, readonly=True)
    ipai_overdue_notified_on = fields.Date(copy=False, readonly=True)

    def _ipai_is_finance(self):
        self.ensure_one()
        return bool(self.project_id.ipai_finance)

    def _ipai_facts(self):
        self.ensure_one()
        task = self.sudo()
        deadline = task.date_deadline if "date_deadline" in task._fields else False
        return {
            "task_id": task.id,
            "name": task.name,
            "project": task.project_id.name or "",
            "bir_form": task.ipai_bir_form,
            "period": task.ipai_period,
            "deadline": deadline,
            "responsible_emails": [u.email for u in task.user_ids if u.email],
            "reviewer_id": task.ipai_reviewer_id.id or False,
            "stage": task.stage_id.name or "",
            "status": (task.state if "state" in task._fields else False) or task.stage_id.name or "open",
            "filed_at": task.ipai_filed_at,
            "reference_no": task.ipai_reference_no,
        }

    def _ipai_emit(self, event_type, discriminator=None, **event_fields):
        queue = self.env["ipai.event.queue"]
        for task in self:
            facts = task._ipai_facts()
            facts.update(event_fields)
            queue.enqueue(event_type, task.id, facts, record=task, discriminator=discriminator)

    @api.model_create_multi
    def create(self, vals_list):
        tasks = super().create(vals_list)
        finance = tasks.filtered(lambda t: t._ipai_is_finance())
        if finance:
            finance._ipai_emit("finance_task.created")
        return tasks

    def write(self, vals):
        if "stage_id" not in vals:
            return super().write(vals)
        before = {task.id: task.stage_id.id for task in self}
        res = super().write(vals)
        for task in self.filtered(lambda t: before.get(t.id) != t.stage_id.id and t._ipai_is_finance()):
            stage = task.stage_id
            event_type = finance_event_for_stage(stage.ipai_finance_event, stage.name)
            if not event_type:
                continue
            if event_type == "finance_task.filed" and not task.ipai_filed_at:
                super(ProjectTask, task).write({"ipai_filed_at": fields.Datetime.now()})
            # The stage id makes moving back and forth between stages distinct events.
            task._ipai_emit(event_type, discriminator="S%d" % stage.id)
        return res

    @api.model
    def _cron_ipai_overdue(self):
        """finance_task.overdue, once a day per task past its deadline that is not filed
        or closed (the bus alerts the responsibles, and after 3 days the Finance Director)."""
        now = fields.Datetime.now()
        today = fields.Date.context_today(self)
        domain = [("project_id.ipai_finance", "=", True), ("date_deadline", "!=", False), ("date_deadline", "<", now)]
        if "state" in self._fields:
            domain.append(("state", "not in", _CLOSED_TASK_STATES))
        for task in self.sudo().search(domain):
            stage = task.stage_id
            if finance_event_for_stage(stage.ipai_finance_event, stage.name) == "finance_task.filed":
                continue
            if task.ipai_overdue_notified_on and task.ipai_overdue_notified_on >= today:
                continue
            days = days_overdue(task.date_deadline, now)
            if days < 1:
                continue
            task._ipai_emit("finance_task.overdue", discriminator=today.isoformat(), days_overdue=days)
            super(ProjectTask, task).write({"ipai_overdue_notified_on": today})
