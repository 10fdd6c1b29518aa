"""The sender cron's loop (utils/sender.py) with an in-memory queue and the real HTTP
transport against a misbehaving loopback server: every failure class ends up on its row
with a readable error, the loop never raises, order per record holds on every path."""

import datetime as dt

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import ipai_webhook as wh
from odoo.addons.ipai_enterprise_bridge.utils import outbox, sender

NOW = dt.datetime(2026, 11, 26, 5, 0, 0)


class MemoryStore:
    """The model's store, in memory: the same selection rule (outbox.sendable)."""

    def __init__(self, rows):
        self.rows = {r["id"]: dict(r) for r in rows}
        self.alerts = []
        self.commits = 0
        self.rollbacks = 0
        self.now = NOW
        self.fail_on = None  # "sendable" | "write" | "alert"

    def _maybe_fail(self, what):
        if self.fail_on == what:
            raise RuntimeError("database went away during %s" % what)

    def sendable(self, limit):
        self._maybe_fail("sendable")
        return outbox.sendable(self.rows.values(), self.now, limit)

    def write(self, row_id, changes):
        self._maybe_fail("write")
        self.rows[row_id].update(changes)

    def alert(self, row_id, reason):
        self._maybe_fail("alert")
        self.alerts.append((row_id, reason))

    def commit(self):
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1


def row(id_, agg="42", event_type="expense.submitted"):
    body = '{"event_type":"%s","aggregate_type":"expense","aggregate_id":"%s","payload":{}}' % (event_type, agg)
    return {"id": id_, "state": "pending", "attempts": 0, "next_attempt_at": NOW, "aggregate_type": "expense",
            "aggregate_id": agg, "idempotency_key": "expense:%s:k%d" % (agg, id_), "body": body}


def run(store, url, secret="bus-secret", **kw):
    send = outbox.deliver_with(wh.send_ipai_event, url, secret, timeout=1)
    return sender.run_sender(store, send, store.now, jitter=0, **kw)


FAILURES = [
    # (what the server does, row state after, error contains, admin alerted at once)
    ("reset", "pending", "the connection was reset", False),
    ("close", "pending", "closed the connection without answering", False),
    ("truncated", "pending", "the answer was cut off", False),
    ("long_line", "pending", "over-long line", False),
    ("garbage", "pending", "BadStatusLine", False),
    (("silent", 3), "pending", "timed out", False),
    (("status", 301, {}, {"location": "https://bus/odoo-webhook"}), "pending", "redirect to https://bus/odoo-webhook", True),
    (("status", 302, {}, {"location": "https://bus/odoo-webhook"}), "pending", "not followed", True),
    (("status", 307, {}, {"location": "/elsewhere"}), "pending", "redirect to /elsewhere", True),
    (("status", 308, {}, {"location": "https://bus/odoo-webhook"}), "pending", "not followed", True),
    (("status", 401, {"error": "invalid_signature", "message": "bad"}, {}), "pending", "invalid_signature", True),
    (("status", 403, {"error": "forbidden", "message": "proxy"}, {}), "pending", "HTTP 403 forbidden", True),
    (("status", 404, {"error": "not_found", "message": "no"}, {}), "pending", "HTTP 404", True),
    (("status", 408, {"error": "timeout", "message": "slow"}, {}), "pending", "HTTP 408", False),
    (("status", 409, {"error": "idempotency_conflict", "message": "other body"}, {}), "failed", "idempotency_conflict", True),
    (("status", 400, {"error": "invalid_json", "message": "x"}, {}), "failed", "HTTP 400 invalid_json", True),
    (("status", 413, {"error": "payload_too_large", "message": "x"}, {}), "failed", "HTTP 413", True),
    (("status", 415, {"error": "unsupported_media_type", "message": "x"}, {}), "failed", "HTTP 415", True),
    (("status", 422, {"error": "unknown_event_type", "message": "x"}, {}), "failed", "unknown_event_type", True),
    (("status", 429, {"error": "rate_limited", "message": "x"}, {"retry-after": "120"}), "pending", "HTTP 429", False),
    (("status", 500, {"error": "internal", "message": "x"}, {}), "pending", "HTTP 500", False),
    (("status", 502, {"error": "bad_gateway", "message": "x"}, {}), "pending", "HTTP 502", False),
    (("status", 503, {"error": "database_unavailable", "message": "x"}, {"retry-after": "5"}), "pending", "HTTP 503", False),
    (("status", 504, {"error": "gateway_timeout", "message": "x"}, {}), "pending", "HTTP 504", False),
]


@pytest.mark.parametrize("action, state, error, alerted", FAILURES, ids=[str(f[0])[:40] for f in FAILURES])
def test_each_failure_class_is_recorded_on_its_row_and_the_run_survives(scripted_server, action, state, error, alerted):
    scripted_server.script = [action]
    store = MemoryStore([row(1)])
    summary = run(store, scripted_server.url())
    r = store.rows[1]
    assert summary.error is None and summary.attempted == 1
    assert r["state"] == state and r["attempts"] == 1
    assert error in r["last_error"], r["last_error"]
    if state == "pending":
        assert r["next_attempt_at"] >= NOW + dt.timedelta(seconds=30)
    assert bool(store.alerts) == alerted
    assert store.commits == 1


@pytest.mark.parametrize("url", ["", "bus.example.com/odoo-webhook", "ftp://bus/x", "http://h:99999/x"])
def test_an_unusable_url_is_recorded_retried_and_alerted(url):
    store = MemoryStore([row(1), row(2, "43")])
    summary = run(store, url)
    assert summary.error is None
    r = store.rows[1]
    assert r["state"] == "pending" and r["last_error"].startswith("not sent: ")
    assert store.rows[2]["attempts"] == 0  # the run stopped: every row would fail alike
    assert store.alerts and "ipai.webhook.url" in store.alerts[0][1]


def test_a_missing_secret_is_recorded_not_raised(scripted_server):
    store = MemoryStore([row(1)])
    run(store, scripted_server.url(), secret="")
    assert "secret" in store.rows[1]["last_error"] and store.rows[1]["state"] == "pending"
    assert scripted_server.requests == []


@pytest.mark.parametrize("fail_on", ["sendable", "write"])
def test_a_store_failure_ends_the_run_with_a_summary_not_an_exception(scripted_server, fail_on):
    store = MemoryStore([row(1)])
    store.fail_on = fail_on
    summary = run(store, scripted_server.url())
    assert "database went away during %s" % fail_on in summary.error
    assert store.rollbacks == 1 and store.rows[1]["state"] == "pending"


def test_an_alert_that_fails_does_not_lose_the_outcome(scripted_server):
    scripted_server.script = [("status", 422, {"error": "unknown_event_type", "message": "x"}, {})]
    store = MemoryStore([row(1)])
    store.fail_on = "alert"
    summary = run(store, scripted_server.url())
    assert summary.error is None and store.rows[1]["state"] == "failed" and store.commits == 1


def test_each_row_is_committed_as_soon_as_its_answer_is_known(fake_bus):
    store = MemoryStore([row(1, "a"), row(2, "b"), row(3, "c")])
    summary = run(store, fake_bus.url)
    assert (summary.sent, store.commits) == (3, 3)


def test_a_week_of_a_broken_bus_never_raises_and_backs_off(scripted_server):
    """Odoo deactivates a cron that fails 5 times over 7 days: the sender must not fail
    once, whatever the bus does, and must not hammer it."""
    scripted_server.script = ["reset", "truncated", "garbage", "long_line", "close"] * 3 + ["reset"]
    store = MemoryStore([row(1), row(2, "43")])
    runs = 0
    while store.now < NOW + dt.timedelta(days=7):
        summary = run(store, scripted_server.url())
        assert summary.error is None
        runs += 1
        store.now += dt.timedelta(minutes=1) if runs < 30 else dt.timedelta(hours=1)
    r = store.rows[1]
    assert r["state"] == "pending" and r["attempts"] < runs
    assert r["next_attempt_at"] > r["last_attempt_at"] + dt.timedelta(minutes=59)  # backed off to the hour
    assert any("not delivered after" in reason for _id, reason in store.alerts)


def test_a_failed_row_holds_its_record_until_an_admin_requeues_or_cancels_it(fake_bus):
    store = MemoryStore([row(1, "a"), row(2, "a", "expense.approved"), row(3, "b")])
    # Row 1 is refused for good (the bus answers 422 to it only).
    fake_bus.force_status = 422
    run(store, fake_bus.url, limit=1)
    fake_bus.force_status = None
    assert store.rows[1]["state"] == "failed"
    for _ in range(3):
        run(store, fake_bus.url)
    assert (store.rows[2]["state"], store.rows[3]["state"]) == ("pending", "sent")
    assert store.rows[2]["attempts"] == 0  # never sent before its record's older event
    store.rows[1].update(outbox.requeue(store.rows[1], store.now))
    run(store, fake_bus.url)
    run(store, fake_bus.url)
    assert [store.rows[i]["state"] for i in (1, 2, 3)] == ["sent", "sent", "sent"]
    keys = [h["x-idempotency-key"] for h, _b in fake_bus.requests]
    assert keys.index("expense:a:k1", 1) < keys.index("expense:a:k2")


def test_a_cancelled_row_releases_its_record(fake_bus):
    store = MemoryStore([row(1, "a"), row(2, "a", "expense.approved")])
    store.rows[1]["state"] = "failed"
    run(store, fake_bus.url)
    assert store.rows[2]["attempts"] == 0
    store.rows[1].update(outbox.cancel(store.rows[1], store.now))
    run(store, fake_bus.url)
    assert (store.rows[1]["state"], store.rows[2]["state"]) == ("cancelled", "sent")
