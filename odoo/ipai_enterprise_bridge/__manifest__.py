{
    "name": "IPAI Enterprise Bridge",
    "version": "18.0.1.3.0",
    "category": "Technical",
    "summary": "Durable, HMAC-signed business events from Odoo to the IPAI integration bus",
    "description": """
Emits expense, equipment-booking and finance (PPM/BIR) task events to the IPAI
integration bus (ingest: ``POST /odoo-webhook``).

* Every event is written to ``ipai.event.queue`` in the same transaction as the business
  change; the sender cron is triggered by that commit and sends it from the cron worker
  (never inside the user's request), retrying with the same body and stable idempotency
  key until the bus accepts it: an outage of the bus loses nothing.
* Requests are signed as the bus expects: ``x-ipai-timestamp`` (ms),
  ``x-ipai-signature`` (hex HMAC-SHA256 over ``"{timestamp}.{body}"``),
  ``x-idempotency-key``.
* Reconciliation: every hour a ``bus.digest`` event lists, per hour of the queue, the
  idempotency keys Odoo marked sent, so the bus can prove nothing was lost; the bus's
  integration user (group "IPAI: the bus's integration user") may ask Odoo to send the
  missing ones again.
* Configure in Settings > Technical > System Parameters: ``ipai.webhook.url`` and
  ``ipai.webhook.secret``.
""",
    "author": "InsightPulse AI",
    "license": "Other OSI approved licence",
    "depends": ["mail", "hr_expense", "maintenance", "project"],
    "data": [
        "security/ir.model.access.csv",
        "security/ipai_security.xml",
        "data/ir_config_parameter.xml",
        "data/ir_sequence.xml",
        "data/ir_cron.xml",
        "views/ipai_event_queue_views.xml",
        "views/ipai_asset_booking_views.xml",
        "views/project_views.xml",
        "views/hr_views.xml",
    ],
    "post_init_hook": "post_init_hook",
    "installable": True,
    "application": False,
}
