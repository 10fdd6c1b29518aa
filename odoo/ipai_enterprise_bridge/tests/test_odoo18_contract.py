"""Server test: the running Odoo still has every method (name, module, parameters) and
field (type, selection values) the addon relies on, as recorded in
``odoo18_contract.py`` from Odoo 18.0's source. An upgrade that renames or reshapes one
fails here instead of in production.

    odoo-bin -d <db> -i ipai_enterprise_bridge --test-enable --test-tags /ipai_enterprise_bridge
"""

import inspect

from odoo.tests import TransactionCase, tagged

from . import odoo18_contract as contract


def _defining_class(model_cls, method, module):
    """The class of ``module`` (e.g. ``hr_expense``) in the model's MRO that defines
    ``method``: Odoo's own definition, not the addon's override."""
    prefix = "odoo.addons.%s." % module
    for klass in model_cls.__mro__:
        if method in vars(klass) and klass.__module__.startswith(prefix):
            return klass
    if module == "base":
        for klass in model_cls.__mro__:
            if method in vars(klass) and klass.__module__.startswith("odoo.addons.base."):
                return klass
    return None


def _param_names(func):
    return tuple(p for p in inspect.signature(func).parameters if p != "self")


@tagged("post_install", "-at_install")
class TestOdoo18Contract(TransactionCase):
    def test_methods_keep_their_18_0_names_and_parameters(self):
        for (model, method), (params, module, source) in contract.METHODS.items():
            with self.subTest(model=model, method=method, source=source):
                model_cls = type(self.env[model])
                klass = _defining_class(model_cls, method, module)
                self.assertIsNotNone(klass, "%s.%s is not defined by %s any more" % (model, method, module))
                self.assertEqual(_param_names(vars(klass)[method]), params)

    def test_fields_keep_their_18_0_types_and_values(self):
        for (model, name), (ftype, values, source) in contract.FIELDS.items():
            with self.subTest(model=model, field=name, source=source):
                field = self.env[model]._fields.get(name)
                self.assertIsNotNone(field, "%s.%s is gone" % (model, name))
                self.assertEqual(field.type, ftype)
                if values:
                    selection = dict(field._description_selection(self.env))
                    self.assertLessEqual(set(values), set(selection))

    def test_optional_fields_have_their_18_0_type_where_present(self):
        for (model, name), (ftype, source) in contract.OPTIONAL_FIELDS.items():
            with self.subTest(model=model, field=name, source=source):
                field = self.env[model]._fields.get(name)
                if field is not None:
                    self.assertEqual(field.type, ftype)

    def test_the_sheet_is_done_on_any_payment_state_but_not_paid(self):
        """What the "paid in full" rule guards against (hr_expense_sheet.py, _compute_state)."""
        src = inspect.getsource(_defining_class(type(self.env["hr.expense.sheet"]), "_compute_state", "hr_expense"))
        self.assertIn("payment_state != 'not_paid'", src)

    def test_the_cron_job_context_carries_cron_id(self):
        """The sender commits after each row only inside the cron worker (``cron_id``)."""
        src = inspect.getsource(_defining_class(type(self.env["ir.cron"]), "_run_job", "base"))
        self.assertIn("'cron_id'", src)
