"""No national ID ever leaves Odoo: the employee code comes from the addon's explicit
field, and nothing in the addon reads an identification, social security, passport,
permit or visa field."""

import os
import re

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import payloads
from odoo.addons.ipai_enterprise_bridge.utils.people import EMPLOYEE_FIELDS_READ, employee_facts

ADDON = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# hr.employee's personal identification fields in Odoo 18.0 (hr/models/hr_employee.py).
NATIONAL_ID_FIELDS = ("identification_id", "ssnid", "sinid", "passport_id", "permit_no", "visa_no",
                      "private_email", "private_phone", "birthday", "bank_account_id")


class Employee:
    """An hr.employee stand-in that records every field read and has every personal field
    set, so a read of one would both be seen and leak a recognisable value."""

    def __init__(self, reads, **values):
        object.__setattr__(self, "_reads", reads)
        defaults = dict(id=7, name="Juan dela Cruz", work_email="juan@example.com", ipai_employee_code="E-0042",
                        parent_id=None, **{f: "SECRET-" + f for f in NATIONAL_ID_FIELDS})
        object.__setattr__(self, "_values", dict(defaults, **values))

    def __getattr__(self, name):
        self._reads.append(name)
        return self._values[name]

    def __bool__(self):
        return True


def test_employee_facts_read_only_the_listed_fields_and_never_a_national_id():
    reads = []
    manager = Employee(reads, id=3, name="Maria", work_email="maria@example.com")
    facts = employee_facts(Employee(reads, parent_id=manager))
    assert facts == {"employee_id": 7, "employee_name": "Juan dela Cruz", "employee_code": "E-0042",
                     "employee_email": "juan@example.com", "manager_email": "maria@example.com"}
    assert set(reads) <= set(EMPLOYEE_FIELDS_READ)
    assert not set(reads) & set(NATIONAL_ID_FIELDS)
    assert "SECRET" not in repr(facts)


def test_without_an_explicit_code_the_code_is_empty_not_a_fallback():
    reads = []
    facts = employee_facts(Employee(reads, ipai_employee_code=False))
    assert facts["employee_code"] == ""
    assert reads.count("ipai_employee_code") == 1 and not set(reads) & set(NATIONAL_ID_FIELDS)
    p = payloads.expense_payload("expense.submitted", dict(
        facts, expense_id=1, amount=1, currency="PHP", description="x", date=None, category="Meals",
        submitted_at=None, status="submit"))
    assert p["employee_code"] == "" and "SECRET" not in repr(p)


def _addon_files():
    for root, _dirs, files in os.walk(ADDON):
        if os.path.basename(root) in ("tests", "__pycache__"):
            continue
        for f in files:
            if f.endswith((".py", ".xml", ".csv")):
                yield os.path.join(root, f)


@pytest.mark.parametrize("field", NATIONAL_ID_FIELDS)
def test_no_addon_file_names_a_personal_identification_field(field):
    pattern = re.compile(r"\b%s\b" % re.escape(field))
    offenders = [os.path.relpath(p, ADDON) for p in _addon_files() if pattern.search(open(p, encoding="utf-8").read())]
    assert offenders == [], "%s is read in %s" % (field, offenders)


def test_the_models_build_employee_facts_only_through_people():
    """hr.employee values reach a payload only via utils.people.employee_facts."""
    for name in ("hr_expense.py", "ipai_asset_booking.py"):
        src = open(os.path.join(ADDON, "models", name), encoding="utf-8").read()
        assert "employee_facts(" in src
        assert not re.search(r"employee\.(work_email|name|parent_id|barcode|registration_number)\b", src), name
