"""``ipai.event.queue``: the Odoo-side outbox of IPAI events.

A hook calls :meth:`IpaiEventQueue.enqueue` inside the transaction of the business change,
so the event exists exactly when the change does. After commit the rows are sent
(``cr.postcommit``); whatever is not accepted then is retried by the cron
``ir_cron_ipai_send_events`` with the same body and idempotency key. The state machine
itself lives in ``utils/outbox.py`` (pure, tested without Odoo).
"""

import logging
import time

from odoo import SUPERUSER_ID, _, api, fields, models
from odoo.exceptions import UserError

from ..utils import idempotency, outbox
from ..utils.events import make_event
from ..utils.ipai_webhook import canonical_body, send_ipai_event
from ..utils.payloads import build_payload

_logger = logging.getLogger(__name__)

PARAM_URL = "ipai.webhook.url"
PARAM_SECRET = "ipai.webhook.secret"
PARAM_TIMEOUT = "ipai.webhook.timeout"
PARAM_BATCH = "ipai.webhook.batch_size"
PARAM_NAMESPACE = "ipai.webhook.key_namespace"

_POSTCOMMIT_KEY = "ipai_enterprise_bridge.queue_ids"
# Sending right after commit runs in the user's request: keep it short, the cron does the rest.
_POSTCOMMIT_BUDGET_SECONDS = 5.0
_CRON_BUDGET_SECONDS = 50.0


class IpaiEventQueue(models.Model):
    _name = "ipai.event.queue"
    _description = "IPAI Event Queue"
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
        selection=[("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed")],
        default="pending",
        required=True,
        index=True,
        readonly=True,
    )
    attempts = fields.Integer(default=0, readonly=True)
    next_attempt_at = fields.Datetime(default=fields.Datetime.now, index=True, readonly=True)
    last_attempt_at = fields.Datetime(readonly=True)
    last_status = fields.Integer(string="Last HTTP Status", readonly=True)
    last_error = fields.Text(readonly=True)
    sent_at = fields.Datetime(readonly=True)
    bus_event_id = fields.Char(string="Bus Event ID", readonly=True, copy=False)
    res_model = fields.Char(string="Source Model", readonly=True)
    res_id = fields.Many2oneReference(string="Source Record", model_field="res_model", readonly=True)

    _sql_constraints = [
        ("idempotency_key_unique", "UNIQUE(idempotency_key)", "An IPAI event with this idempotency key is already queued."),
    ]

    # ------------------------------------------------------------------ configuration

    @api.model
    def _ipai_param(self, key, default=None):
        return self.env["ir.config_parameter"].sudo().get_param(key, default)

    @api.model
    def _ipai_config(self):
        """(url, secret, timeout, batch size). The secret is never logged."""
        url = (self._ipai_param(PARAM_URL) or "").strip()
        secret = self._ipai_param(PARAM_SECRET) or ""
        try:
            timeout = float(self._ipai_param(PARAM_TIMEOUT, 10) or 10)
        except ValueError:
            timeout = 10.0
        try:
            batch = int(self._ipai_param(PARAM_BATCH, 50) or 50)
        except ValueError:
            batch = 50
        return url, secret, timeout, max(1, batch)

    @api.model
    def _ipai_enabled(self):
        return bool((self._ipai_param(PARAM_URL) or "").strip())

    # ------------------------------------------------------------------------ enqueue

    @api.model
    def enqueue(
        self, event_type, aggregate_id, facts, record=None, discriminator=None, extra=None,
        occurred_at=None, write_date=None,
    ):
        """Queue one event in the current transaction; returns the queue row (or an empty
        recordset when ``ipai.webhook.url`` is not set).

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
        queue = self.sudo()
        existing = queue.search([("idempotency_key", "=", key)], limit=1)
        if existing:
            return existing
        row = queue.create(
            {
                "event_type": event_type,
                "aggregate_type": event["aggregate_type"],
                "aggregate_id": event["aggregate_id"],
                "idempotency_key": key,
                "body": canonical_body(event).decode("utf-8"),
                "res_model": record._name if record is not None else False,
                "res_id": record.id if record is not None else False,
            }
        )
        row._ipai_send_after_commit()
        return row

    def _ipai_send_after_commit(self):
        """Registers the rows to be sent once the current transaction commits."""
        postcommit = self.env.cr.postcommit
        ids = postcommit.data.setdefault(_POSTCOMMIT_KEY, [])
        if not ids:
            dbname = self.env.cr.dbname
            registry = self.env.registry

            def _send():
                try:
                    with registry.cursor() as cr:
                        env = api.Environment(cr, SUPERUSER_ID, {})
                        env["ipai.event.queue"].browse(ids)._ipai_deliver(_POSTCOMMIT_BUDGET_SECONDS)
                except Exception:  # never fail the user's request: the cron retries
                    _logger.exception("IPAI: sending after commit failed on %s; the cron will retry", dbname)

            postcommit.add(_send)

        ids.extend(self.ids)

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

    def _ipai_lock_pending(self):
        """Locks this recordset's pending rows (skipping rows another worker holds)."""
        if not self.ids:
            return self.browse()
        self.flush_model()
        self.env.cr.execute(
            "SELECT id FROM ipai_event_queue WHERE id IN %s AND state = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED",
            [tuple(self.ids)],
        )
        return self.browse([r[0] for r in self.env.cr.fetchall()])

    def _ipai_deliver(self, budget_seconds=_CRON_BUDGET_SECONDS):
        """Sends these rows (those still pending and due), in order; writes each outcome."""
        url, secret, timeout, _batch = self._ipai_config()
        if not url or not secret:
            _logger.warning("IPAI webhook URL or secret not configured: %d event(s) wait in the queue", len(self))
            return 0
        rows = self._ipai_lock_pending()
        if not rows:
            return 0
        now = fields.Datetime.now()
        send = outbox.deliver_with(send_ipai_event, url, secret, timeout=timeout)
        deadline = time.monotonic() + budget_seconds
        results = outbox.run_batch(
            [r._ipai_row() for r in rows], send, now, deadline=deadline, clock=time.monotonic
        )
        for row_id, changes in results:
            row = self.browse(row_id)
            row.write(changes)
            if changes["state"] == outbox.FAILED:
                _logger.error("IPAI event %s failed permanently: %s", row.idempotency_key, changes.get("last_error"))
            elif changes["state"] == outbox.PENDING:
                _logger.warning(
                    "IPAI event %s not accepted (attempt %d): %s; retry at %s",
                    row.idempotency_key, changes["attempts"], changes.get("last_error"), changes.get("next_attempt_at"),
                )
        return len(results)

    @api.model
    def _cron_send_pending(self):
        """Cron: send every due pending row, oldest first, keeping per-aggregate order."""
        if not self._ipai_enabled():
            return
        _url, _secret, _timeout, batch = self._ipai_config()
        self.flush_model()
        self.env.cr.execute(
            """
            SELECT q.id FROM ipai_event_queue q
             WHERE q.state = 'pending'
               AND (q.next_attempt_at IS NULL OR q.next_attempt_at <= %s)
               AND NOT EXISTS (SELECT 1 FROM ipai_event_queue o
                                WHERE o.state = 'pending'
                                  AND o.aggregate_type = q.aggregate_type
                                  AND o.aggregate_id = q.aggregate_id
                                  AND o.id < q.id)
             ORDER BY q.id
             LIMIT %s
            """,
            [fields.Datetime.now(), batch],
        )
        ids = [r[0] for r in self.env.cr.fetchall()]
        if ids:
            self.browse(ids)._ipai_deliver(_CRON_BUDGET_SECONDS)

    # ------------------------------------------------------------------- user actions

    def action_requeue(self):
        """Button on failed rows: back to pending after a human fixed the cause."""
        now = fields.Datetime.now()
        for row in self:
            if row.state != outbox.FAILED:
                raise UserError(_("Only failed events can be requeued (%s is %s).", row.idempotency_key, row.state))
            row.write(outbox.requeue(row._ipai_row(), now))
        return True

    def action_send_now(self):
        """Button: try the selected pending rows right away."""
        self._ipai_deliver(_CRON_BUDGET_SECONDS)
        return True
