"""The Odoo-side retry queue (``ipai.event.queue``) as a pure state machine.

A business change and its event row commit in one transaction; a worker (the sender
cron, woken right after the commit) sends the row with the same body bytes and
idempotency key every time, until the bus accepts it. States::

    pending --2xx (202 queued | 200 duplicate)-----------------------> sent
    pending --no answer | 5xx | 408 | 425 | 429 | sender error-------> pending (attempts+1,
                                                                       next_attempt_at later)
    pending --401 | 403 | 404 | 405 | 3xx | unusable URL/secret------> pending, later, and an
                                                                       admin alert: heals when
                                                                       the setting is fixed
    pending --409 (same key, other body) | other 4xx (400, 413, 422)-> failed (the reason kept
                                                                       for a human)
    failed  --requeue (a human, after fixing the cause)--------------> pending (attempts 0)
    sent | failed | pending --resend (the bus's healing: it never
                               stored this key, SPEC §11)----------> pending (attempts 0, due now)
    pending | failed --cancel (a human: the event will never be sent)> cancelled

Order: the bus sees one record's events in the order they were queued. Only the oldest
unsent (pending or failed) row of a record may be sent; a failed row therefore holds its
record's later rows until an admin requeues or cancels it.

Nothing here imports Odoo: rows are plain dicts with the model's field names
(id, state, attempts, next_attempt_at, aggregate_type, aggregate_id, idempotency_key, body).
"""

import datetime as _dt
import random

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (PENDING, SENT, FAILED, CANCELLED)
# States whose row still has to reach the bus (and so holds its record's later rows).
UNSENT = (PENDING, FAILED)

ACCEPTED = "accepted"
RETRY = "retry"  # transient: the bus or the network heals by itself
ATTENTION = "attention"  # retried, but a setting is probably wrong: alert an admin
PERMANENT = "permanent"  # this event will never be accepted as it is

BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 3600
MAX_RETRY_AFTER_SECONDS = 6 * 3600
# A row still not delivered after this many attempts (about 4 h of backoff) is reported
# to an admin even when each failure looked transient.
ALERT_AFTER_ATTEMPTS = 10
MAX_ERROR_LENGTH = 2000
# 4xx that heal by themselves.
TRANSIENT_4XX = frozenset({408, 425, 429})
# 4xx that say "wrong address or credentials" rather than "wrong event": a secret rotation,
# a clock skew, a proxy in front of the bus. Retried with backoff, and an admin is told.
SETTINGS_4XX = frozenset({401, 403, 404, 405})


class Outcome:
    """The result of one delivery attempt: an HTTP status (None = no answer).

    ``kind`` says why there was no answer: ``transport`` (network, timeout, truncated
    answer), ``config`` (unusable URL or secret: nothing was sent) or ``internal`` (an
    unexpected error in the sender itself).
    """

    __slots__ = ("status", "error", "event_id", "duplicate", "retry_after", "kind")

    def __init__(self, status=None, error=None, event_id=None, duplicate=False, retry_after=None, kind=None):
        self.status = status
        self.error = error
        self.event_id = event_id
        self.duplicate = duplicate
        self.retry_after = retry_after
        self.kind = kind or ("http" if status is not None else "transport")

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
        return cls(status=None, error=describe_exception(error), kind="transport")

    @classmethod
    def config_error(cls, error):
        return cls(status=None, error="not sent: %s" % describe_exception(error), kind="config")

    @classmethod
    def internal_error(cls, error):
        return cls(status=None, error="sender error: %s" % describe_exception(error), kind="internal")

    def __repr__(self):
        return "Outcome(status=%r, kind=%r, error=%r)" % (self.status, self.kind, self.error)


def describe_exception(error):
    """A readable one-liner for any exception (never empty)."""
    text = str(error).strip()
    name = error.__class__.__name__
    if not text:
        return name
    if name in ("IpaiTransportError", "IpaiConfigError", "ValueError"):
        return text
    return "%s: %s" % (name, text)


def classify(status, kind=None):
    """accepted | retry | attention | permanent for an attempt's HTTP status (None: no
    answer, then ``kind`` decides)."""
    if status is None:
        return ATTENTION if kind == "config" else RETRY
    if 200 <= status < 300:
        return ACCEPTED
    if 300 <= status < 400:
        return ATTENTION  # a redirect is never followed for a POST: the URL must change
    if status in TRANSIENT_4XX:
        return RETRY
    if status in SETTINGS_4XX:
        return ATTENTION
    if 400 <= status < 500:
        return PERMANENT  # 409 conflict, 400, 413, 415, 422, ...: the event itself is refused
    # 5xx (503 database unavailable, 502/504 from a proxy), 1xx: try again later.
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
    verdict = classify(outcome.status, outcome.kind)
    changes = {"attempts": attempts, "last_status": outcome.status or 0, "last_attempt_at": now}
    if verdict == ACCEPTED:
        changes.update(state=SENT, sent_at=now, last_error=False, bus_event_id=outcome.event_id or False)
        return changes
    error = outcome.error or ("HTTP %s" % outcome.status if outcome.status else "no answer")
    changes["last_error"] = error[:MAX_ERROR_LENGTH]
    if verdict == PERMANENT:
        changes["state"] = FAILED
        return changes
    delay = backoff_seconds(attempts, outcome.retry_after, jitter)
    changes.update(state=PENDING, next_attempt_at=now + _dt.timedelta(seconds=delay))
    return changes


def alert_reason(outcome, changes):
    """Why an admin must look at this row now, or None.

    * failed for good: the row holds its record's later events until requeued or cancelled;
    * a settings-class answer (401/403/404/405, a redirect, an unusable URL or secret);
    * still not delivered at its ``ALERT_AFTER_ATTEMPTS``-th attempt (said once).
    """
    if changes.get("state") == SENT:
        return None
    if changes.get("state") == FAILED:
        return "failed for good: %s" % changes.get("last_error")
    if classify(outcome.status, outcome.kind) == ATTENTION:
        return "check ipai.webhook.url / ipai.webhook.secret: %s" % changes.get("last_error")
    if int(changes.get("attempts") or 0) == ALERT_AFTER_ATTEMPTS:  # once per row and streak
        return "not delivered after %d attempts: %s" % (changes["attempts"], changes.get("last_error"))
    return None


def requeue(row, now):
    """A human's retry of a failed row (after fixing the secret, the mapping, ...)."""
    if row.get("state") != FAILED:
        raise ValueError("only a failed row is requeued (row %s is %s)" % (row.get("id"), row.get("state")))
    return {"state": PENDING, "attempts": 0, "next_attempt_at": now}


# States a row may be resent from at the bus's request (a cancelled row stays cancelled:
# an administrator decided it is never sent).
RESENDABLE = (SENT, FAILED, PENDING)


def resend(row, now):
    """The bus's request to send a row again under its key (reconciliation found the key
    missing on the bus): back to pending, due now, attempts from 0, the same body and key."""
    if row.get("state") not in RESENDABLE:
        raise ValueError("a %s row is not resent (row %s)" % (row.get("state"), row.get("id")))
    return {"state": PENDING, "attempts": 0, "next_attempt_at": now}


def cancel(row, now):
    """A human's decision that an unsent row will never be sent (it stops holding its
    record's later rows)."""
    if row.get("state") not in UNSENT:
        raise ValueError("only an unsent row is cancelled (row %s is %s)" % (row.get("id"), row.get("state")))
    return {"state": CANCELLED, "next_attempt_at": False, "last_attempt_at": now}


def is_due(row, now):
    return row.get("state") == PENDING and (not row.get("next_attempt_at") or row["next_attempt_at"] <= now)


def _aggregate(row):
    return (row.get("aggregate_type"), row.get("aggregate_id"))


def sendable(unsent_rows, now, limit=None):
    """The rows that may be sent now, oldest first: of each record's unsent rows (pending
    or failed, ``unsent_rows`` in queue order) only the oldest, and only if it is pending
    and due. A failed or not-yet-due row holds its record's later rows."""
    seen = set()
    heads = []
    for row in sorted(unsent_rows, key=lambda r: r["id"]):
        if row.get("state") not in UNSENT:
            continue  # sent or cancelled rows hold nothing
        agg = _aggregate(row)
        if agg in seen:
            continue
        seen.add(agg)
        if is_due(row, now):
            heads.append(row)
    return heads[:limit] if limit is not None else heads


# The model's selection of :func:`sendable`'s candidates in SQL (parameters: now, limit):
# the oldest unsent row of each record, kept when it is pending and due. A test runs it
# on PostgreSQL against the same rows as :func:`sendable`.
OLDEST_UNSENT_SQL = """
    SELECT id FROM (
        SELECT DISTINCT ON (aggregate_type, aggregate_id) id, state, next_attempt_at
          FROM ipai_event_queue
         WHERE state IN ('pending', 'failed')
         ORDER BY aggregate_type, aggregate_id, id
    ) heads
     WHERE state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
     ORDER BY id
     LIMIT %s
"""


def run_batch(rows, send, now, jitter=None, deadline=None, clock=None, on_result=None):
    """Sends due rows in order and returns ``[(row_id, changes), ...]``. Never raises
    because of one row: whatever ``send`` raises becomes that row's recorded error.

    * ``rows``: pending rows ordered oldest first (normally :func:`sendable`'s answer).
    * ``send(row) -> Outcome``: one delivery (see :func:`deliver_with`).
    * Per-record order: once a row of a record is not accepted (or not due), later rows
      of that record wait, so the bus sees a record's events in order.
    * After an attempt without an answer, a 5xx or a settings-class answer (401, 403,
      a redirect, ...), the batch stops: the bus, the network or the configuration is
      wrong and the other rows would fare the same; the cron comes back.
    * ``deadline``/``clock``: stop starting new attempts once ``clock() >= deadline``.
    * ``on_result(row, outcome, changes)``: called after each attempt (the model writes
      and commits the row there, so an interruption loses at most one answer).
    """
    results = []
    blocked = set()
    for row in rows:
        if deadline is not None and clock is not None and clock() >= deadline:
            break
        agg = _aggregate(row)
        if agg in blocked:
            continue
        if not is_due(row, now):
            blocked.add(agg)
            continue
        outcome = _attempt(send, row)
        changes = apply_outcome(row, outcome, now, jitter)
        results.append((row["id"], changes))
        if on_result is not None:
            on_result(row, outcome, changes)
        if changes["state"] != SENT:
            blocked.add(agg)
        if _stops_batch(outcome):
            break
    return results


def _stops_batch(outcome):
    """No answer, a 5xx or a settings problem: every other row would fare the same."""
    if outcome.status is None:
        return outcome.kind in ("transport", "config")
    return outcome.status >= 500 or classify(outcome.status) == ATTENTION


def _attempt(send, row):
    try:
        outcome = send(row)
    except Exception as e:  # noqa: BLE001 (one row's failure must not stop the sender)
        return Outcome.internal_error(e)
    if not isinstance(outcome, Outcome):
        return Outcome.internal_error(TypeError("send returned %r, not an Outcome" % (outcome,)))
    return outcome


def deliver_with(send_ipai_event, url, secret, timeout=10.0, **transport_options):
    """A ``send(row)`` for :func:`run_batch` posting the row's stored body and key.
    Every exception becomes an :class:`Outcome`: transport failures (no or incomplete
    answer), configuration errors (nothing sent) and anything unexpected."""
    from .ipai_webhook import IpaiConfigError, IpaiTransportError

    def send(row):
        try:
            resp = send_ipai_event(url, secret, row["body"], row["idempotency_key"], timeout=timeout,
                                   **transport_options)
        except IpaiTransportError as e:
            return Outcome.transport_error(e)
        except IpaiConfigError as e:
            return Outcome.config_error(e)
        except Exception as e:  # noqa: BLE001
            return Outcome.internal_error(e)
        return Outcome.from_response(resp)

    return send
