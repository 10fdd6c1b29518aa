"""What the addon reads of an employee, in one place: a fixed list of fields, none of
them personal identification (no national ID, social security, passport, work permit or
visa number). Payloads reach the bus, its event log and Mattermost, so
the employee code comes from the addon's explicit ``ipai_employee_code`` field and from
nothing else; a test checks that nothing outside this list is read."""

# The only hr.employee fields the addon reads (``parent_id`` for the manager's e-mail).
EMPLOYEE_FIELDS_READ = ("id", "name", "work_email", "ipai_employee_code", "parent_id")


def employee_facts(employee):
    """id, name, code, e-mail and manager e-mail of an ``hr.employee`` (read with sudo by
    the caller: the booking or expense belongs to the employee, the directory may not
    be readable by the acting user)."""
    if not employee:
        return {"employee_id": False, "employee_name": "", "employee_code": "",
                "employee_email": False, "manager_email": False}
    manager = employee.parent_id
    return {
        "employee_id": employee.id,
        "employee_name": employee.name or "",
        "employee_code": employee.ipai_employee_code or "",
        "employee_email": employee.work_email or False,
        "manager_email": (manager.work_email or False) if manager else False,
    }
