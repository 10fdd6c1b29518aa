# Pure helpers of the addon: no import of `odoo` anywhere in this package, so they run
# (and are tested) without an Odoo server. The models are thin adapters over them.
