"""Finance PPM / BIR tasks (SPEC §4, aggregate = ``project.task``).

Only tasks of projects flagged "IPAI finance project" emit events:

* task created                                   -> finance_task.created
* the task's stage changes, however it happens (``write`` of ``stage_id``, the stage set
  at create, a project change that recomputes the stage — ``stage_id`` is computed from
  ``project_id`` in 18.0), into a stage whose explicit "IPAI finance event" is set
                                                  -> finance_task.<in_progress|submitted|approved|filed>
* daily cron for tasks past their deadline and not filed/closed -> finance_task.overdue

A stage's name plays no part at run time: install/upgrade fills the explicit field from
the name once (``hooks.py``), and an admin corrects it on the stage form.

Portal users of a shared project may move tasks: the addon's own reads and stamps on the
task run with sudo; the user's own write is left to Odoo's rules.
"""

from odoo import api, fields, models

from ..utils.payloads import FINANCE_STAGE_EVENTS, days_overdue, finance_event_for_stage

_CLOSED_TASK_STATES = ("1_done", "1_canceled")
_STAGE_FIELDS = ("stage_id", "project_id")


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
        help="Event emitted when a task of an IPAI finance project enters this stage. "
        "Empty: entering this stage emits nothing.",
    )


class ProjectTask(models.Model):
    _name = "project.task"
    _inherit = ["project.task", "ipai.guarded.fields"]
    # The filing stamp and the daily overdue mark: a user who could set the mark would
    # silence the overdue alerts.
    _ipai_guarded = {"ipai_filed_at": False, "ipai_overdue_notified_on": False}

    ipai_bir_form = fields.Char(string="BIR Form", help="e.g. 1601-C, 2550M, 0619-E")
    ipai_period = fields.Char(string="Filing Period", help="e.g. 2026-10")
    ipai_reviewer_id = fields.Many2one("res.users", string="Reviewer")
    ipai_reference_no = fields.Char(string="Filing Reference No.", copy=False)
    ipai_filed_at = fields.Datetime(string="Filed At", copy=False, readonly=True)
    ipai_overdue_notified_on = fields.Date(copy=False, readonly=True)

    def _ipai_is_finance(self):
        self.ensure_one()
        return bool(self.sudo().project_id.ipai_finance)

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
        for task in self.sudo():
            facts = task._ipai_facts()
            facts.update(event_fields)
            queue._ipai_enqueue(event_type, task.id, facts, record=task, discriminator=discriminator)

    def _ipai_stage_event(self):
        """The event this task's current stage emits, or None."""
        self.ensure_one()
        return finance_event_for_stage(self.sudo().stage_id.ipai_finance_event)

    def _ipai_entered_stage(self):
        """The task just entered its current stage: stamp a filing, emit the stage's event."""
        for task in self.sudo():
            event_type = task._ipai_stage_event()
            if not event_type:
                continue
            if event_type == "finance_task.filed" and not task.ipai_filed_at:
                super(ProjectTask, task).write({"ipai_filed_at": fields.Datetime.now()})
            # The stage id makes moving back and forth between stages distinct events.
            task._ipai_emit(event_type, discriminator="S%d" % task.stage_id.id)

    @api.model_create_multi
    def create(self, vals_list):
        tasks = super().create(vals_list)
        finance = tasks.filtered(lambda t: t._ipai_is_finance())
        if finance:
            finance._ipai_emit("finance_task.created")
            finance.filtered(
                lambda t: t._ipai_stage_event() not in (None, "finance_task.created")
            )._ipai_entered_stage()
        return tasks

    def write(self, vals):
        if not any(name in vals for name in _STAGE_FIELDS):
            return super().write(vals)
        before = {task.id: task.stage_id.id for task in self.sudo()}
        res = super().write(vals)
        moved = self.filtered(lambda t: before.get(t.id) != t.sudo().stage_id.id and t._ipai_is_finance())
        moved._ipai_entered_stage()
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
            if task._ipai_stage_event() == "finance_task.filed":
                continue
            if task.ipai_overdue_notified_on and task.ipai_overdue_notified_on >= today:
                continue
            days = days_overdue(task.date_deadline, now)
            if days < 1:
                continue
            task._ipai_emit("finance_task.overdue", discriminator=today.isoformat(), days_overdue=days)
            super(ProjectTask, task).write({"ipai_overdue_notified_on": today})
