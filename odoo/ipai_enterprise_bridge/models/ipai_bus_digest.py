"""``ipai.bus.digest``: what the reconciliation job queued (SPEC §11), one row per digest.

The digest job (``ipai.event.queue._ipai_send_digests``) reads it to queue a window's
digest again only when its content changed (another idempotency key: other keys, or a
later end), and to skip, without reading its keys, an hour whose sent keys are the same as
at its last digest (``hour_sha256``). Written only by that job, in superuser mode; the
administrators may read it.
"""

from odoo import api, fields, models


class IpaiBusDigest(models.Model):
    _name = "ipai.bus.digest"
    _description = "IPAI Reconciliation Digest"
    _order = "id desc"
    _rec_name = "aggregate_id"

    aggregate_id = fields.Char(
        string="Window", required=True, index=True, readonly=True,
        help="\"<database>:<window_start>\": the window as the bus names it (it keeps the last digest of each).",
    )
    window_start = fields.Datetime(required=True, readonly=True)
    window_end = fields.Datetime(required=True, readonly=True)
    key_count = fields.Integer(string="Keys", readonly=True, help="Idempotency keys of the window's sent events.")
    keys_sha256 = fields.Char(string="Keys SHA-256", readonly=True)
    idempotency_key = fields.Char(readonly=True, help="The digest event's own key: it names the content.")
    queue_id = fields.Many2one("ipai.event.queue", string="Digest Event", ondelete="set null", readonly=True)
    hour_start = fields.Datetime(string="Hour", required=True, index=True, readonly=True)
    hour_end = fields.Datetime(string="Hour Digested Until", readonly=True)
    hour_sha256 = fields.Char(
        string="Hour Keys SHA-256", readonly=True,
        help="The SHA-256 of the whole hour's sent keys when last digested: an unchanged hour is skipped.",
    )
    digested_at = fields.Datetime(default=fields.Datetime.now, readonly=True)

    @api.model
    def _ipai_last_keys(self, aggregate_ids):
        """aggregate_id -> the idempotency key of the last digest queued for that window."""
        last = {}
        if aggregate_ids:
            for rec in self.search_read([("aggregate_id", "in", list(aggregate_ids))], ["aggregate_id", "idempotency_key"],
                                        order="id desc"):
                last.setdefault(rec["aggregate_id"], rec["idempotency_key"])
        return last

    @api.model
    def _ipai_hour_unchanged(self, hour_start, hour_end, hour_sha256):
        """Whether the hour was digested up to ``hour_end`` with these very sent keys."""
        return bool(self.search_count(
            [("hour_start", "=", hour_start), ("hour_end", "=", hour_end), ("hour_sha256", "=", hour_sha256)],
            limit=1,
        ))
