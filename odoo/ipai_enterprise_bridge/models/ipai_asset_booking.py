"""Equipment bookings (the seed's "maintenance.equipment + custom module") and the
asset.* events (SPEC §4, aggregate = booking).

* ``action_reserve``  -> asset.reserved
* ``action_checkout`` -> asset.checked_out
* ``action_checkin``  -> asset.checked_in
* cron ``_cron_ipai_overdue`` -> asset.overdue, once per escalation level (1 employee,
  2 + manager, 3 + IT admin) of a booking checked out past its end.

Access (``security/ipai_security.xml``): an employee sees and changes only their own
bookings, an equipment manager all of them. Maintenance's own rule shows an employee
only the equipment they follow; equipment flagged "Bookable" is readable by every
employee, so they can pick it.
"""

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..utils.payloads import days_overdue, escalation_level, parse_thresholds
from ..utils.people import employee_facts

PARAM_ESCALATION = "ipai.asset.escalation_days"


class IpaiAssetBooking(models.Model):
    _name = "ipai.asset.booking"
    _description = "Equipment Booking"
    _inherit = ["mail.thread", "ipai.guarded.fields"]
    _order = "start desc, id desc"
    # The lifecycle and the escalation level decide which asset.* events are sent: they
    # change only through the buttons below and the overdue cron (models/guarded_fields.py).
    _ipai_guarded = {"state": "draft", "checked_out_at": False, "checked_in_at": False, "ipai_overdue_level": 0}

    name = fields.Char(required=True, copy=False, readonly=True, default=lambda self: _("New"))
    equipment_id = fields.Many2one(
        "maintenance.equipment",
        string="Equipment",
        required=True,
        tracking=True,
        domain=[("ipai_bookable", "=", True)],
    )
    employee_id = fields.Many2one(
        "hr.employee",
        string="Employee",
        required=True,
        tracking=True,
        default=lambda self: self.env.user.employee_id,
    )
    start = fields.Datetime(required=True, tracking=True)
    end = fields.Datetime(required=True, tracking=True)
    location = fields.Char(help="Where the equipment is picked up or used; defaults to the equipment's location.")
    state = fields.Selection(
        selection=[
            ("draft", "Draft"),
            ("reserved", "Reserved"),
            ("checked_out", "Checked Out"),
            ("checked_in", "Checked In"),
            ("cancelled", "Cancelled"),
        ],
        default="draft",
        required=True,
        tracking=True,
        copy=False,
    )
    checked_out_at = fields.Datetime(readonly=True, copy=False)
    checked_in_at = fields.Datetime(readonly=True, copy=False)
    ipai_overdue_level = fields.Integer(
        string="Overdue escalation level",
        readonly=True,
        copy=False,
        help="Highest asset.overdue escalation level already emitted (0 = none).",
    )
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, required=True)

    @api.constrains("start", "end")
    def _check_dates(self):
        for booking in self:
            if booking.start and booking.end and booking.end <= booking.start:
                raise ValidationError(_("A booking must end after it starts."))

    @api.constrains("equipment_id", "start", "end", "state")
    def _check_overlap(self):
        for booking in self.filtered(lambda b: b.state in ("reserved", "checked_out")):
            # sudo: the record rules show a user only their own bookings, but a clash
            # with anyone's booking must be seen.
            clash = self.sudo().search_count(
                [
                    ("id", "!=", booking.id),
                    ("equipment_id", "=", booking.equipment_id.id),
                    ("state", "in", ("reserved", "checked_out")),
                    ("start", "<", booking.end),
                    ("end", ">", booking.start),
                ]
            )
            if clash:
                raise ValidationError(_("%s is already booked for part of this period.", booking.equipment_id.display_name))

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if not vals.get("name") or vals["name"] == _("New"):
                vals["name"] = self.env["ir.sequence"].next_by_code("ipai.asset.booking") or _("New")
        return super().create(vals_list)

    # --------------------------------------------------------------------------- events

    def _ipai_facts(self):
        self.ensure_one()
        equipment = self.equipment_id.sudo()
        facts = employee_facts(self.employee_id.sudo())
        facts.update({
            "booking_id": self.id,
            "asset_id": equipment.id,
            "asset_name": equipment.name,
            "asset_code": equipment.serial_no or "",
            "start": self.start,
            "end": self.end,
            "location": self.location or equipment.location or "",
            "status": self.state,
        })
        return facts

    def _ipai_emit(self, event_type, discriminator=None, **event_fields):
        queue = self.env["ipai.event.queue"]
        for booking in self:
            facts = booking._ipai_facts()
            facts.update(event_fields)
            queue._ipai_enqueue(event_type, booking.id, facts, record=booking, discriminator=discriminator)

    # -------------------------------------------------------------------------- actions

    def _ipai_transition(self, allowed, action, vals):
        """Moves these bookings to a new state: the user must be allowed to change them
        (access rights and record rules), the state must allow the step; the guarded fields
        are then written in superuser mode."""
        wrong = self.filtered(lambda b: b.state not in allowed)
        if wrong:
            raise UserError(_("Cannot %(action)s booking(s) %(names)s in their current state.",
                              action=action, names=", ".join(wrong.mapped("name"))))
        self.check_access("write")
        self.sudo().write(vals)

    def action_reserve(self):
        self._ipai_transition(("draft",), _("reserve"), {"state": "reserved"})
        self._ipai_emit("asset.reserved")
        return True

    def action_checkout(self):
        self._ipai_transition(("draft", "reserved"), _("check out"),
                              {"state": "checked_out", "checked_out_at": fields.Datetime.now()})
        self._ipai_emit("asset.checked_out")
        return True

    def action_checkin(self):
        self._ipai_transition(("checked_out",), _("check in"),
                              {"state": "checked_in", "checked_in_at": fields.Datetime.now()})
        self._ipai_emit("asset.checked_in")
        return True

    def action_cancel(self):
        self._ipai_transition(("draft", "reserved"), _("cancel"), {"state": "cancelled"})
        return True

    # ----------------------------------------------------------------------------- cron

    @api.model
    def _cron_ipai_overdue(self):
        """asset.overdue for checked-out bookings past their end, once per escalation level."""
        now = fields.Datetime.now()
        thresholds = parse_thresholds(self.env["ir.config_parameter"].sudo().get_param(PARAM_ESCALATION, "1,3,7"))
        for booking in self.sudo().search([("state", "=", "checked_out"), ("end", "<", now)]):
            days = days_overdue(booking.end, now)
            level = escalation_level(days, thresholds)
            if level <= booking.ipai_overdue_level:
                continue
            booking._ipai_emit(
                "asset.overdue",
                discriminator="L%d" % level,
                escalation_level=level,
                days_overdue=days,
            )
            booking.write({"ipai_overdue_level": level})


class MaintenanceEquipment(models.Model):
    _inherit = "maintenance.equipment"

    ipai_bookable = fields.Boolean(
        string="Bookable",
        default=False,
        help="Employees can see and book this equipment (Maintenance > Bookings).",
    )
