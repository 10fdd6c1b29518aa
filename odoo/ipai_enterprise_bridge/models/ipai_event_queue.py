"""``ipai.event.queue``: the Odoo-side outbox of IPAI events.

A hook calls :meth:`IpaiEventQueue._ipai_enqueue` inside the transaction of the business change:
the row (and a trigger of the sender cron, ``ir.cron._trigger()``) commit with the change,
or not at all. Nothing is sent inside the user's request: Odoo's ``retrying()``
(``odoo/service/model.py``) commits, running post-commit callbacks, before it answers, so
a POST there would make every click wait on the bus. The cron worker wakes on the trigger
right after the commit and sends the row; the same cron also runs every minute as a
safety net. The state machine and the loop live in ``utils/outbox.py`` and
``utils/sender.py`` (pure, tested without Odoo); this model is their storage.

Reconciliation (SPEC §11, ``utils/digest.py``): an hourly cron (and the administrators'
"Send digest now") queues a ``bus.digest`` per hour of the queue whose rows are all final,
listing the keys it sent; the bus's integration user may ask for rows to be sent again
(``ipai_resend_keys``).
"""

import logging
import time

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

from ..utils import digest, idempotency, outbox, sender
from ..utils.events import make_event
from ..utils.ipai_webhook import canonical_body, send_ipai_event
from ..utils.payloads import build_payload

_logger = logging.getLogger(__name__)

PARAM_URL = "ipai.webhook.url"
PARAM_SECRET = "ipai.webhook.secret"
PARAM_TIMEOUT = "ipai.webhook.timeout"
PARAM_CONNECT_TIMEOUT = "ipai.webhook.connect_timeout"
PARAM_BATCH = "ipai.webhook.batch_size"
PARAM_NAMESPACE = "ipai.webhook.key_namespace"
PARAM_DIGEST_HORIZON = "ipai.digest.horizon_days"

SENDER_CRON = "ipai_enterprise_bridge.ir_cron_ipai_send_events"
# The bus's integration user: the only one who may ask Odoo to send events again.
BUS_GROUP = "ipai_enterprise_bridge.group_ipai_bus"
# One digest run at a time (transaction-scoped advisory lock; any constant of our own).
_DIGEST_LOCK = 0x1BA1D16E57
_TRIGGERED_KEY = "ipai_enterprise_bridge.sender_triggered"
# One cron run stops starting new attempts after this long (Odoo's cron timeout is longer).
_CRON_BUDGET_SECONDS = 50.0
_ALERT_ACTIVITY = "mail.mail_activity_data_todo"
_ALERT_SUMMARY_PREFIX = "IPAI event not delivered"
_QUIET = {"mail_create_nolog": True, "mail_create_nosubscribe": True, "tracking_disable": True}


def _float_param(value, default):
    try:
        return max(0.1, float(value)) if value not in (None, "", False) else default
    except ValueError:
        return default


class IpaiEventQueue(models.Model):
    _name = "ipai.event.queue"
    _description = "IPAI Event Queue"
    _inherit = ["mail.thread", "mail.activity.mixin", "ipai.guarded.fields"]
    _order = "id"
    _rec_name = "idempotency_key"

    event_type = fields.Char(required=True, index=True, readonly=True)
    aggregate_type = fields.Char(required=True, readonly=True)
    aggregate_id = fields.Char(required=True, readonly=True)
    idempotency_key = fields.Char(required=True, readonly=True, copy=False)
    body = fields.Text(
        required=True,
        readonly=True,
        help="The exact JSON sent to the bus; every retry sends these bytes again.",
    )
    state = fields.Selection(
        selection=[
            ("pending", "Pending"),
            ("sent", "Sent"),
            ("failed", "Failed"),
            ("cancelled", "Cancelled"),
        ],
        default="pending",
        required=True,
        index=True,
        readonly=True,
        help="Failed: the bus refused this event for good; it holds the later events of its record "
        "until an administrator requeues or cancels it.",
    )
    attempts = fields.Integer(default=0, readonly=True, help="Delivery attempts since queued or requeued.")
    next_attempt_at = fields.Datetime(default=fields.Datetime.now, index=True, readonly=True)
    last_attempt_at = fields.Datetime(readonly=True)
    last_status = fields.Integer(string="Last HTTP Status", readonly=True, help="0: no answer.")
    last_error = fields.Text(readonly=True)
    sent_at = fields.Datetime(readonly=True)
    bus_event_id = fields.Char(string="Bus Event ID", readonly=True, copy=False)
    res_model = fields.Char(string="Source Model", readonly=True)
    res_id = fields.Many2oneReference(string="Source Record", model_field="res_model", readonly=True)
    needs_attention = fields.Boolean(
        compute="_compute_needs_attention",
        search="_search_needs_attention",
        help="Failed, or still not delivered after several attempts.",
    )

    # Every stored field: what the sender signs and sends, and the state machine that decides
    # when. Rows are created by _ipai_enqueue and changed by the sender and the buttons, all in
    # superuser mode; over RPC nobody, the administrators included, may create a row or
    # change a body (models/guarded_fields.py). None: a new row may not carry it at all.
    _ipai_guarded = dict.fromkeys(
        ("event_type", "aggregate_type", "aggregate_id", "idempotency_key", "body", "bus_event_id",
         "res_model", "res_id", "state", "attempts", "next_attempt_at", "last_attempt_at",
         "last_status", "last_error", "sent_at"),
        None,
    )

    _sql_constraints = [
        ("idempotency_key_unique", "UNIQUE(idempotency_key)", "An IPAI event with this idempotency key is already queued."),
    ]

    def init(self):
        # The sender's selection: the oldest unsent row of each record.
        self.env.cr.execute(
            """CREATE INDEX IF NOT EXISTS ipai_event_queue_unsent_idx
                   ON ipai_event_queue (aggregate_type, aggregate_id, id)
                WHERE state IN ('pending', 'failed')"""
        )
        # The digest's windows: rows by creation time (utils/digest.py HOURS_SQL).
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS ipai_event_queue_create_date_idx ON ipai_event_queue (create_date)"
        )

    @api.depends("state", "attempts")
    def _compute_needs_attention(self):
        for row in self:
            row.needs_attention = row.state == outbox.FAILED or (
                row.state == outbox.PENDING and row.attempts >= outbox.ALERT_AFTER_ATTEMPTS
            )

    def _search_needs_attention(self, operator, value):
        domain = [
            "|",
            ("state", "=", outbox.FAILED),
            "&",
            ("state", "=", outbox.PENDING),
            ("attempts", ">=", outbox.ALERT_AFTER_ATTEMPTS),
        ]
        positive = (operator == "=") == bool(value)
        return domain if positive else ["!"] + domain

    # ------------------------------------------------------------------ configuration

    @api.model
    def _ipai_param(self, key, default=None):
        return self.env["ir.config_parameter"].sudo().get_param(key, default)

    @api.model
    def _ipai_config(self):
        """(url, secret, read timeout, connect timeout, batch size). Never logged."""
        url = (self._ipai_param(PARAM_URL) or "").strip()
        secret = self._ipai_param(PARAM_SECRET) or ""
        timeout = _float_param(self._ipai_param(PARAM_TIMEOUT), 10.0)
        connect_timeout = _float_param(self._ipai_param(PARAM_CONNECT_TIMEOUT), 5.0)
        try:
            batch = int(self._ipai_param(PARAM_BATCH, 50) or 50)
        except ValueError:
            batch = 50
        return url, secret, timeout, connect_timeout, max(1, batch)

    @api.model
    def _ipai_enabled(self):
        return bool((self._ipai_param(PARAM_URL) or "").strip())

    # ------------------------------------------------------------------------ enqueue

    @api.model
    def _ipai_enqueue(
        self, event_type, aggregate_id, facts, record=None, discriminator=None, extra=None,
        occurred_at=None, write_date=None,
    ):
        """Queue one event in the current transaction; returns the queue row (or an empty
        recordset when ``ipai.webhook.url`` is not set: callers must not mark anything
        as announced then).

        Private (the leading underscore): Odoo's RPC refuses to call it
        (``odoo.models.check_method_name``), so only the addon's own hooks queue events and
        no user can make Odoo sign a payload of their choosing (SPEC §15). It writes with
        ``sudo()`` because the user whose change caused the event may not read the queue.

        ``facts`` are turned into the payload by ``utils.payloads``; the key combines
        the aggregate, the event type and the write date (``write_date``, else
        ``record.write_date``) plus ``discriminator``, so queuing the same change twice
        yields one row while a later change of the same kind gets a new key.
        """
        if not self._ipai_enabled():
            _logger.debug("IPAI webhook not configured; %s for %s not queued", event_type, aggregate_id)
            return self.browse()
        payload = build_payload(event_type, facts, extra)
        now = fields.Datetime.now()
        event = make_event(event_type, aggregate_id, payload, occurred_at=occurred_at or now)
        if not write_date:
            write_date = record.write_date if record is not None and record.write_date else now
        key = idempotency.make_key(
            event["aggregate_type"],
            event["aggregate_id"],
            event_type,
            write_date,
            discriminator,
            namespace=self._ipai_param(PARAM_NAMESPACE) or None,
        )
        return self._ipai_queue_event(event, key, record)

    @api.model
    def _ipai_queue_event(self, event, key, record=None):
        """The queue row of ``event`` (an envelope from ``make_event``) under ``key``: the
        existing one, or a new one (and the sender woken after the commit)."""
        # mail.thread is here for the admins' activities and notes only: no creation
        # message, follower or tracking per event row.
        queue = self.sudo().with_context(_QUIET)
        existing = queue.search([("idempotency_key", "=", key)], limit=1)
        if existing:
            return existing
        row = queue.create(
            {
                "event_type": event["event_type"],
                "aggregate_type": event["aggregate_type"],
                "aggregate_id": event["aggregate_id"],
                "idempotency_key": key,
                "body": canonical_body(event).decode("utf-8"),
                "res_model": record._name if record is not None else False,
                "res_id": record.id if record is not None else False,
            }
        )
        self._ipai_wake_sender()
        return row

    @api.model
    def _ipai_wake_sender(self):
        """Schedules the sender cron to run as soon as this transaction commits (once per
        transaction). ``ir.cron._trigger`` writes an ``ir.cron.trigger`` row in this
        transaction and notifies the cron workers after commit: a rolled-back change
        wakes nobody, and the user's request never waits for the bus."""
        data = self.env.cr.precommit.data
        triggers = self.env["ir.cron.trigger"].sudo()
        if data.get(_TRIGGERED_KEY) and triggers.browse(data[_TRIGGERED_KEY]).exists():
            return  # already woken by this transaction (and not rolled back to a savepoint)
        cron = self.env.ref(SENDER_CRON, raise_if_not_found=False)
        if cron:
            data[_TRIGGERED_KEY] = cron.sudo()._trigger().ids
        else:
            _logger.warning("IPAI: the sender cron %s is missing; queued events wait", SENDER_CRON)

    # ------------------------------------------------------------------------ deliver

    def _ipai_row(self):
        self.ensure_one()
        return {
            "id": self.id,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "idempotency_key": self.idempotency_key,
            "body": self.body,
        }

    @api.model
    def _ipai_oldest_unsent(self, limit):
        """Of each record's unsent rows (pending or failed), the oldest, if pending; locked
        (skipping rows another worker holds). ``outbox.sendable`` then applies due-ness."""
        self.flush_model()
        self.env.cr.execute(outbox.OLDEST_UNSENT_SQL, [fields.Datetime.now(), limit])
        ids = [r[0] for r in self.env.cr.fetchall()]
        if not ids:
            return self.browse()
        self.env.cr.execute(
            "SELECT id FROM ipai_event_queue WHERE id IN %s AND state = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED",
            [tuple(ids)],
        )
        return self.browse([r[0] for r in self.env.cr.fetchall()])

    def _ipai_alert(self, reason):
        """An activity for the administrators on this row, at most one open per row and
        one per cause (a secret rotation makes every row answer 401: one activity)."""
        self.ensure_one()
        summary = ("%s: %s" % (_ALERT_SUMMARY_PREFIX, reason))[:120]
        cause = reason.split(":", 1)[0]
        activities = self.env["mail.activity"].sudo()
        open_same = activities.search_count(
            [("res_model", "=", self._name), ("summary", "=like", "%s: %s%%" % (_ALERT_SUMMARY_PREFIX, cause))]
            + ([("res_id", "=", self.id)] if cause == "failed for good" else [])
        )
        if open_same:
            return
        admins = self.env.ref("base.group_system").sudo().users.filtered(lambda u: u.active and not u.share)
        for admin in admins[:3] or self.env.ref("base.user_admin"):
            self.sudo().activity_schedule(
                _ALERT_ACTIVITY,
                summary=summary,
                note=_("Open Settings > Technical > IPAI Event Queue, filter \"Needs attention\". %s", reason),
                user_id=admin.id,
            )

    def _ipai_close_alerts(self, feedback):
        alerts = self.sudo().activity_ids.filtered(lambda a: (a.summary or "").startswith(_ALERT_SUMMARY_PREFIX))
        if alerts:
            alerts.action_feedback(feedback=feedback)

    @api.model
    def _cron_send_pending(self):
        """Cron (and its triggers): send due rows, oldest first, per-record order kept.
        Never raises: a raising job rolls back its batch and Odoo deactivates a cron
        that fails 5 times over 7 days (``ir_cron.py``)."""
        try:
            self._ipai_send_due()
        except Exception:  # noqa: BLE001
            _logger.exception("IPAI sender: unexpected error; the rows stay queued for the next run")
            if self.env.context.get("cron_id"):
                self.env.cr.rollback()

    @api.model
    def _ipai_send_due(self):
        url, secret, timeout, connect_timeout, batch = self._ipai_config()
        if not url and not self.search_count([("state", "=", outbox.PENDING)], limit=1):
            return None
        store = _QueueStore(self.sudo().with_context(_QUIET), commit=bool(self.env.context.get("cron_id")))
        send = outbox.deliver_with(send_ipai_event, url, secret, timeout=timeout, connect_timeout=connect_timeout)
        summary = sender.run_sender(store, send, fields.Datetime.now(), _CRON_BUDGET_SECONDS, batch, time.monotonic)
        if summary.attempted and summary.attempted == batch and not summary.error:
            # More may be due: ask Odoo to run the job again right away (18.0 progress API).
            self.env["ir.cron"]._notify_progress(done=summary.attempted, remaining=1)
        return summary

    # ------------------------------------------------------------------- user actions

    def _ipai_check_button(self):
        """A button writes the guarded state in superuser mode: the user must hold the
        write right on the queue (the bridge administrators)."""
        self.check_access("write")
        return self.sudo()

    def action_requeue(self):
        """Button on failed rows: back to pending after a human fixed the cause."""
        now = fields.Datetime.now()
        self._ipai_check_button()
        for row in self:
            if row.state != outbox.FAILED:
                raise UserError(_("Only failed events can be requeued (%(key)s is %(state)s).",
                                  key=row.idempotency_key, state=row.state))
            row.sudo().write(outbox.requeue(row._ipai_row(), now))
            row._ipai_close_alerts(_("Requeued by %s", self.env.user.name))
        self._ipai_wake_sender()
        return True

    def action_cancel(self):
        """Button on unsent rows: this event will never be sent (the later events of its
        record are released)."""
        now = fields.Datetime.now()
        self._ipai_check_button()
        for row in self:
            if row.state not in outbox.UNSENT:
                raise UserError(_("Only pending or failed events can be cancelled (%(key)s is %(state)s).",
                                  key=row.idempotency_key, state=row.state))
            row.sudo().write(outbox.cancel(row._ipai_row(), now))
            row.message_post(body=_("Cancelled by %s: this event will not be sent.", self.env.user.name))
            row._ipai_close_alerts(_("Cancelled by %s", self.env.user.name))
        self._ipai_wake_sender()
        return True

    def action_send_now(self):
        """Button: wake the sender now (it runs in the cron worker, keeps each record's
        order and makes the selected pending rows due)."""
        due = self.filtered(lambda r: r.state == outbox.PENDING)
        due._ipai_check_button().write({"next_attempt_at": fields.Datetime.now()})
        self._ipai_wake_sender()
        return True

    # ----------------------------------------------------------- reconciliation (§11)

    @api.model
    def _ipai_horizon_days(self):
        try:
            days = int(self._ipai_param(PARAM_DIGEST_HORIZON, digest.DEFAULT_HORIZON_DAYS))
        except (TypeError, ValueError):
            days = digest.DEFAULT_HORIZON_DAYS
        return max(1, days)

    @api.model
    def _ipai_send_digests(self, include_open_hour=False, now=None):
        """Queues the ``bus.digest`` of every window that is due (``utils/digest.py``): each
        closed hour of the last ``ipai.digest.horizon_days`` (7) days whose rows are all
        final, and, with ``include_open_hour``, the current hour up to now. A window whose
        digest was queued already with the same content is not queued again. Returns the
        digest rows queued (empty when the webhook is not configured), or None when another
        digest run holds the lock.

        Private: only the cron and the administrators' button run it."""
        if not self._ipai_enabled():
            return self.browse()
        cr = self.env.cr
        cr.execute("SELECT pg_try_advisory_xact_lock(%s)", [_DIGEST_LOCK])
        if not cr.fetchone()[0]:
            return None
        now = now or fields.Datetime.now()
        since, until = digest.span(now, self._ipai_horizon_days(), include_open_hour)
        database = cr.dbname
        namespace = self._ipai_param(PARAM_NAMESPACE) or None
        tracker = self.env["ipai.bus.digest"].sudo()
        self.flush_model()
        cr.execute(digest.HOURS_SQL, [since, until])
        queued = self.browse()
        for hour, unfinished, _sent, hour_sha in cr.fetchall():
            end = digest.window_end(hour, until)
            if unfinished or end is None or tracker._ipai_hour_unchanged(hour, end, hour_sha):
                continue
            cr.execute(digest.WINDOW_ROWS_SQL, [hour, end])
            rows = [dict(zip(("create_date", "state", "idempotency_key", "event_type"), r)) for r in cr.fetchall()]
            try:
                digests = digest.hour_digests(rows, hour, end)
            except ValueError as e:
                _logger.error("IPAI digest: the hour %s cannot be digested: %s", digest.rfc3339(hour), e)
                continue
            if digests is None:
                continue
            hour_vals = {"hour_start": hour, "hour_end": end, "hour_sha256": hour_sha}
            last = tracker._ipai_last_keys([d.aggregate_id(database) for d in digests])
            due = digest.to_send(digests, last, database, namespace)
            for d in due:
                row = self._ipai_enqueue_digest(d, database, namespace, now)
                tracker.create(dict(
                    hour_vals,
                    aggregate_id=d.aggregate_id(database),
                    window_start=d.window_start,
                    window_end=d.window_end,
                    key_count=d.count,
                    keys_sha256=d.keys_sha256,
                    idempotency_key=row.idempotency_key,
                    queue_id=row.id,
                ))
                queued |= row
            if not due:
                # Same digests as last time (the hour's summary moved, its digests did not):
                # remember this summary so the next run skips the hour at once.
                tracker.search([("idempotency_key", "in", [d.idempotency_key(database, namespace) for d in digests])]) \
                    .write(hour_vals)
        if queued:
            _logger.info("IPAI digest: %d digest(s) queued", len(queued))
        return queued

    @api.model
    def _ipai_enqueue_digest(self, d, database, namespace, now):
        """Queues one digest (a ``utils.digest.Digest``) like any event: signed and sent by
        the sender, retried under its key."""
        event = make_event(digest.DIGEST_EVENT_TYPE, d.aggregate_id(database), d.payload(), occurred_at=now)
        return self._ipai_queue_event(event, d.idempotency_key(database, namespace))

    @api.model
    def _cron_send_digest(self):
        """Cron (hourly): the digests of the closed hours. Never raises (see
        ``_cron_send_pending``)."""
        try:
            if self._ipai_send_digests() is None:
                _logger.info("IPAI digest: another digest run is under way; skipped")
        except Exception:  # noqa: BLE001
            _logger.exception("IPAI digest: unexpected error; the windows are digested on the next run")
            if self.env.context.get("cron_id"):
                self.env.cr.rollback()

    def action_send_digest_now(self):
        """Button "Send digest now" (the queue's list, administrators): the digests the cron
        would queue, plus the current hour up to now when all its rows are final. Works on
        the model: the selected rows, if any, do not matter (over RPC: ``[[]]``)."""
        if not self.env.user.has_group("base.group_system"):
            raise AccessError(_("Only the administrators may send the reconciliation digest."))
        if not self._ipai_enabled():
            raise UserError(_("Set ipai.webhook.url (Settings > Technical > System Parameters) first."))
        queued = self.browse()._ipai_send_digests(include_open_hour=True)
        if queued is None:
            raise UserError(_("A digest is being prepared right now; try again in a moment."))
        message = (_("%s reconciliation digest(s) queued; the sender sends them now.", len(queued)) if queued
                   else _("Nothing new to digest: every final window was sent with the same content."))
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "message": message,
                "type": "success" if queued else "info",
                "sticky": False,
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    @api.model
    def ipai_resend_keys(self, keys):
        """Healing (SPEC §11), called by the bus over JSON-RPC::

            execute_kw(db, uid, key, "ipai.event.queue", "ipai_resend_keys", [keys])

        ``keys``: the idempotency keys a digest listed that the bus never stored (at most
        10,000). Their rows go back to pending, due now, attempts from 0, and the sender
        sends them again with their original body and key. Returns ``{"requeued": [keys],
        "unknown": [keys], "cancelled": [keys]}`` (unknown: no row has the key; cancelled: an
        administrator cancelled the row, it stays so). Only the bus's integration user
        (group ``ipai_enterprise_bridge.group_ipai_bus``) may call it: administrators,
        employees, portal and public users get an AccessError."""
        if not self.env.user.has_group(BUS_GROUP):
            raise AccessError(_("Only the IPAI bus's integration user may ask Odoo to send events again."))
        try:
            keys = digest.check_resend_keys(keys)
        except ValueError as e:
            raise ValidationError(_("ipai_resend_keys: %s", e)) from None
        queue = self.sudo().with_context(_QUIET)
        rows = queue.search([("idempotency_key", "in", keys)]) if keys else queue.browse()
        by_key = {row.idempotency_key: row for row in rows}
        cancelled = rows.filtered(lambda r: r.state not in outbox.RESENDABLE)
        resend = rows - cancelled
        failed = resend.filtered(lambda r: r.state == outbox.FAILED)
        if resend:
            now = fields.Datetime.now()
            # The same change for every row (utils/outbox.py resend): one UPDATE.
            resend.write(outbox.resend(resend[0]._ipai_row(), now))
            failed._ipai_close_alerts(_("Requeued at the bus's request (reconciliation)"))
            self._ipai_wake_sender()
        result = {
            "requeued": [k for k in keys if k in by_key and by_key[k] in resend],
            "unknown": [k for k in keys if k not in by_key],
            "cancelled": [k for k in keys if k in by_key and by_key[k] in cancelled],
        }
        _logger.info("IPAI: the bus asked for %d event(s) again: %d requeued, %d unknown, %d cancelled",
                     len(keys), len(result["requeued"]), len(result["unknown"]), len(result["cancelled"]))
        return result


class _QueueStore:
    """The storage ``utils.sender.run_sender`` works on, over ``ipai.event.queue``."""

    def __init__(self, queue, commit):
        self.queue = queue
        self._commit = commit

    def sendable(self, limit):
        rows = self.queue._ipai_oldest_unsent(limit)
        return outbox.sendable([r._ipai_row() for r in rows], fields.Datetime.now(), limit)

    def write(self, row_id, changes):
        self.queue.browse(row_id).write(changes)

    def alert(self, row_id, reason):
        self.queue.browse(row_id)._ipai_alert(reason)

    def commit(self):
        # In the cron worker each row's outcome is committed at once, so a restart loses
        # at most the answer being waited for (the row is resent; the bus dedupes it).
        if self._commit:
            self.queue.env.cr.commit()

    def rollback(self):
        # Outside the cron worker (a test, a shell) the caller owns the transaction.
        if self._commit:
            self.queue.env.cr.rollback()
