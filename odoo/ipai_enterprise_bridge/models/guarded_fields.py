"""Fields that only the addon's own code may change (SPEC §15).

An escalation level, a booking's state, a report's transition stamps or an "already
announced" flag decide which events Odoo signs and sends. Declared ``readonly`` they are
still writable over RPC, so an employee could silence the escalations on their own booking
by writing ``ipai_overdue_level = 3``. A model that mixes this in lists such fields in
``_ipai_guarded`` (name -> the value a new record may start with); a create or write from a
user's request that sets one is refused with an ``AccessError``. The addon changes them from
its buttons and crons in superuser mode (``sudo()``), which no RPC can enter, after
checking the user's own right to act on the record.
"""

from odoo import _, api, models
from odoo.exceptions import AccessError


def _same(value, initial):
    # False, None and 0 all mean "not set" in Odoo's write values.
    return (value or False) == (initial or False)


class IpaiGuardedFields(models.AbstractModel):
    _name = "ipai.guarded.fields"
    _description = "IPAI: fields only the bridge's own code changes"

    # field name -> the value a new record may be created with
    _ipai_guarded = {}

    def _ipai_refuse_guarded(self, names):
        if names and not self.env.su:
            raise AccessError(_(
                "%(fields)s on %(model)s change only through the IPAI bridge's own buttons and "
                "scheduled actions.",
                fields=", ".join(sorted(names)),
                model=self._description,
            ))

    @api.model_create_multi
    def create(self, vals_list):
        self._ipai_refuse_guarded({
            name
            for vals in vals_list
            for name, initial in self._ipai_guarded.items()
            if name in vals and not _same(vals[name], initial)
        })
        return super().create(vals_list)

    def write(self, vals):
        self._ipai_refuse_guarded(set(self._ipai_guarded) & set(vals))
        return super().write(vals)
