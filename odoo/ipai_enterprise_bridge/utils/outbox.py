"""The Odoo-side retry queue (``ipai.event.queue``) as a pure state machine.

A business change and its event row commit in one transaction; the row is then sent
after commit and by a cron, with the same body bytes and idempotency key every time,
until the bus accepts it. States::

    pending --2xx (202 queued | 200 duplicate)------------------------> sent
    pending --no answer | 5xx | 429 | 408 | 425 | 409 (few times)----> pending (attempts+1,
                                                                        next_attempt_at later)
    pending --other 4xx (401 bad secret, 422 unknown type, ...)-------> failed (last_error
                                                                        kept for a human)
    pending --409 more than CONFLICT_ATTEMPTS times--------------------> failed
    failed  --requeue (a human, after fixing the cause)---------------> pending (attempts 0)

Nothing here imports Odoo: rows are plain dicts with the model's field names
(id, state, attempts, next_attempt_at, aggregate_type, aggregate_id, idempotency_key, body).
"""

import datetime as _dt
import random

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
STATES = (PENDING, SENT, FAILED)

ACCEPTED = "accepted"
RETRY = "retry"
PERMANENT = "permanent"

BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 3600
MAX_RETRY_AFTER_SECONDS = 6 * 3600
# A 409 (same key, different body) does not heal by itself; a few retries cover a bus
# that was mid-restore, then a human looks at it.
CONFLICT_ATTEMPTS = 5
# Statuses worth retrying although they are 4xx.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class Outcome:
    """The result of one delivery attempt: an HTTP status (None = no answer)."""

    __slots__ = ("status", "error", "event_id", "duplicate", "retry_after")

    def __init__(self, status=None, error=None, event_id=None, duplicate=False, retry_after=None):
        self.status = status
        self.error = error
        self.event_id = event_id
        self.duplicate = duplicate
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, resp):
        """From an ``ipai_webhook.IpaiResponse``."""
        return cls(
            status=resp.status,
            error=None if resp.accepted else resp.describe(),
            event_id=resp.event_id,
            duplicate=resp.duplicate,
            retry_after=resp.retry_after,
        )

    @classmethod
    def transport_error(cls, error):
        return cls(status=None, error=str(error) or error.__class__.__name__)

    def __repr__(self):
        return "Outcome(status=%r, error=%r)" % (self.status, self.error)


def classify(status):
    """accepted | retry | permanent for an HTTP status (None: no answer)."""
    if status is None:
        return RETRY
    if 200 <= status < 300:
        return ACCEPTED
    if status in RETRYABLE_4XX:
        return RETRY
    if 400 <= status < 500:
        return PERMANENT
    # 5xx (503 database unavailable, 502/504 from a proxy), 1xx/3xx: try again later.
    return RETRY


def backoff_seconds(attempts, retry_after=None, jitter=None):
    """Delay before the next attempt after ``attempts`` failed ones: 30 s, 60 s, 120 s, ...
    capped at 1 h (so a bus down for a day is retried every hour, forever), at least
    the server's Retry-After. ``jitter`` in [0, 1) spreads retries by up to +20 %."""
    n = max(1, int(attempts))
    delay = min(BASE_DELAY_SECONDS * (2 ** min(n - 1, 20)), MAX_DELAY_SECONDS)
    if retry_after:
        delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_SECONDS))
    if jitter is None:
        jitter = random.random()
    return delay * (1.0 + 0.2 * jitter)


def apply_outcome(row, outcome, now, jitter=None):
    """The field changes (a dict for ``write``) after one attempt on a pending row."""
    if row.get("state") != PENDING:
        raise ValueError("only a pending row is sent (row %s is %s)" % (row.get("id"), row.get("state")))
    attempts = int(row.get("attempts") or 0) + 1
    verdict = classify(outcome.status)
    changes = {"attempts": attempts, "last_status": outcome.status or 0, "last_attempt_at": now}
    if verdict == ACCEPTED:
        changes.update(state=SENT, sent_at=now, last_error=False, bus_event_id=outcome.event_id or False)
        return changes
    error = outcome.error or ("HTTP %s" % outcome.status if outcome.status else "no answer")
    changes["last_error"] = error[:2000]
    if verdict == PERMANENT or (outcome.status == 409 and attempts >= CONFLICT_ATTEMPTS):
        changes["state"] = FAILED
        return changes
    delay = backoff_seconds(attempts, outcome.retry_after, jitter)
    changes.update(state=PENDING, next_attempt_at=now + _dt.timedelta(seconds=delay))
    return changes


def requeue(row, now):
    """A human's retry of a failed row (after fixing the secret, the mapping, ...)."""
    if row.get("state") != FAILED:
        raise ValueError("only a failed row is requeued (row %s is %s)" % (row.get("id"), row.get("state")))
    return {"state": PENDING, "attempts": 0, "next_attempt_at": now}


def is_due(row, now):
    return row.get("state") == PENDING and (not row.get("next_attempt_at") or row["next_attempt_at"] <= now)


def run_batch(rows, send, now, jitter=None, deadline=None, clock=None):
    """Sends due rows in order and returns ``[(row_id, changes), ...]``.

    * ``rows``: pending rows ordered oldest first (the model selects them).
    * ``send(row) -> Outcome``: one delivery (the model wraps ``send_ipai_event``).
    * Per-aggregate order: once a row of an aggregate is not accepted (or not due),
      later rows of that aggregate wait, so the bus sees an aggregate's events in order.
    * After an attempt without an answer or a 5xx, the batch stops: the bus (or the
      network) is down and the rest would only wait for timeouts; the cron comes back.
    * ``deadline``/``clock``: stop starting new attempts once ``clock() >= deadline``.
    """
    results = []
    blocked = set()
    for row in rows:
        if deadline is not None and clock is not None and clock() >= deadline:
            break
        agg = (row.get("aggregate_type"), row.get("aggregate_id"))
        if agg in blocked:
            continue
        if not is_due(row, now):
            blocked.add(agg)
            continue
        outcome = send(row)
        changes = apply_outcome(row, outcome, now, jitter)
        results.append((row["id"], changes))
        if changes["state"] == PENDING:
            # Still to be retried: later events of this aggregate wait behind it. A row
            # failed for good does not hold its aggregate (the bus's dead letters do not).
            blocked.add(agg)
        if outcome.status is None or outcome.status >= 500:
            break
    return results


def deliver_with(send_ipai_event, url, secret, timeout=10.0):
    """A ``send(row)`` for :func:`run_batch` posting the row's stored body and key."""
    from .ipai_webhook import IpaiTransportError

    def send(row):
        try:
            resp = send_ipai_event(url, secret, row["body"], row["idempotency_key"], timeout=timeout)
        except IpaiTransportError as e:
            return Outcome.transport_error(e)
        return Outcome.from_response(resp)

    return send
