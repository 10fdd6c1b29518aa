"""Stable idempotency keys: the same business change always gets the same key, so a
retry after an outage (or a second send from the cron) is a 200 duplicate on the bus,
never a second event.

Key = ``[namespace:]{aggregate_type}:{aggregate_id}:{event_type}:{write_date}[:{discriminator}]``
where ``write_date`` is the record's write date when the change was queued and the
discriminator separates events that legitimately repeat without a write (an overdue
reminder per escalation level or per day).
"""

import datetime as _dt
import hashlib

MAX_KEY_LENGTH = 255


def stamp(write_date):
    """A compact, sortable, ASCII rendering of a write date."""
    if not write_date:
        return "0"
    if isinstance(write_date, str):
        raw = write_date
    elif isinstance(write_date, _dt.datetime):
        if write_date.tzinfo is not None:
            write_date = write_date.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        raw = write_date.strftime("%Y%m%dT%H%M%S")
        if write_date.microsecond:
            raw += ".%06d" % write_date.microsecond
    elif isinstance(write_date, _dt.date):
        raw = write_date.strftime("%Y%m%d")
    else:
        raw = str(write_date)
    return "".join(c for c in raw if c.isalnum() or c in ".T")


def _clean(part):
    # Printable ASCII without spaces or the separator's ambiguity.
    return "".join(c if (0x20 < ord(c) < 0x7F and c != ":") else "_" for c in str(part))


def make_key(aggregate_type, aggregate_id, event_type, write_date, discriminator=None, namespace=None):
    """The idempotency key of one event; always 1-255 printable ASCII characters."""
    parts = [aggregate_type, aggregate_id, event_type, stamp(write_date)]
    if discriminator not in (None, ""):
        parts.append(discriminator)
    if namespace:
        parts.insert(0, namespace)
    key = ":".join(_clean(p) for p in parts)
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        key = key[: MAX_KEY_LENGTH - len(digest) - 1] + "~" + digest
    return key


def is_valid_key(key):
    """What ingest accepts: 1-255 printable ASCII characters."""
    return isinstance(key, str) and 1 <= len(key) <= MAX_KEY_LENGTH and all(0x20 <= ord(c) <= 0x7E for c in key)
