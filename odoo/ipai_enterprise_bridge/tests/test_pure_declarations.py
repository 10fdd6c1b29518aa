"""The addon's XML and manifest against its Python models, without Odoo: every data file
the manifest names exists and parses, every field a view or record rule names exists on
the addon's model (or the addon's extension of an Odoo model), every button and cron
calls a method the model has. These mistakes would otherwise surface only when an Odoo
server installs the addon."""

import ast
import os
import re
import xml.etree.ElementTree as ET

import pytest

ADDON = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = ast.literal_eval(open(os.path.join(ADDON, "__manifest__.py"), encoding="utf-8").read())
# Fields every model has, and those mail.thread / mail.activity.mixin add.
ORM_FIELDS = {"id", "display_name", "create_date", "create_uid", "write_date", "write_uid"}
MAIL_FIELDS = {"message_ids", "message_follower_ids", "activity_ids"}
# XML ids of models the addon's data refers to -> model name.
MODEL_REFS = {
    "model_ipai_event_queue": "ipai.event.queue",
    "model_ipai_bus_digest": "ipai.bus.digest",
    "model_ipai_asset_booking": "ipai.asset.booking",
    "hr_expense.model_hr_expense_sheet": "hr.expense.sheet",
    "project.model_project_task": "project.task",
    "maintenance.model_maintenance_equipment": "maintenance.equipment",
}


def _string_value(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant):
        return None  # _inherit = [mixins] on an own model
    return None


def _members():
    """model name -> {"fields": set, "methods": set, "own": bool, "mail": bool}"""
    out = {}
    for filename in os.listdir(os.path.join(ADDON, "models")):
        if not filename.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(ADDON, "models", filename), encoding="utf-8").read())
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            attrs = {t.id: n.value for n in cls.body if isinstance(n, ast.Assign) for t in n.targets
                     if isinstance(t, ast.Name)}
            name = _string_value(attrs.get("_name")) or _string_value(attrs.get("_inherit"))
            if not name:
                continue
            entry = out.setdefault(name, {"fields": set(ORM_FIELDS), "methods": set(), "own": False, "mail": False})
            entry["own"] |= "_name" in attrs
            inherit = attrs.get("_inherit")
            if isinstance(inherit, ast.List) and any("mail." in getattr(e, "value", "") for e in inherit.elts):
                entry["mail"] = True
                entry["fields"] |= MAIL_FIELDS
            for node in cls.body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                        and getattr(getattr(node.value.func, "value", None), "id", None) == "fields":
                    entry["fields"].update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.FunctionDef):
                    entry["methods"].add(node.name)
    return out


MEMBERS = _members()


def _records(model):
    for path in MANIFEST["data"]:
        if path.endswith(".xml"):
            for rec in ET.parse(os.path.join(ADDON, path)).getroot().iter("record"):
                if rec.get("model") == model:
                    yield path, rec


def _field(rec, name):
    for f in rec.findall("field"):
        if f.get("name") == name:
            return f
    return None


def test_every_manifest_data_file_exists_and_parses():
    for path in MANIFEST["data"]:
        full = os.path.join(ADDON, path)
        assert os.path.exists(full), path
        if path.endswith(".xml"):
            ET.parse(full)
    assert os.path.exists(os.path.join(ADDON, "hooks.py"))
    assert "def %s(" % MANIFEST["post_init_hook"] in open(os.path.join(ADDON, "hooks.py"), encoding="utf-8").read()


def _view_cases():
    for path, rec in _records("ir.ui.view"):
        model = _field(rec, "model").text
        arch = _field(rec, "arch")
        inherited = _field(rec, "inherit_id") is not None
        yield pytest.param(model, arch, inherited, id="%s:%s" % (os.path.basename(path), rec.get("id")))


@pytest.mark.parametrize("model, arch, inherited", list(_view_cases()))
def test_view_fields_and_buttons_exist_on_the_model(model, arch, inherited):
    members = MEMBERS.get(model)
    assert members, "no addon class for %s" % model
    for xpath in arch.iter("xpath"):
        assert inherited, "xpath in a view that inherits nothing"
    for field in (f for root in arch for f in root.iter("field")):
        assert field.get("name") in members["fields"], "%s has no field %s" % (model, field.get("name"))
    for button in arch.iter("button"):
        if button.get("type") == "object":
            assert button.get("name") in members["methods"], "%s has no method %s" % (model, button.get("name"))
    if list(arch.iter("chatter")):
        assert members["mail"], "%s has a chatter but no mail.thread" % model


def test_crons_call_methods_the_model_has():
    crons = list(_records("ir.cron"))
    assert len(crons) == 5
    for _path, rec in crons:
        model = MODEL_REFS[_field(rec, "model_id").get("ref")]
        method = re.fullmatch(r"model\.(\w+)\(\)", _field(rec, "code").text.strip()).group(1)
        assert method in MEMBERS[model]["methods"], "%s has no %s" % (model, method)


def test_record_rules_name_fields_the_models_have():
    rules = list(_records("ir.rule"))
    assert rules
    for _path, rec in rules:
        model = MODEL_REFS[_field(rec, "model_id").get("ref")]
        domain = ast.literal_eval(re.sub(r"\buser\.id\b|\bcompany_ids\b", "0", _field(rec, "domain_force").text))
        for leaf in domain:
            if isinstance(leaf, tuple) and isinstance(leaf[0], str):
                assert leaf[0].split(".")[0] in MEMBERS[model]["fields"], "%s has no %s" % (model, leaf[0])


def test_access_rights_name_the_addons_models():
    lines = open(os.path.join(ADDON, "security", "ir.model.access.csv"), encoding="utf-8").read().split("\n")[1:]
    for line in filter(None, lines):
        model_ref = line.split(",")[2]
        assert MEMBERS[MODEL_REFS[model_ref]]["own"], model_ref


def test_the_sender_cron_id_the_queue_triggers_is_defined():
    from odoo.addons.ipai_enterprise_bridge.utils import outbox  # noqa: F401 (pure import works)

    src = open(os.path.join(ADDON, "models", "ipai_event_queue.py"), encoding="utf-8").read()
    xmlid = re.search(r'SENDER_CRON = "ipai_enterprise_bridge\.(\w+)"', src).group(1)
    assert xmlid in [rec.get("id") for _p, rec in _records("ir.cron")]
