"""Payload builders (SPEC §4) and the taxonomy, without Odoo."""

import datetime as dt
import os
import re

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import events, payloads
from odoo.addons.ipai_enterprise_bridge.utils.payloads import PayloadError

EXPENSE = {
    "expense_id": 42,
    "employee_id": 7,
    "employee_name": "Juan dela Cruz",
    "employee_code": "E-0042",
    "employee_email": "juan@example.com",
    "amount": "1250.50",
    "currency": "PHP",
    "description": "Client lunch",
    "date": dt.date(2026, 11, 20),
    "category": "Meals",
    "submitted_at": dt.datetime(2026, 11, 26, 5, 0, 0, 123),
    "sheet_id": 9,
    "status": "submit",
    "unrelated_odoo_field": "dropped",
}

BOOKING = {
    "booking_id": 501,
    "asset_id": 12,
    "asset_name": "Projector Epson EB-X51",
    "asset_code": "PRJ-0012",
    "employee_id": 7,
    "employee_name": "Juan dela Cruz",
    "employee_email": "juan@example.com",
    "manager_email": False,
    "start": dt.datetime(2026, 11, 27, 1, 0),
    "end": dt.datetime(2026, 11, 27, 9, 0),
    "location": "Makati HQ, 12F",
    "status": "reserved",
}

TASK = {
    "task_id": 7001,
    "name": "BIR 1601-C October",
    "project": "Month-end close",
    "bir_form": "1601-C",
    "period": "2026-10",
    "deadline": dt.datetime(2026, 11, 10, 15, 59, 59),
    "responsible_emails": ["b@example.com", "a@example.com", False, "a@example.com"],
    "reviewer_id": 3,
    "stage": "For Review",
    "status": "01_in_progress",
}


def test_expense_submitted_has_the_seed_fields_with_json_types():
    p = payloads.expense_payload("expense.submitted", EXPENSE)
    assert p == {
        "expense_id": 42,
        "employee_id": 7,
        "employee_name": "Juan dela Cruz",
        "employee_code": "E-0042",
        "employee_email": "juan@example.com",
        "amount": 1250.5,
        "currency": "PHP",
        "description": "Client lunch",
        "date": "2026-11-20",
        "category": "Meals",
        "submitted_at": "2026-11-26T05:00:00Z",
        "sheet_id": 9,
        "status": "submit",
    }


def test_odoo_false_values_become_defaults_not_false():
    facts = dict(EXPENSE, employee_code=False, category=False, employee_email=False, sheet_id=False,
                 submitted_at=False, date=False)
    p = payloads.expense_payload("expense.submitted", facts)
    assert p["employee_code"] == "" and p["category"] == "Other"
    assert p["submitted_at"] is None and p["date"] is None
    assert "employee_email" not in p and "sheet_id" not in p


@pytest.mark.parametrize(
    "event_type, fields",
    [
        ("expense.approved", {"approved_by": "Maria Santos", "approved_at": dt.datetime(2026, 11, 26, 6, 0)}),
        ("expense.rejected", {"reason": "No receipt", "refused_by": "Maria Santos",
                              "refused_at": dt.datetime(2026, 11, 27, 1, 0)}),
        ("expense.paid", {"paid_at": dt.datetime(2026, 11, 28, 2, 0), "payment_ref": "BNK1/2026/00042"}),
    ],
)
def test_each_expense_event_carries_its_own_fields(event_type, fields):
    p = payloads.expense_payload(event_type, dict(EXPENSE, **fields))
    for k, v in fields.items():
        assert p[k] == (events.iso_datetime(v) if k.endswith("_at") else v)
    with pytest.raises(PayloadError, match=event_type):
        payloads.expense_payload(event_type, EXPENSE)


def test_a_payload_must_name_its_record_and_status():
    with pytest.raises(PayloadError):
        payloads.expense_payload("expense.submitted", dict(EXPENSE, expense_id=False))
    with pytest.raises(PayloadError):
        payloads.expense_payload("expense.submitted", dict(EXPENSE, status=False))
    with pytest.raises(PayloadError):
        payloads.expense_payload("expense.submitted", dict(EXPENSE, amount=float("nan")))
    with pytest.raises(PayloadError):
        payloads.expense_payload("asset.reserved", EXPENSE)


def test_asset_payloads_render_datetimes_as_utc_rfc3339():
    p = payloads.asset_payload("asset.reserved", BOOKING)
    assert p["start"] == "2026-11-27T01:00:00Z" and p["end"] == "2026-11-27T09:00:00Z"
    assert p["manager_email"] is None and p["booking_id"] == 501 and p["asset_code"] == "PRJ-0012"
    assert set(p) == {"booking_id", "asset_id", "asset_name", "asset_code", "employee_id", "employee_name",
                      "employee_email", "manager_email", "start", "end", "location", "status"}


def test_asset_overdue_needs_level_one_to_three_and_days():
    p = payloads.asset_payload("asset.overdue", dict(BOOKING, status="checked_out", escalation_level=2, days_overdue=4))
    assert (p["escalation_level"], p["days_overdue"]) == (2, 4)
    for bad in ({"escalation_level": 0, "days_overdue": 1}, {"escalation_level": 4, "days_overdue": 9},
                {"escalation_level": 1, "days_overdue": 0}, {}):
        with pytest.raises(PayloadError):
            payloads.asset_payload("asset.overdue", dict(BOOKING, **bad))


def test_escalation_levels_follow_the_thresholds():
    levels = [payloads.escalation_level(d) for d in range(0, 10)]
    assert levels == [0, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    assert payloads.escalation_level(2, (1, 2, 3)) == 2
    assert payloads.parse_thresholds("2, 4, 8") == (2, 4, 8)
    for bad in ("", "1,2", "3,2,1", "0,1,2", "a,b,c", None):
        assert payloads.parse_thresholds(bad) == payloads.DEFAULT_ESCALATION_DAYS


def test_days_overdue_counts_started_days():
    end = dt.datetime(2026, 11, 27, 9, 0)
    assert payloads.days_overdue(end, end) == 0
    assert payloads.days_overdue(end, end + dt.timedelta(minutes=1)) == 1
    assert payloads.days_overdue(end, end + dt.timedelta(days=1)) == 1
    assert payloads.days_overdue(end, end + dt.timedelta(days=1, seconds=1)) == 2
    assert payloads.days_overdue(dt.date(2026, 11, 10), dt.date(2026, 11, 14)) == 4
    assert payloads.days_overdue(dt.date(2026, 11, 10), dt.datetime(2026, 11, 11, 8, 0)) == 1
    assert payloads.days_overdue(False, end) == 0


def test_finance_task_payload_sorts_and_dedupes_responsibles_and_dates_the_deadline():
    p = payloads.finance_task_payload("finance_task.submitted", TASK)
    assert p["responsible_emails"] == ["a@example.com", "b@example.com"]
    assert p["deadline"] == "2026-11-10"
    assert (p["bir_form"], p["period"], p["stage"]) == ("1601-C", "2026-10", "For Review")
    no_bir = payloads.finance_task_payload("finance_task.created", dict(TASK, bir_form=False, period=None))
    assert "bir_form" not in no_bir and "period" not in no_bir


def test_finance_filed_and_overdue_carry_their_fields():
    filed = payloads.finance_task_payload(
        "finance_task.filed", dict(TASK, filed_at=dt.datetime(2026, 11, 9, 8, 0), reference_no="eFPS-123"))
    assert (filed["filed_at"], filed["reference_no"]) == ("2026-11-09T08:00:00Z", "eFPS-123")
    with pytest.raises(PayloadError):
        payloads.finance_task_payload("finance_task.filed", TASK)
    overdue = payloads.finance_task_payload("finance_task.overdue", dict(TASK, days_overdue=4))
    assert overdue["days_overdue"] == 4
    with pytest.raises(PayloadError):
        payloads.finance_task_payload("finance_task.overdue", TASK)


def test_only_the_stages_explicit_setting_emits():
    f = payloads.finance_event_for_stage
    assert f("filed") == "finance_task.filed"
    assert f("in_progress") == "finance_task.in_progress"
    assert f(None) is None and f(False) is None and f("") is None
    with pytest.raises(PayloadError):
        f("paid")


def test_a_stage_name_is_only_a_default_for_the_explicit_setting_and_done_is_not_filed():
    g = payloads.stage_event_from_name
    assert g("In Progress") == "in_progress"
    assert g("For Review") == "submitted"
    assert g("Approved by CFO") == "approved"
    assert g("Filed") == "filed" and g("Lodged with BIR") == "filed"
    assert g("Done") is None and g("Closed") is None and g("Cancelled") is None
    assert g("New") is None and g("") is None and g(None) is None


@pytest.mark.parametrize(
    "state, payment_state, paid",
    [
        ("done", "paid", True), ("done", "in_payment", True),
        ("done", "partial", False), ("done", "reversed", False), ("done", "not_paid", False),
        ("done", "blocked", False), ("post", "paid", False), ("approve", "in_payment", False),
    ],
)
def test_a_report_is_paid_only_when_paid_in_full(state, payment_state, paid):
    assert payloads.expense_report_fully_paid(state, payment_state) is paid


def test_report_stamps_are_rendered_like_submitted_at():
    stamps = {"approved_at": dt.datetime(2026, 11, 26, 6, 0, 0, 999), "approved_by": "Maria"}
    a = payloads.expense_payload("expense.approved", dict(EXPENSE, **stamps))
    b = payloads.expense_payload("expense.approved", dict(EXPENSE, expense_id=43, **stamps))
    assert a["approved_at"] == b["approved_at"] == "2026-11-26T06:00:00Z"
    r = payloads.expense_payload("expense.rejected", dict(EXPENSE, reason="No receipt", refused_by="Maria",
                                                          refused_at=dt.datetime(2026, 11, 27, 1, 2, 3)))
    assert r["refused_at"] == "2026-11-27T01:02:03Z"


def test_extra_fields_are_kept():
    p = payloads.build_payload("expense.submitted", EXPENSE, extra={"company": "TBWA", "skip": None})
    assert p["company"] == "TBWA" and "skip" not in p


def test_make_event_builds_the_envelope_ingest_expects():
    payload = payloads.build_payload("asset.checked_out", dict(BOOKING, status="checked_out"))
    ev = events.make_event("asset.checked_out", 501, payload, occurred_at=dt.datetime(2026, 11, 27, 1, 5))
    assert ev == {
        "event_type": "asset.checked_out",
        "aggregate_type": "asset_booking",
        "aggregate_id": "501",
        "payload": payload,
        "occurred_at": "2026-11-27T01:05:00Z",
        "source": "odoo",
    }
    with pytest.raises(ValueError):
        events.make_event("invoice.created", 1, {})
    with pytest.raises(ValueError):
        events.make_event("asset.reserved", "", {})


def test_the_python_taxonomy_matches_the_bus(repo_root):
    """utils/events.py mirrors crates/ipai-core/src/taxonomy.rs: the same 14 business types
    (ROUTES), same aggregate types, same order; and the bus's own event, the reconciliation
    digest (BUS_ROUTES there, RECONCILIATION here)."""
    path = os.path.join(repo_root, "crates", "ipai-core", "src", "taxonomy.rs")
    rust = open(path, encoding="utf-8").read()
    business, _, bus = rust.partition("pub const BUS_ROUTES")

    def pairs(text):
        domains = re.findall(r'aggregate_type:\s*"([^"]+)".*?event_types:\s*&\[(.*?)\]', text, re.S)
        return [(agg, t) for agg, block in domains for t in re.findall(r'"([^"]+)"', block)]

    rust_pairs = pairs(business)
    assert rust_pairs, "taxonomy.rs changed shape"
    py_pairs = [(agg, t) for agg, types in events.TAXONOMY.values() for t in types]
    assert py_pairs == rust_pairs
    assert len(events.ALL_EVENT_TYPES) == 14
    py_bus = [(agg, t) for agg, types in events.RECONCILIATION.values() for t in types]
    assert py_bus == [("digest", "bus.digest")]
    if bus:  # the bus knows its digest
        assert pairs(bus) == py_bus
    assert events.aggregate_type_of("bus.digest") == "digest"
    assert "bus.digest" not in events.ALL_EVENT_TYPES


def test_the_digest_names_match_the_bus(repo_root):
    """utils/digest.py's event and aggregate types are those crates/ipai-reconcile reads."""
    from odoo.addons.ipai_enterprise_bridge.utils import digest

    path = os.path.join(repo_root, "crates", "ipai-reconcile", "src", "lib.rs")
    rust = open(path, encoding="utf-8").read()
    assert 'DIGEST_EVENT_TYPE: &str = "%s"' % digest.DIGEST_EVENT_TYPE in rust
    assert 'DIGEST_AGGREGATE_TYPE: &str = "%s"' % digest.DIGEST_AGGREGATE_TYPE in rust
    assert events.aggregate_type_of(digest.DIGEST_EVENT_TYPE) == digest.DIGEST_AGGREGATE_TYPE


def test_the_digest_has_no_business_payload():
    with pytest.raises(payloads.PayloadError):
        payloads.build_payload("bus.digest", {})
