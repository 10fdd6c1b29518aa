"""The event taxonomy (SPEC §4) and the envelope, mirrored from the bus
(``crates/ipai-core/src/taxonomy.rs``; a test checks that the two agree).

``TAXONOMY`` holds the business domains (each routed to a handler on the bus);
``RECONCILIATION`` the bus's own event, the hourly digest of what Odoo sent (SPEC §11,
``utils/digest.py``), which only the addon's digest job queues."""

import datetime as _dt

# domain -> (aggregate_type, event types)
TAXONOMY = {
    "expense": (
        "expense",
        ("expense.submitted", "expense.approved", "expense.rejected", "expense.paid"),
    ),
    "asset": (
        "asset_booking",
        ("asset.reserved", "asset.checked_out", "asset.checked_in", "asset.overdue"),
    ),
    "finance": (
        "finance_task",
        (
            "finance_task.created",
            "finance_task.in_progress",
            "finance_task.submitted",
            "finance_task.approved",
            "finance_task.filed",
            "finance_task.overdue",
        ),
    ),
}

ALL_EVENT_TYPES = tuple(t for _agg, types in TAXONOMY.values() for t in types)

# domain -> (aggregate_type, event types): SPEC §4's "reconciliation" row.
RECONCILIATION = {"reconciliation": ("digest", ("bus.digest",))}


def aggregate_type_of(event_type):
    """The aggregate type an event type must carry; ValueError for an unknown type."""
    for agg, types in list(TAXONOMY.values()) + list(RECONCILIATION.values()):
        if event_type in types:
            return agg
    raise ValueError("unknown IPAI event type %r" % (event_type,))


def iso_datetime(value):
    """Odoo datetimes are naive UTC: render as RFC 3339 with ``Z``; None/False -> None."""
    if not value:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.replace(microsecond=0).isoformat() + "Z"
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day).isoformat() + "Z"
    raise TypeError("not a datetime: %r" % (value,))


def iso_date(value):
    """A date (or the date part of a datetime) as ``YYYY-MM-DD``; None/False -> None."""
    if not value:
        return None
    if isinstance(value, str):
        return value[:10]
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise TypeError("not a date: %r" % (value,))


def make_event(event_type, aggregate_id, payload, occurred_at=None, source="odoo"):
    """The envelope ingest expects: event_type, aggregate_type, aggregate_id (string),
    payload, occurred_at (RFC 3339), source."""
    if aggregate_id in (None, "", False):
        raise ValueError("aggregate_id is required")
    if not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    event = {
        "event_type": event_type,
        "aggregate_type": aggregate_type_of(event_type),
        "aggregate_id": str(aggregate_id),
        "payload": payload,
    }
    if occurred_at:
        event["occurred_at"] = iso_datetime(occurred_at)
    if source:
        event["source"] = source
    return event
