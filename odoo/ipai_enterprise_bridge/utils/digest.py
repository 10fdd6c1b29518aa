"""Reconciliation, the addon's side (SPEC §11): the hourly ``bus.digest`` of what Odoo
believes it delivered, as pure code (no Odoo; the model ``ipai.event.queue`` is its storage).

A window is an aligned hour of the queue rows' ``create_date`` (naive UTC in Odoo), or, on
demand, the current hour up to now. It is digested once every row created in it is final
(:data:`FINAL_STATES`: sent, failed for good, cancelled; only ``pending`` rows are still on
their way), and again when that changes (a failed row requeued and sent adds a key). The
digest lists the idempotency keys of the window's *sent* rows, ``bus.digest`` rows excluded::

    {"window_start": RFC 3339, "window_end": RFC 3339, "count": N, "keys": [sorted keys],
     "keys_sha256": hex SHA-256 of the keys sorted by their UTF-8 bytes, joined by "\\n"}

One digest holds at most :data:`MAX_KEYS` keys, and its body must pass ingest's 256 KiB
limit (:data:`MAX_KEYS_BYTES` for the keys): a busier window is split in time, in halves
of the aligned hour, recursively, into sub-windows that partition it (empty ones included,
so the digests still cover the whole window). Splitting the aligned hour (and clipping the
last sub-window at the window's end) gives the current hour's digest the boundaries its
later hourly digest has. Rows of a single instant (one transaction: Odoo stamps every row
of a transaction with the transaction's time) cannot be told apart in time: when they
overflow one digest they are spread, in key order, over equal slices of the smallest
window holding only that instant, so every key is still digested exactly once.

The bus keeps one record per (database, window_start) and replaces it when a window is
digested again. The idempotency key of a digest names its content
(``[namespace:]digest/<db>/<window_start>/<window_end>/<keys_sha256>``): the same content
is the same key (a harmless duplicate at the bus), new content a new key.
"""

import datetime as _dt
import hashlib
import json

from . import outbox

DIGEST_EVENT_TYPE = "bus.digest"
DIGEST_AGGREGATE_TYPE = "digest"
MAX_KEYS = 10000
# Ingest refuses a body over 256 KiB (SPEC §3). The keys' share of a digest's body (each
# key JSON-encoded plus its comma) stays under this; the rest of the envelope (types, the
# aggregate id, two times, the count, the SHA-256) is well under 2 KiB.
MAX_KEYS_BYTES = 240000
# Healing: the most keys the bus may ask for in one call (the most one digest lists).
MAX_RESEND_KEYS = MAX_KEYS
FINAL_STATES = (outbox.SENT, outbox.FAILED, outbox.CANCELLED)
HOUR = _dt.timedelta(hours=1)
MICROSECOND = _dt.timedelta(microseconds=1)
DEFAULT_HORIZON_DAYS = 7


# ------------------------------------------------------------------------------- time

def utc_naive(value):
    """A datetime as naive UTC (Odoo's convention); an aware one is converted."""
    if not isinstance(value, _dt.datetime):
        raise TypeError("not a datetime: %r" % (value,))
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return value


def floor_hour(value):
    """The start of the aligned UTC hour holding ``value``."""
    return utc_naive(value).replace(minute=0, second=0, microsecond=0)


def rfc3339(value):
    """``2026-12-07T10:00:00Z``; microseconds only when there are some
    (``2026-12-07T10:07:01.500000Z``)."""
    value = utc_naive(value)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += ".%06d" % value.microsecond
    return text + "Z"


def span(now, horizon_days=DEFAULT_HORIZON_DAYS, include_open_hour=False):
    """``(since, until)``: the creation times a digest run looks at. ``since`` is the aligned
    hour ``horizon_days`` before the current one; ``until`` is the current hour's start
    (closed hours only) or, with ``include_open_hour``, now to the second."""
    now = utc_naive(now)
    current = floor_hour(now)
    since = current - _dt.timedelta(days=max(1, int(horizon_days)))
    until = now.replace(microsecond=0) if include_open_hour else current
    return since, until


def window_end(hour_start, until):
    """The end of the window of the hour starting at ``hour_start`` in a run ending at
    ``until``: the hour's end, or ``until`` for the current hour; None when nothing of the
    hour lies before ``until``."""
    end = min(hour_start + HOUR, until)
    return end if end > hour_start else None


# ------------------------------------------------------------------------------- keys

def sort_keys(keys):
    """The keys sorted by their UTF-8 bytes (what PostgreSQL's ``COLLATE "C"`` and the
    bus's check do)."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def keys_sha256(keys):
    """Lowercase hex SHA-256 of the keys sorted bytewise, joined by ``"\\n"`` (of the empty
    string for no keys)."""
    return hashlib.sha256(b"\n".join(k.encode("utf-8") for k in sort_keys(keys))).hexdigest()


def _key_bytes(key):
    return len(json.dumps(key, ensure_ascii=False).encode("utf-8")) + 1


def fits(keys):
    """Whether one digest may carry these keys: at most :data:`MAX_KEYS`, and their share
    of the body at most :data:`MAX_KEYS_BYTES`."""
    if len(keys) > MAX_KEYS:
        return False
    return sum(_key_bytes(k) for k in keys) <= MAX_KEYS_BYTES


class Digest:
    """One digest: the window ``[window_start, window_end)`` (naive UTC) and its keys."""

    __slots__ = ("window_start", "window_end", "keys")

    def __init__(self, window_start, window_end, keys):
        self.window_start = window_start
        self.window_end = window_end
        self.keys = sort_keys(keys)

    @property
    def count(self):
        return len(self.keys)

    @property
    def keys_sha256(self):
        return keys_sha256(self.keys)

    def payload(self):
        return {
            "window_start": rfc3339(self.window_start),
            "window_end": rfc3339(self.window_end),
            "count": self.count,
            "keys": list(self.keys),
            "keys_sha256": self.keys_sha256,
        }

    def aggregate_id(self, database):
        return aggregate_id(database, self.window_start)

    def idempotency_key(self, database, namespace=None):
        return idempotency_key(database, self.window_start, self.window_end, self.keys_sha256, namespace)

    def __repr__(self):
        return "Digest(%s, %s, %d keys)" % (rfc3339(self.window_start), rfc3339(self.window_end), self.count)


def aggregate_id(database, window_start):
    """``"<database>:<window_start>"``: the bus reads the source before the first colon."""
    return "%s:%s" % (database, rfc3339(window_start))


def _clean(part):
    return "".join(c if 0x20 < ord(c) < 0x7F else "_" for c in str(part))


def idempotency_key(database, window_start, window_end_, sha, namespace=None):
    """``[namespace:]digest/<db>/<window_start>/<window_end>/<keys_sha256>``, 1-255 printable
    ASCII characters (a long database name is shortened, the SHA-256 always kept)."""
    tail = "/%s/%s/%s" % (rfc3339(window_start), rfc3339(window_end_), sha)
    head = "%sdigest/" % ("%s:" % _clean(namespace) if namespace else "")
    db = _clean(database)
    room = 255 - len(head) - len(tail)
    if len(db) > room:
        db = db[: max(0, room - 9)] + "~" + hashlib.sha256(db.encode("utf-8")).hexdigest()[:8]
    return head + db + tail


# ----------------------------------------------------------------------------- windows

def is_final(states):
    """Whether a window whose rows are in ``states`` may be digested (no row still on its
    way to the bus)."""
    return all(s in FINAL_STATES for s in states)


def split(entries, start, end, nominal_end=None):
    """The digests of the window ``[start, end)``: ``entries`` are ``(create_date, key)`` of
    its sent rows (every ``create_date`` in the window). ``nominal_end`` (default: ``end``)
    is the end of the aligned window whose halves are taken (the hour, when ``end`` is now).
    Returns :class:`Digest` s in time order that partition ``[start, end)``, each of which
    :func:`fits`; raises ValueError for an entry outside the window or a hopeless instant
    (more digests' worth of keys than microseconds in its slice)."""
    start, end = utc_naive(start), utc_naive(end)
    nominal_end = utc_naive(nominal_end) if nominal_end is not None else end
    if not start < end <= nominal_end:
        raise ValueError("a window needs start < end <= nominal end")
    entries = sorted(((utc_naive(t), k) for t, k in entries), key=lambda e: e[0])
    for t, _k in entries:
        if not start <= t < end:
            raise ValueError("a row created at %s is outside [%s, %s)" % (t, start, end))
    return _split(entries, start, nominal_end, end)


def _split(entries, a, b, end):
    """``entries`` (time-sorted) lie in ``[a, min(b, end))``; halves of ``[a, b)``."""
    stop = min(b, end)
    keys = [k for _t, k in entries]
    if fits(keys):
        return [Digest(a, stop, keys)]
    if entries[0][0] == entries[-1][0] or b - a <= MICROSECOND:
        return _spread(keys, a, stop)
    mid = a + (b - a) // 2
    if mid <= a:
        mid = a + MICROSECOND
    left = [e for e in entries if e[0] < mid]
    right = entries[len(left):]
    out = _split(left, a, mid, end)
    if mid < end:
        out += _split(right, mid, b, end)
    return out


def chunks(keys):
    """The keys (sorted bytewise) cut greedily into runs that each :func:`fits`."""
    out, run, size = [], [], 0
    for key in sort_keys(keys):
        kb = _key_bytes(key)
        if run and (len(run) >= MAX_KEYS or size + kb > MAX_KEYS_BYTES):
            out.append(run)
            run, size = [], 0
        run.append(key)
        size += kb
    if run:
        out.append(run)
    return out


def _spread(keys, a, stop):
    """Keys of one instant that overflow a digest: equal slices of ``[a, stop)``, in key
    order."""
    runs = chunks(keys)
    width = stop - a
    if width < MICROSECOND * len(runs):
        raise ValueError("%d keys of one instant do not fit in %s" % (len(keys), width))
    step = width // len(runs)
    bounds = [a + step * i for i in range(len(runs))] + [stop]
    return [Digest(bounds[i], bounds[i + 1], run) for i, run in enumerate(runs)]


def hour_digests(rows, hour_start, end):
    """The digests of the hour starting at ``hour_start``, up to ``end`` (its end, or now
    for the current hour), from its queue rows (dicts with ``create_date``, ``state``,
    ``idempotency_key``, ``event_type``; ``bus.digest`` rows are ignored). None while a row
    is not final."""
    rows = [r for r in rows if r.get("event_type") != DIGEST_EVENT_TYPE]
    if not is_final(r["state"] for r in rows):
        return None
    entries = [(r["create_date"], r["idempotency_key"]) for r in rows if r["state"] == outbox.SENT]
    return split(entries, hour_start, end, hour_start + HOUR)


def to_send(digests, last_keys, database, namespace=None):
    """The digests to queue: those whose idempotency key (their content) differs from the
    last one queued for their window (``last_keys``: aggregate id -> that key, from the
    model ``ipai.bus.digest``)."""
    return [d for d in digests
            if last_keys.get(d.aggregate_id(database)) != d.idempotency_key(database, namespace)]


def check_resend_keys(keys):
    """The bus's healing request, checked: a list of at most :data:`MAX_RESEND_KEYS`
    strings. Returns the keys without repeats, in the order given; ValueError otherwise."""
    if not isinstance(keys, (list, tuple)):
        raise ValueError("keys must be a list of idempotency keys, not %s" % type(keys).__name__)
    if len(keys) > MAX_RESEND_KEYS:
        raise ValueError("at most %d keys per call, not %d" % (MAX_RESEND_KEYS, len(keys)))
    bad = [k for k in keys if not isinstance(k, str) or not k]
    if bad:
        raise ValueError("keys must be non-empty strings (got %r)" % (bad[0],))
    return list(dict.fromkeys(keys))


# The model's per-hour summary over the queue (parameters: since, until): for each aligned
# hour holding rows, how many rows are not final yet, how many are sent, and the SHA-256 of
# the sent keys sorted bytewise (what :func:`keys_sha256` computes), so a run skips an hour
# that did not change since its last digest without reading its keys. bus.digest rows are
# left out. A test runs it on PostgreSQL against :func:`keys_sha256`.
HOURS_SQL = """
    SELECT date_trunc('hour', create_date) AS hour,
           count(*) FILTER (WHERE state NOT IN ('sent', 'failed', 'cancelled')) AS unfinished,
           count(*) FILTER (WHERE state = 'sent') AS sent,
           encode(sha256(convert_to(coalesce(
               string_agg(idempotency_key, E'\\n' ORDER BY idempotency_key COLLATE "C")
                   FILTER (WHERE state = 'sent'),
               ''), 'UTF8')), 'hex') AS keys_sha256
      FROM ipai_event_queue
     WHERE create_date >= %s AND create_date < %s AND event_type <> 'bus.digest'
     GROUP BY 1
     ORDER BY 1
"""

# The rows of one window (parameters: start, end), for :func:`hour_digests`.
WINDOW_ROWS_SQL = """
    SELECT create_date, state, idempotency_key, event_type
      FROM ipai_event_queue
     WHERE create_date >= %s AND create_date < %s AND event_type <> 'bus.digest'
"""
