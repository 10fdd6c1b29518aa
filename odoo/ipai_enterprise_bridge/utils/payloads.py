"""Payload builders (SPEC §4): pure functions from plain values to the payload dict.

The models read an Odoo record into a plain ``facts`` dict (``_ipai_*_facts``), and these
functions decide what the bus receives: field names, types (ids int, amounts float,
dates ISO 8601), defaults and the per-event fields. Extra keys in ``facts`` that the
contract does not name are dropped; ``extra`` is merged last (extra fields are allowed).
Every payload carries ``status``, the Odoo state after the change.
"""

import datetime as _dt
import math

from .events import aggregate_type_of, iso_date, iso_datetime


class PayloadError(ValueError):
    """A payload would break the contract (missing per-event field, wrong event family)."""


def _int(value):
    if value in (None, False, ""):
        return None
    return int(value)


def _str(value, default=None):
    if value in (None, False):
        return default
    return str(value)


def _float(value):
    if value in (None, False, ""):
        return 0.0
    f = float(value)
    if math.isnan(f) or math.isinf(f):
        raise PayloadError("amount is not a finite number")
    return f


def _require(event_type, fields, values):
    missing = [f for f in fields if values.get(f) in (None, "", False)]
    if missing:
        raise PayloadError("%s needs %s" % (event_type, ", ".join(missing)))


def _check_family(event_type, aggregate_type):
    if aggregate_type_of(event_type) != aggregate_type:
        raise PayloadError("%s is not a %s event" % (event_type, aggregate_type))


def _finish(payload, extra):
    if extra:
        payload.update({k: v for k, v in extra.items() if v is not None})
    return payload


# ------------------------------------------------------------------------------ expense

EXPENSE_EVENT_FIELDS = {
    "expense.submitted": (),
    "expense.approved": ("approved_by", "approved_at"),
    "expense.rejected": ("reason", "refused_by", "refused_at"),
    "expense.paid": ("paid_at", "payment_ref"),
}


def expense_payload(event_type, facts, extra=None):
    """expense.* for one ``hr.expense`` (aggregate_id = expense id).

    ``facts``: expense_id, employee_id, employee_name, employee_code, employee_email,
    amount, currency, description, date, category, submitted_at, sheet_id, status, and the
    per-event fields (approved_by/approved_at, reason/refused_by/refused_at,
    paid_at/payment_ref). ``submitted_at``, ``approved_at``, ``refused_at`` and ``paid_at``
    are the report's transition stamps: identical on every line of one report (SPEC §4).
    """
    _check_family(event_type, "expense")
    p = {
        "expense_id": _int(facts.get("expense_id")),
        "employee_id": _int(facts.get("employee_id")),
        "employee_name": _str(facts.get("employee_name"), ""),
        "employee_code": _str(facts.get("employee_code"), ""),
        "amount": _float(facts.get("amount")),
        "currency": _str(facts.get("currency"), ""),
        "description": _str(facts.get("description"), ""),
        "date": iso_date(facts.get("date")),
        "category": _str(facts.get("category"), "Other"),
        "submitted_at": iso_datetime(facts.get("submitted_at")),
        "status": _str(facts.get("status")),
    }
    if p["expense_id"] is None:
        raise PayloadError("expense_id is required")
    if not p["status"]:
        raise PayloadError("status is required")
    for optional in ("sheet_id",):
        if _int(facts.get(optional)) is not None:
            p[optional] = _int(facts.get(optional))
    if facts.get("employee_email"):
        p["employee_email"] = str(facts["employee_email"])
    per_event = EXPENSE_EVENT_FIELDS[event_type]
    _require(event_type, per_event, facts)
    for f in per_event:
        v = facts[f]
        p[f] = iso_datetime(v) if f.endswith("_at") else str(v)
    return _finish(p, extra)


# ``account.move.payment_state`` values (18.0, ``addons/account/models/account_move.py``)
# that mean the report is paid in full. The sheet is ``done`` as soon as its
# ``payment_state != 'not_paid'`` (``hr_expense_sheet.py``, ``_compute_state``), which also
# covers ``partial`` and ``reversed``: those are not "paid".
FULLY_PAID_PAYMENT_STATES = ("paid", "in_payment")


def expense_report_fully_paid(state, payment_state):
    """Whether an expense report (``hr.expense.sheet``) is paid in full."""
    return state == "done" and payment_state in FULLY_PAID_PAYMENT_STATES


# -------------------------------------------------------------------------------- asset

def asset_payload(event_type, facts, extra=None):
    """asset.* for one equipment booking (aggregate_id = booking id).

    ``facts``: booking_id, asset_id, asset_name, asset_code, employee_id, employee_name,
    employee_email, manager_email, start, end (datetimes), location, status; for
    asset.overdue also escalation_level (1-3) and days_overdue.
    """
    _check_family(event_type, "asset_booking")
    p = {
        "booking_id": _int(facts.get("booking_id")),
        "asset_id": _int(facts.get("asset_id")),
        "asset_name": _str(facts.get("asset_name"), ""),
        "asset_code": _str(facts.get("asset_code"), ""),
        "employee_id": _int(facts.get("employee_id")),
        "employee_name": _str(facts.get("employee_name"), ""),
        "employee_email": _str(facts.get("employee_email")),
        "manager_email": _str(facts.get("manager_email")),
        "start": iso_datetime(facts.get("start")),
        "end": iso_datetime(facts.get("end")),
        "location": _str(facts.get("location"), ""),
        "status": _str(facts.get("status")),
    }
    if p["booking_id"] is None or p["asset_id"] is None:
        raise PayloadError("booking_id and asset_id are required")
    if not p["status"]:
        raise PayloadError("status is required")
    if event_type == "asset.overdue":
        level = _int(facts.get("escalation_level"))
        days = _int(facts.get("days_overdue"))
        if level not in (1, 2, 3):
            raise PayloadError("asset.overdue needs escalation_level 1-3")
        if days is None or days < 1:
            raise PayloadError("asset.overdue needs days_overdue >= 1")
        p["escalation_level"] = level
        p["days_overdue"] = days
    return _finish(p, extra)


DEFAULT_ESCALATION_DAYS = (1, 3, 7)


def escalation_level(days_overdue, thresholds=DEFAULT_ESCALATION_DAYS):
    """0 when not overdue, else 1-3: level n once ``days_overdue >= thresholds[n-1]``
    (level 1 emails the employee, 2 copies the manager, 3 the IT admin)."""
    level = 0
    for n, t in enumerate(thresholds, start=1):
        if days_overdue >= t:
            level = n
    return min(level, 3)


def parse_thresholds(text, default=DEFAULT_ESCALATION_DAYS):
    """``"1,3,7"`` -> (1, 3, 7): three increasing positive day counts, else ``default``."""
    try:
        values = tuple(int(x) for x in str(text).split(",") if x.strip())
    except (TypeError, ValueError):
        return default
    if len(values) != 3 or values[0] < 1 or not (values[0] < values[1] < values[2]):
        return default
    return values


def days_overdue(due, now):
    """Whole days past ``due`` (a date or a naive-UTC datetime), a started day counting
    as one: 0 when not yet due."""
    if not due:
        return 0
    if isinstance(due, _dt.datetime) or isinstance(now, _dt.datetime):
        if not isinstance(due, _dt.datetime):
            due = _dt.datetime(due.year, due.month, due.day, 23, 59, 59)
        if not isinstance(now, _dt.datetime):
            now = _dt.datetime(now.year, now.month, now.day)
        delta = (now - due).total_seconds()
        return int(math.ceil(delta / 86400.0)) if delta > 0 else 0
    return max(0, (now - due).days)


# ------------------------------------------------------------------------ finance task

FINANCE_STAGE_EVENTS = ("created", "in_progress", "submitted", "approved", "filed")

# Stage names that suggest an event. Used once, to fill a stage's explicit "IPAI finance
# event" when the addon is installed or upgraded (a migration default); at run time only
# the explicit field counts. "Done" is deliberately absent: a done task is not a filing.
_STAGE_NAME_HINTS = (
    ("filed", ("filed", "lodged", "paid to bir")),
    ("approved", ("approved", "signed off")),
    ("submitted", ("submitted", "for review", "to review", "for approval")),
    ("in_progress", ("in progress", "in-progress", "ongoing", "preparation")),
)


def finance_event_for_stage(explicit):
    """The finance_task event a task entering a stage emits: the stage's explicit
    ``ipai_finance_event``, else None (the change emits nothing)."""
    if not explicit:
        return None
    if explicit not in FINANCE_STAGE_EVENTS:
        raise PayloadError("unknown finance stage event %r" % (explicit,))
    return "finance_task." + explicit


def stage_event_from_name(stage_name):
    """The explicit setting a stage gets by default from its name at install/upgrade
    (``"For Review"`` -> ``"submitted"``), or None."""
    name = (stage_name or "").strip().lower()
    if not name:
        return None
    for event, hints in _STAGE_NAME_HINTS:
        if name in hints or any(h in name for h in hints):
            return event
    return None


def finance_task_payload(event_type, facts, extra=None):
    """finance_task.* for one ``project.task`` (aggregate_id = task id).

    ``facts``: task_id, name, project, bir_form, period, deadline, responsible_emails,
    reviewer_id, stage, status; filed: filed_at, reference_no; overdue: days_overdue.
    """
    _check_family(event_type, "finance_task")
    p = {
        "task_id": _int(facts.get("task_id")),
        "name": _str(facts.get("name"), ""),
        "project": _str(facts.get("project"), ""),
        "deadline": iso_date(facts.get("deadline")),
        "responsible_emails": sorted({str(e) for e in (facts.get("responsible_emails") or []) if e}),
        "reviewer_id": _int(facts.get("reviewer_id")),
        "stage": _str(facts.get("stage"), ""),
        "status": _str(facts.get("status")),
    }
    if p["task_id"] is None:
        raise PayloadError("task_id is required")
    if not p["status"]:
        raise PayloadError("status is required")
    for f in ("bir_form", "period"):
        if facts.get(f):
            p[f] = str(facts[f])
    if event_type == "finance_task.filed":
        _require(event_type, ("filed_at",), facts)
        p["filed_at"] = iso_datetime(facts["filed_at"])
        p["reference_no"] = _str(facts.get("reference_no"), "")
    if event_type == "finance_task.overdue":
        days = _int(facts.get("days_overdue"))
        if days is None or days < 1:
            raise PayloadError("finance_task.overdue needs days_overdue >= 1")
        p["days_overdue"] = days
    return _finish(p, extra)


def build_payload(event_type, facts, extra=None):
    """Dispatch on the event family."""
    builders = {
        "expense": expense_payload,
        "asset_booking": asset_payload,
        "finance_task": finance_task_payload,
    }
    builder = builders.get(aggregate_type_of(event_type))
    if builder is None:
        raise PayloadError("%s has no business payload (the digest is built by utils/digest.py)" % event_type)
    return builder(event_type, facts, extra)
