"""The retry queue's state machine (utils/outbox.py), without Odoo."""

import datetime as dt

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import outbox
from odoo.addons.ipai_enterprise_bridge.utils import ipai_webhook as wh
from odoo.addons.ipai_enterprise_bridge.utils.outbox import Outcome

NOW = dt.datetime(2026, 11, 26, 5, 0, 0)


def row(id_, agg="42", state="pending", attempts=0, due=NOW, body=None):
    return {
        "id": id_,
        "state": state,
        "attempts": attempts,
        "next_attempt_at": due,
        "aggregate_type": "expense",
        "aggregate_id": agg,
        "idempotency_key": "expense:%s:k%d" % (agg, id_),
        "body": body or '{"event_type":"expense.submitted","aggregate_type":"expense","aggregate_id":"%s","payload":{}}' % agg,
    }


@pytest.mark.parametrize(
    "status, verdict",
    [
        (202, outbox.ACCEPTED), (200, outbox.ACCEPTED), (204, outbox.ACCEPTED),
        (None, outbox.RETRY), (500, outbox.RETRY), (502, outbox.RETRY), (503, outbox.RETRY), (504, outbox.RETRY),
        (429, outbox.RETRY), (408, outbox.RETRY), (425, outbox.RETRY),
        (401, outbox.ATTENTION), (403, outbox.ATTENTION), (404, outbox.ATTENTION), (405, outbox.ATTENTION),
        (301, outbox.ATTENTION), (302, outbox.ATTENTION), (307, outbox.ATTENTION), (308, outbox.ATTENTION),
        (409, outbox.PERMANENT), (400, outbox.PERMANENT), (413, outbox.PERMANENT), (415, outbox.PERMANENT),
        (422, outbox.PERMANENT), (410, outbox.PERMANENT), (451, outbox.PERMANENT),
    ],
)
def test_classification_of_answers(status, verdict):
    assert outbox.classify(status) == verdict


def test_no_answer_is_transient_but_an_unusable_setting_needs_attention():
    assert outbox.classify(None, "transport") == outbox.RETRY
    assert outbox.classify(None, "internal") == outbox.RETRY
    assert outbox.classify(None, "config") == outbox.ATTENTION


def test_backoff_doubles_from_30_seconds_up_to_an_hour_and_honours_retry_after():
    delays = [outbox.backoff_seconds(n, jitter=0) for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert outbox.backoff_seconds(1, retry_after=300, jitter=0) == 300
    assert outbox.backoff_seconds(1, retry_after=10 ** 9, jitter=0) == outbox.MAX_RETRY_AFTER_SECONDS
    assert outbox.backoff_seconds(1, jitter=0.999) < 30 * 1.2
    assert outbox.backoff_seconds(100, jitter=0) == 3600


def test_202_queued_and_200_duplicate_mark_the_row_sent():
    for status, dup in ((202, False), (200, True)):
        ch = outbox.apply_outcome(row(1), Outcome(status, event_id="uuid-1", duplicate=dup), NOW)
        assert ch["state"] == outbox.SENT and ch["attempts"] == 1 and ch["sent_at"] == NOW
        assert ch["bus_event_id"] == "uuid-1" and ch["last_error"] is False and ch["last_status"] == status


def test_an_outage_keeps_the_row_pending_with_a_later_attempt_and_the_error():
    ch = outbox.apply_outcome(row(1, attempts=2), Outcome.transport_error(wh.IpaiTransportError("refused")), NOW, jitter=0)
    assert ch["state"] == outbox.PENDING and ch["attempts"] == 3
    assert ch["next_attempt_at"] == NOW + dt.timedelta(seconds=120)
    assert "refused" in ch["last_error"] and ch["last_status"] == 0
    ch = outbox.apply_outcome(row(1), Outcome(503, error="HTTP 503 database_unavailable", retry_after=600), NOW, jitter=0)
    assert ch["state"] == outbox.PENDING and ch["next_attempt_at"] == NOW + dt.timedelta(seconds=600)


def test_a_refused_event_fails_the_row_for_a_human_with_the_reason():
    for status, error in ((422, "HTTP 422 unknown_event_type no"), (409, "HTTP 409 idempotency_conflict other body"),
                          (400, "HTTP 400 invalid_json x"), (413, "HTTP 413 payload_too_large x")):
        ch = outbox.apply_outcome(row(1), Outcome(status, error=error), NOW)
        assert ch["state"] == outbox.FAILED and ch["last_error"] == error and ch["last_status"] == status
        assert "next_attempt_at" not in ch
        assert outbox.alert_reason(Outcome(status, error=error), ch).startswith("failed for good: " + error)


def test_a_409_conflict_fails_at_once_not_after_retries():
    ch = outbox.apply_outcome(row(1, attempts=0), Outcome(409, error="HTTP 409 idempotency_conflict"), NOW)
    assert (ch["state"], ch["attempts"]) == (outbox.FAILED, 1)


@pytest.mark.parametrize("status", [401, 403, 404, 405, 301, 302, 307, 308])
def test_a_settings_answer_is_retried_with_backoff_and_alerts_an_admin(status):
    """A secret rotation or clock skew (401), a proxy (403/404), a moved URL (3xx) heal
    once the setting is fixed: the row stays pending, and an admin is told at once."""
    out = Outcome(status, error="HTTP %d x" % status)
    ch = outbox.apply_outcome(row(1, attempts=3), out, NOW, jitter=0)
    assert ch["state"] == outbox.PENDING and ch["attempts"] == 4
    assert ch["next_attempt_at"] == NOW + dt.timedelta(seconds=240)
    assert "ipai.webhook" in outbox.alert_reason(out, ch)


def test_transient_failures_alert_only_after_many_attempts():
    out = Outcome(503, error="HTTP 503 database_unavailable")
    early = outbox.apply_outcome(row(1, attempts=outbox.ALERT_AFTER_ATTEMPTS - 2), out, NOW)
    assert outbox.alert_reason(out, early) is None
    late = outbox.apply_outcome(row(1, attempts=outbox.ALERT_AFTER_ATTEMPTS - 1), out, NOW)
    assert "not delivered after %d attempts" % outbox.ALERT_AFTER_ATTEMPTS in outbox.alert_reason(out, late)
    sent = outbox.apply_outcome(row(1, attempts=50), Outcome(202), NOW)
    assert outbox.alert_reason(Outcome(202), sent) is None


def test_429_is_retried_forever_without_failing():
    r = row(1, attempts=50)
    assert outbox.apply_outcome(r, Outcome(429), NOW)["state"] == outbox.PENDING


def test_only_pending_rows_are_sent_and_only_failed_rows_requeued():
    for state in (outbox.SENT, outbox.FAILED):
        with pytest.raises(ValueError):
            outbox.apply_outcome(row(1, state=state), Outcome(202), NOW)
    assert outbox.requeue(row(1, state=outbox.FAILED, attempts=7), NOW) == {
        "state": outbox.PENDING, "attempts": 0, "next_attempt_at": NOW}
    for state in (outbox.PENDING, outbox.SENT, outbox.CANCELLED):
        with pytest.raises(ValueError):
            outbox.requeue(row(1, state=state), NOW)
    for state in (outbox.PENDING, outbox.FAILED):
        assert outbox.cancel(row(1, state=state), NOW)["state"] == outbox.CANCELLED
    for state in (outbox.SENT, outbox.CANCELLED):
        with pytest.raises(ValueError):
            outbox.cancel(row(1, state=state), NOW)


def test_errors_are_truncated():
    ch = outbox.apply_outcome(row(1), Outcome(422, error="x" * 5000), NOW)
    assert len(ch["last_error"]) == 2000


class Script:
    """A fake transport answering from a script, recording the rows it was given."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def __call__(self, r):
        self.sent.append(r["id"])
        return self.answers.pop(0)


def test_a_batch_sends_due_rows_in_order():
    send = Script(Outcome(202), Outcome(202), Outcome(200, duplicate=True))
    res = outbox.run_batch([row(1, "a"), row(2, "b"), row(3, "a")], send, NOW)
    assert send.sent == [1, 2, 3]
    assert [(i, c["state"]) for i, c in res] == [(1, "sent"), (2, "sent"), (3, "sent")]


def test_a_retried_row_holds_back_later_rows_of_its_aggregate_only():
    send = Script(Outcome(429), Outcome(202))
    res = outbox.run_batch([row(1, "a"), row(2, "a"), row(3, "b")], send, NOW)
    assert send.sent == [1, 3]
    assert dict((i, c["state"]) for i, c in res) == {1: "pending", 3: "sent"}


def test_a_row_not_yet_due_holds_back_its_aggregate():
    send = Script(Outcome(202))
    later = NOW + dt.timedelta(minutes=5)
    outbox.run_batch([row(1, "a", due=later), row(2, "a"), row(3, "b")], send, NOW)
    assert send.sent == [3]


def test_a_row_failing_in_the_batch_holds_back_its_aggregate():
    send = Script(Outcome(422, error="HTTP 422 unknown_event_type"), Outcome(202))
    res = outbox.run_batch([row(1, "a"), row(2, "a"), row(3, "b")], send, NOW)
    assert send.sent == [1, 3]
    assert [(i, c["state"]) for i, c in res] == [(1, "failed"), (3, "sent")]


def test_only_the_oldest_unsent_row_of_a_record_is_sendable_and_a_failed_one_holds_the_rest():
    later = NOW + dt.timedelta(minutes=5)
    unsent = [row(5, "a"), row(1, "a", state="failed"), row(2, "b", due=later), row(3, "b"), row(4, "c"),
              row(6, "c"), row(7, "d")]
    assert [r["id"] for r in outbox.sendable(unsent, NOW)] == [4, 7]
    assert [r["id"] for r in outbox.sendable(unsent, NOW, limit=1)] == [4]
    # Once the admin cancels (or requeues) the failed row, the record moves on.
    unsent = [r for r in unsent if r["id"] != 1]
    assert [r["id"] for r in outbox.sendable(unsent, NOW)] == [4, 5, 7]


def test_a_send_that_raises_is_recorded_on_its_row_and_the_batch_goes_on():
    def send(r):
        if r["id"] == 1:
            raise KeyError("body")
        if r["id"] == 2:
            return "not an outcome"
        return Outcome(202)

    res = dict(outbox.run_batch([row(1, "a"), row(2, "b"), row(3, "c")], send, NOW, jitter=0))
    assert res[1]["state"] == outbox.PENDING and res[1]["last_error"] == "sender error: KeyError: 'body'"
    assert res[1]["next_attempt_at"] == NOW + dt.timedelta(seconds=30)
    assert "not an Outcome" in res[2]["last_error"] and res[3]["state"] == outbox.SENT


def test_a_settings_answer_or_an_unusable_url_stops_the_batch():
    for first in (Outcome(401, error="HTTP 401 invalid_signature"), Outcome(301, error="HTTP 301 redirect"),
                  Outcome.config_error(ValueError("URL has no scheme"))):
        send = Script(first, Outcome(202))
        res = outbox.run_batch([row(1, "a"), row(2, "b")], send, NOW)
        assert send.sent == [1] and res[0][1]["state"] == outbox.PENDING


def test_no_answer_or_a_5xx_stops_the_batch():
    for first in (Outcome(None, error="timed out"), Outcome(503)):
        send = Script(first, Outcome(202))
        res = outbox.run_batch([row(1, "a"), row(2, "b")], send, NOW)
        assert send.sent == [1] and len(res) == 1


def test_a_batch_stops_starting_attempts_at_its_deadline():
    ticks = iter([0.0, 0.5, 2.0, 3.0])
    send = Script(Outcome(202), Outcome(202), Outcome(202))
    res = outbox.run_batch([row(1, "a"), row(2, "b"), row(3, "c")], send, NOW, deadline=1.0, clock=lambda: next(ticks))
    assert send.sent == [1, 2] and len(res) == 2


def test_an_outage_loses_nothing_and_recovery_sends_each_event_once(fake_bus):
    """The whole loop against a loopback bus: down (503), then a secret rotation the
    addon has not caught up with (401: retried, no requeue needed), then up; every event
    stored exactly once, with the same key and bytes."""
    rows = {r["id"]: r for r in (row(1, "a"), row(2, "a"), row(3, "b"))}

    def step(secret, now):
        send = outbox.deliver_with(wh.send_ipai_event, fake_bus.url, secret, timeout=5)
        for id_, changes in outbox.run_batch(outbox.sendable(rows.values(), now), send, now, jitter=0):
            rows[id_].update(changes)

    fake_bus.force_status = 503
    step("bus-secret", NOW)
    assert [r["state"] for r in rows.values()] == ["pending", "pending", "pending"]
    assert rows[1]["attempts"] == 1 and rows[3]["attempts"] == 0  # the batch stopped at the outage
    assert not fake_bus.stored

    fake_bus.force_status = None
    later = NOW + dt.timedelta(hours=2)
    step("not-the-secret", later)  # 401: still pending, retried later; the batch stopped
    assert [r["state"] for r in rows.values()] == ["pending", "pending", "pending"]
    assert "invalid_signature" in rows[1]["last_error"] and rows[1]["attempts"] == 2

    for _ in range(3):  # the admin fixed the secret; the next runs deliver, in order
        step("bus-secret", later + dt.timedelta(hours=4))
    assert [r["state"] for r in rows.values()] == ["sent", "sent", "sent"]
    assert sorted(fake_bus.stored) == sorted(r["idempotency_key"] for r in rows.values())
    order = [h["x-idempotency-key"] for h, _b in fake_bus.requests if h["x-idempotency-key"] in fake_bus.stored]
    assert order.index(rows[1]["idempotency_key"]) < order.index(rows[2]["idempotency_key"])

    # A resend of an accepted row (e.g. a restart after the send, before the commit) dedupes.
    resp = wh.send_ipai_event(fake_bus.url, "bus-secret", rows[1]["body"], rows[1]["idempotency_key"])
    assert resp.duplicate and len(fake_bus.stored) == 3
