"""The addon's overrides against the Odoo 18.0 contract it was written for
(``odoo18_contract.py``), without Odoo: parsed from the models' source. An override whose
parameters drift from 18.0's, an override not listed in the contract, one that forgets
``super()``, or a contract entry the addon no longer uses, fails here. The same contract
is checked against a running Odoo by ``test_odoo18_contract.py``."""

import ast
import os

import pytest

from odoo.addons.ipai_enterprise_bridge.tests import odoo18_contract as contract

ADDON = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ADDON, "models")


def _assigned(cls, attribute):
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == attribute for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def _inherit_of(cls):
    """The model a class extends: its ``_inherit``, or the first of a list (the others are
    mixins, e.g. ``["hr.expense", "ipai.guarded.fields"]``)."""
    inherit = _assigned(cls, "_inherit")
    return inherit[0] if isinstance(inherit, list) and inherit else inherit or None


def _has_own_name(cls):
    """A class that defines a model of its own (not an extension that restates the name)."""
    name = _assigned(cls, "_name")
    return name is not None and name != _inherit_of(cls)


def _params(func):
    a = func.args
    names = [p.arg for p in a.posonlyargs + a.args][1:] + [p.arg for p in a.kwonlyargs]
    if a.vararg:
        names.append(a.vararg.arg)
    if a.kwarg:
        names.append(a.kwarg.arg)
    return tuple(names)


def _calls_super(func):
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if isinstance(target, ast.Call) and getattr(target.func, "id", None) == "super" \
                    and node.func.attr == func.name:
                return True
    return False


def _is_addon_own(name):
    return "ipai" in name


def overrides_in_source():
    """{(model, method): (params, calls_super, file)} for methods of inherited models that
    are not the addon's own (``*ipai*``) names."""
    found = {}
    for filename in sorted(os.listdir(MODELS)):
        if not filename.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(MODELS, filename), encoding="utf-8").read())
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            model = _inherit_of(cls)
            if not model or _has_own_name(cls):
                continue
            for func in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
                if not _is_addon_own(func.name):
                    found[(model, func.name)] = (_params(func), _calls_super(func), filename)
    return found


def addon_source():
    parts = []
    for root, _dirs, files in os.walk(ADDON):
        if os.path.basename(root) == "tests":
            continue
        for f in files:
            if f.endswith((".py", ".xml")):
                parts.append(open(os.path.join(root, f), encoding="utf-8").read())
    return "\n".join(parts)


def test_every_override_is_in_the_contract_with_18_0s_parameters_and_calls_super():
    found = overrides_in_source()
    assert set(found) == contract.OVERRIDES, "overrides changed: update odoo18_contract.py after reading 18.0"
    for key, (params, calls_super, filename) in found.items():
        expected = contract.METHODS[key][0]
        assert params == expected, "%s.%s in %s takes %s; Odoo 18.0 passes %s" % (key + (filename, params, expected))
        assert calls_super, "%s.%s in %s does not call super()" % (key + (filename,))


def test_inherited_models_are_the_ones_the_contract_names():
    seen = {}
    for filename in os.listdir(MODELS):
        if filename.endswith(".py"):
            tree = ast.parse(open(os.path.join(MODELS, filename), encoding="utf-8").read())
            for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
                if _inherit_of(cls) and not _has_own_name(cls):
                    seen[_inherit_of(cls)] = filename
    assert seen == contract.INHERITED_MODELS


@pytest.mark.parametrize("model, method", sorted(set(contract.METHODS) - contract.OVERRIDES))
def test_every_called_odoo_method_in_the_contract_is_still_used(model, method):
    assert method + "(" in addon_source(), "%s.%s is no longer called: drop it from the contract" % (model, method)


@pytest.mark.parametrize("model, field", sorted(set(contract.FIELDS) | set(contract.OPTIONAL_FIELDS)))
def test_every_odoo_field_in_the_contract_is_still_used(model, field):
    assert field in addon_source(), "%s.%s is no longer read: drop it from the contract" % (model, field)


def test_every_contract_entry_names_a_source():
    sources = {"SHEET", "CRON", "RETRY", "MAINT", "TASK", "KNOWN"}
    assert {v[-1] for v in contract.METHODS.values()} <= sources
    assert {v[-1] for v in contract.FIELDS.values()} <= sources
    assert {v[-1] for v in contract.OPTIONAL_FIELDS.values()} <= sources
    for name in sources - {"RETRY"}:
        assert "[%s]" % name in contract.__doc__
