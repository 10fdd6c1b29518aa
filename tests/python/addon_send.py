"""Drives the Odoo addon's sender against a running bus, for tests/tests/odoo_addon.rs.

usage: addon_send.py URL SECRET SCENARIO [DEAD_URL]
  all     build every event type with the addon's payload builders, send each once
  retry   send one event twice with its stable key (an Odoo retry): 202 then 200 duplicate
  outage  the addon's retry queue: a first batch against DEAD_URL (bus down) leaves the
          rows pending; later batches against URL deliver each exactly once, in order
  report  one expense report's decisions (two lines approved, one refused) queued like the
          addon does and delivered by the addon's sender loop (utils/sender.py): every
          line carries the report's stamp (approved_at / refused_at)
Prints one JSON document on stdout.
"""

import datetime as dt
import json
import sys

from _addon import events, idempotency, ipai_webhook, outbox, payloads, sender

WRITE_DATE = dt.datetime(2026, 11, 26, 5, 0, 0)

EXPENSE = {
    "expense_id": 42, "employee_id": 7, "employee_name": "Juan dela Cruz", "employee_code": "E-0042",
    "employee_email": "juan@example.com", "amount": 1250.5, "currency": "PHP", "description": "Client lunch",
    "date": dt.date(2026, 11, 20), "category": "Meals", "submitted_at": dt.datetime(2026, 11, 24, 1, 15),
    "sheet_id": 310, "status": "submit",
}
BOOKING = {
    "booking_id": 501, "asset_id": 12, "asset_name": "Projector Epson EB-X51", "asset_code": "PRJ-0012",
    "employee_id": 7, "employee_name": "Juan dela Cruz", "employee_email": "juan@example.com",
    "manager_email": "maria@example.com", "start": dt.datetime(2026, 11, 27, 1, 0),
    "end": dt.datetime(2026, 11, 27, 9, 0), "location": "Makati HQ", "status": "reserved",
}
TASK = {
    "task_id": 7001, "name": "BIR 1601-C October", "project": "Month-end close", "bir_form": "1601-C",
    "period": "2026-10", "deadline": dt.datetime(2026, 11, 10, 15, 59), "responsible_emails": ["a@example.com"],
    "reviewer_id": 3, "stage": "In Progress", "status": "01_in_progress",
}
PER_EVENT = {
    "expense.approved": {"approved_by": "Maria Santos", "approved_at": dt.datetime(2026, 11, 24, 3, 30), "status": "approve"},
    "expense.rejected": {"reason": "No receipt", "refused_by": "Maria Santos",
                         "refused_at": dt.datetime(2026, 11, 24, 3, 30), "status": "cancel"},
    "expense.paid": {"paid_at": dt.datetime(2026, 11, 28, 2, 0), "payment_ref": "BNK1/2026/00042", "status": "done"},
    "asset.checked_out": {"status": "checked_out"},
    "asset.checked_in": {"status": "checked_in"},
    "asset.overdue": {"status": "checked_out", "escalation_level": 2, "days_overdue": 4},
    "finance_task.filed": {"filed_at": dt.datetime(2026, 11, 9, 8, 0), "reference_no": "eFPS-123", "status": "1_done"},
    "finance_task.overdue": {"days_overdue": 4},
}
FACTS = {"expense": EXPENSE, "asset_booking": BOOKING, "finance_task": TASK}
IDS = {"expense": "expense_id", "asset_booking": "booking_id", "finance_task": "task_id"}


def build(event_type, aggregate_id=None, write_date=WRITE_DATE, discriminator=None):
    agg = events.aggregate_type_of(event_type)
    facts = dict(FACTS[agg], **PER_EVENT.get(event_type, {}))
    if aggregate_id is not None:
        facts[IDS[agg]] = aggregate_id
    payload = payloads.build_payload(event_type, facts)
    event = events.make_event(event_type, facts[IDS[agg]], payload, occurred_at=write_date)
    key = idempotency.make_key(agg, event["aggregate_id"], event_type, write_date, discriminator)
    return event, key


def answer(resp):
    return {"status": resp.status, "body": resp.body}


def scenario_all(url, secret):
    out = []
    for t in events.ALL_EVENT_TYPES:
        event, key = build(t)
        resp = ipai_webhook.send_ipai_event(url, secret, event, key)
        out.append({"event_type": t, "key": key, "event": event, **answer(resp)})
    return out


def scenario_retry(url, secret):
    event, key = build("expense.submitted")
    first = ipai_webhook.send_ipai_event(url, secret, event, key)
    again = ipai_webhook.send_ipai_event(url, secret, event, key)  # a retry after a lost answer
    return {"key": key, "event": event, "first": answer(first), "again": answer(again)}


def scenario_outage(url, secret, dead_url):
    now = dt.datetime(2026, 11, 26, 5, 0, 0)
    rows = []
    for i, (t, agg_id) in enumerate([("expense.submitted", 77), ("expense.approved", 77), ("asset.reserved", 88)], 1):
        event, key = build(t, aggregate_id=agg_id)
        rows.append({"id": i, "state": "pending", "attempts": 0, "next_attempt_at": now,
                     "aggregate_type": event["aggregate_type"], "aggregate_id": event["aggregate_id"],
                     "idempotency_key": key, "body": ipai_webhook.canonical_body(event).decode("utf-8"),
                     "event_type": t})
    log = []

    def batch(target, at):
        send = outbox.deliver_with(ipai_webhook.send_ipai_event, target, secret, timeout=5)
        pending = [r for r in rows if r["state"] == "pending"]
        for row_id, changes in outbox.run_batch(pending, send, at, jitter=0):
            row = rows[row_id - 1]
            row.update(changes)
            log.append({"id": row_id, "state": row["state"], "status": changes["last_status"],
                        "attempts": row["attempts"]})

    batch(dead_url, now)  # the bus is unreachable
    after_outage = [dict(state=r["state"], attempts=r["attempts"], error=r.get("last_error")) for r in rows]
    at = now
    for _ in range(5):
        at += dt.timedelta(hours=2)
        batch(url, at)
        if all(r["state"] == "sent" for r in rows):
            break
    return {
        "after_outage": after_outage,
        "final": [{"key": r["idempotency_key"], "state": r["state"], "attempts": r["attempts"],
                   "event_type": r["event_type"], "bus_event_id": r.get("bus_event_id")} for r in rows],
        "log": log,
    }


class MemoryStore:
    """The queue model's storage for utils.sender.run_sender, in memory."""

    def __init__(self, rows, now):
        self.rows = {r["id"]: r for r in rows}
        self.now = now

    def sendable(self, limit):
        return outbox.sendable(self.rows.values(), self.now, limit)

    def write(self, row_id, changes):
        self.rows[row_id].update(changes)

    def alert(self, row_id, reason):
        self.rows[row_id]["alert"] = reason

    def commit(self):
        pass

    def rollback(self):
        pass


def scenario_report(url, secret):
    now = dt.datetime(2026, 11, 26, 5, 0, 0)
    approved_at = dt.datetime(2026, 11, 24, 3, 30, 0, 250000)  # the report's stamp, shared
    refused_at = dt.datetime(2026, 11, 25, 8, 15, 0)
    decisions = [("expense.approved", 51, 900, {"approved_at": approved_at}),
                 ("expense.approved", 52, 900, {"approved_at": approved_at}),
                 ("expense.rejected", 53, 901, {"refused_at": refused_at, "reason": "No receipt"})]
    rows = []
    for i, (t, expense_id, sheet_id, stamp) in enumerate(decisions, 1):
        facts = dict(EXPENSE, **PER_EVENT[t])
        facts.update(stamp, expense_id=expense_id, sheet_id=sheet_id)
        event = events.make_event(t, expense_id, payloads.build_payload(t, facts), occurred_at=now)
        key = idempotency.make_key("expense", expense_id, t, WRITE_DATE)
        rows.append({"id": i, "state": "pending", "attempts": 0, "next_attempt_at": now,
                     "aggregate_type": "expense", "aggregate_id": str(expense_id), "idempotency_key": key,
                     "body": ipai_webhook.canonical_body(event).decode("utf-8"), "event_type": t})
    store = MemoryStore(rows, now)
    send = outbox.deliver_with(ipai_webhook.send_ipai_event, url, secret, timeout=5)
    summary = sender.run_sender(store, send, now, budget_seconds=30, limit=50, jitter=0)
    return {"summary": {"attempted": summary.attempted, "sent": summary.sent, "error": summary.error},
            "rows": [{"key": r["idempotency_key"], "state": r["state"], "event_type": r["event_type"],
                      "aggregate_id": r["aggregate_id"]} for r in rows]}


def main():
    url, secret, scenario = sys.argv[1:4]
    if scenario == "all":
        result = scenario_all(url, secret)
    elif scenario == "retry":
        result = scenario_retry(url, secret)
    elif scenario == "outage":
        result = scenario_outage(url, secret, sys.argv[4])
    elif scenario == "report":
        result = scenario_report(url, secret)
    else:
        raise SystemExit("unknown scenario %r" % scenario)
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main()
