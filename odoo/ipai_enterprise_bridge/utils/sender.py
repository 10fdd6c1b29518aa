"""The sender cron's loop, as pure code: pick the sendable rows, send each, record each
outcome, alert an admin when a row needs one, commit after each row, and never raise.

Odoo deactivates a cron whose job raises 5 times over 7 days (``ir_cron.py``,
``MIN_FAILURE_COUNT_BEFORE_DEACTIVATION``), and a raising job rolls back its whole batch:
the queue would stop for good. So every failure here, of one row or of the store, is
logged and turned into a row's ``last_error`` or a summary, never an exception. The model
(``models/ipai_event_queue.py``) provides the store; tests use an in-memory one.
"""

import logging
import time

from . import outbox

_logger = logging.getLogger(__name__)


class Summary:
    """What one run did: rows attempted, sent, failed for good, still pending, alerts
    raised, and the error that cut the run short (if any)."""

    __slots__ = ("attempted", "sent", "failed", "retrying", "alerts", "error")

    def __init__(self):
        self.attempted = self.sent = self.failed = self.retrying = self.alerts = 0
        self.error = None

    def count(self, changes):
        self.attempted += 1
        state = changes.get("state")
        if state == outbox.SENT:
            self.sent += 1
        elif state == outbox.FAILED:
            self.failed += 1
        else:
            self.retrying += 1

    def __repr__(self):
        return "Summary(attempted=%d, sent=%d, failed=%d, retrying=%d, alerts=%d, error=%r)" % (
            self.attempted, self.sent, self.failed, self.retrying, self.alerts, self.error)


def run_sender(store, send, now, budget_seconds=50.0, limit=50, clock=time.monotonic, jitter=None):
    """One pass of the sender. ``store`` provides:

    * ``sendable(limit)``: the rows :func:`outbox.sendable` allows, oldest first;
    * ``write(row_id, changes)``, ``alert(row_id, reason)``, ``commit()``, ``rollback()``.

    Returns a :class:`Summary`; never raises.
    """
    summary = Summary()
    try:
        rows = store.sendable(limit)
    except Exception as e:  # noqa: BLE001
        return _abort(store, summary, "reading the queue", e)

    def record(row, outcome, changes):
        store.write(row["id"], changes)
        summary.count(changes)
        reason = outbox.alert_reason(outcome, changes)
        if reason:
            _alert(store, row, reason, summary)
        store.commit()
        _log_outcome(row, changes)

    try:
        outbox.run_batch(rows, send, now, jitter=jitter, deadline=clock() + budget_seconds, clock=clock,
                         on_result=record)
    except Exception as e:  # noqa: BLE001
        return _abort(store, summary, "recording an outcome", e)
    return summary


def _alert(store, row, reason, summary):
    try:
        store.alert(row["id"], reason)
        summary.alerts += 1
    except Exception:  # noqa: BLE001 (the row's state matters more than the alert)
        _logger.exception("IPAI: could not alert an admin about event %s (%s)", row.get("idempotency_key"), reason)


def _abort(store, summary, doing, error):
    summary.error = "%s: %s" % (doing, outbox.describe_exception(error))
    _logger.exception("IPAI sender stopped while %s; the rows stay queued for the next run", doing)
    try:
        store.rollback()
    except Exception:  # noqa: BLE001
        _logger.exception("IPAI sender: rollback failed")
    return summary


def _log_outcome(row, changes):
    key = row.get("idempotency_key")
    if changes["state"] == outbox.FAILED:
        _logger.error("IPAI event %s failed for good: %s", key, changes.get("last_error"))
    elif changes["state"] == outbox.PENDING:
        _logger.warning("IPAI event %s not accepted (attempt %d): %s; next attempt at %s",
                        key, changes["attempts"], changes.get("last_error"), changes.get("next_attempt_at"))
