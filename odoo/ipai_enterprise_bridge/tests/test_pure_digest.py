"""The reconciliation digest (SPEC §11, ``utils/digest.py``) without Odoo: windows, the
bytewise order and the SHA-256, the split of a busy window, which windows are due, the
digest's key, and the bus's healing request. The per-hour SQL summary runs on a real
PostgreSQL against the same pure functions."""

import datetime as dt
import hashlib
import json
import os
import random
import shutil
import subprocess

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import digest, idempotency, outbox
from odoo.addons.ipai_enterprise_bridge.utils.events import make_event
from odoo.addons.ipai_enterprise_bridge.utils.ipai_webhook import canonical_body

H = dt.datetime(2026, 12, 7, 10, 0, 0)  # an aligned hour, naive UTC as Odoo keeps it
INGEST_MAX_BODY = 256 * 1024


def independent_sha(keys):
    """SPEC §11's rule written out again: sort the UTF-8 bytes, join by \\n, SHA-256."""
    return hashlib.sha256(b"\n".join(sorted(k.encode("utf-8") for k in keys))).hexdigest()


def covers(digests, start, end):
    """The digests' windows follow each other without gap or overlap from start to end."""
    assert digests[0].window_start == start
    assert digests[-1].window_end == end
    for a, b in zip(digests, digests[1:]):
        assert a.window_end == b.window_start
    assert all(d.window_start < d.window_end for d in digests)


# ---------------------------------------------------------------------------- time

def test_windows_are_aligned_utc_hours_in_rfc3339():
    assert digest.floor_hour(dt.datetime(2026, 12, 7, 10, 59, 59, 999999)) == H
    aware = dt.datetime(2026, 12, 7, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert digest.floor_hour(aware) == H
    assert digest.rfc3339(H) == "2026-12-07T10:00:00Z"
    assert digest.rfc3339(H + dt.timedelta(microseconds=500000)) == "2026-12-07T10:00:00.500000Z"
    assert digest.rfc3339(aware) == "2026-12-07T10:30:00Z"


def test_a_run_looks_back_over_the_horizon_at_closed_hours_or_up_to_now():
    now = dt.datetime(2026, 12, 7, 10, 20, 30, 123456)
    assert digest.span(now, 7) == (H - dt.timedelta(days=7), H)
    assert digest.span(now, 7, include_open_hour=True) == (H - dt.timedelta(days=7), now.replace(microsecond=0))
    assert digest.span(now, 0)[0] == H - dt.timedelta(days=1)  # at least a day
    until = dt.datetime(2026, 12, 7, 10, 20, 30)
    assert digest.window_end(H - digest.HOUR, until) == H
    assert digest.window_end(H, until) == until
    assert digest.window_end(H, H) is None  # nothing of the hour before "until"


# ---------------------------------------------------------------------------- keys

def test_keys_are_sorted_by_their_bytes_and_hashed_joined_by_newlines():
    keys = ["expense:2:expense.paid:x", "Z", "a", "é", "expense:10:expense.paid:x", "_"]
    assert digest.sort_keys(keys) == ["Z", "_", "a", "expense:10:expense.paid:x", "expense:2:expense.paid:x", "é"]
    assert digest.keys_sha256(keys) == independent_sha(keys)
    assert digest.keys_sha256(["b", "a"]) == hashlib.sha256(b"a\nb").hexdigest()
    assert digest.keys_sha256([]) == hashlib.sha256(b"").hexdigest()
    assert digest.keys_sha256(["a"]) == digest.keys_sha256(("a",)).lower()


def test_the_payload_is_exactly_the_spec():
    d = digest.Digest(H, H + digest.HOUR, ["k2", "K1", "k10"])
    assert d.payload() == {
        "window_start": "2026-12-07T10:00:00Z",
        "window_end": "2026-12-07T11:00:00Z",
        "count": 3,
        "keys": ["K1", "k10", "k2"],
        "keys_sha256": independent_sha(["k2", "K1", "k10"]),
    }
    assert d.aggregate_id("odoo_prod") == "odoo_prod:2026-12-07T10:00:00Z"
    event = make_event(digest.DIGEST_EVENT_TYPE, d.aggregate_id("odoo_prod"), d.payload(), occurred_at=H)
    assert (event["event_type"], event["aggregate_type"]) == ("bus.digest", "digest")


def test_the_key_names_the_content():
    d = digest.Digest(H, H + digest.HOUR, ["a", "b"])
    key = d.idempotency_key("odoo_prod")
    assert key == "digest/odoo_prod/2026-12-07T10:00:00Z/2026-12-07T11:00:00Z/%s" % independent_sha(["a", "b"])
    assert idempotency.is_valid_key(key)
    assert digest.Digest(H, H + digest.HOUR, ["b", "a"]).idempotency_key("odoo_prod") == key  # same content
    assert digest.Digest(H, H + digest.HOUR, ["a", "b", "c"]).idempotency_key("odoo_prod") != key  # more keys
    assert digest.Digest(H, H + dt.timedelta(minutes=20), ["a", "b"]).idempotency_key("odoo_prod") != key  # open hour
    assert d.idempotency_key("odoo_prod", namespace="eu") == "eu:" + key
    long_db = "d" * 300
    long_key = d.idempotency_key(long_db, namespace="ns")
    assert idempotency.is_valid_key(long_key) and long_key.endswith(independent_sha(["a", "b"]))
    assert d.idempotency_key("d" * 299, namespace="ns") != long_key


# ------------------------------------------------------------------------- windows

def test_only_a_window_of_final_rows_is_digested():
    assert digest.is_final(["sent", "failed", "cancelled"])
    assert not digest.is_final(["sent", "pending"])
    assert digest.is_final([])
    rows = [
        {"create_date": H + dt.timedelta(minutes=1), "state": "sent", "idempotency_key": "b", "event_type": "expense.paid"},
        {"create_date": H + dt.timedelta(minutes=2), "state": "failed", "idempotency_key": "f", "event_type": "expense.paid"},
        {"create_date": H + dt.timedelta(minutes=3), "state": "cancelled", "idempotency_key": "c", "event_type": "asset.overdue"},
        {"create_date": H + dt.timedelta(minutes=4), "state": "sent", "idempotency_key": "a", "event_type": "asset.reserved"},
        # The digests themselves are neither listed nor waited for.
        {"create_date": H + dt.timedelta(minutes=5), "state": "pending", "idempotency_key": "digest/x", "event_type": "bus.digest"},
        {"create_date": H + dt.timedelta(minutes=6), "state": "sent", "idempotency_key": "digest/y", "event_type": "bus.digest"},
    ]
    (d,) = digest.hour_digests(rows, H, H + digest.HOUR)
    assert (d.window_start, d.window_end, d.keys, d.count) == (H, H + digest.HOUR, ["a", "b"], 2)
    pending = rows + [{"create_date": H + dt.timedelta(minutes=7), "state": "pending", "idempotency_key": "p",
                       "event_type": "expense.submitted"}]
    assert digest.hour_digests(pending, H, H + digest.HOUR) is None
    # The failed row requeued and sent: the window's content changes, so does its key.
    healed = [dict(r, state="sent") if r["idempotency_key"] == "f" else r for r in rows]
    (d2,) = digest.hour_digests(healed, H, H + digest.HOUR)
    assert d2.keys == ["a", "b", "f"]
    assert d2.idempotency_key("db") != d.idempotency_key("db")
    # An hour with rows that were all cancelled or failed still says "nothing sent".
    (empty,) = digest.hour_digests([rows[1], rows[2]], H, H + digest.HOUR)
    assert empty.payload()["count"] == 0 and empty.payload()["keys_sha256"] == hashlib.sha256(b"").hexdigest()


def test_an_unchanged_window_is_not_queued_again_a_changed_one_is():
    a = digest.Digest(H, H + digest.HOUR, ["a"])
    b = digest.Digest(H + digest.HOUR, H + 2 * digest.HOUR, ["b"])
    last = {a.aggregate_id("db"): a.idempotency_key("db")}
    assert digest.to_send([a, b], last, "db") == [b]
    last[b.aggregate_id("db")] = b.idempotency_key("db")
    assert digest.to_send([a, b], last, "db") == []
    a2 = digest.Digest(H, H + digest.HOUR, ["a", "a2"])
    assert digest.to_send([a2, b], last, "db") == [a2]
    # The hourly digest after the open hour's: same window_start, later end: sent again.
    opened = digest.Digest(H, H + dt.timedelta(minutes=20), ["a"])
    assert digest.to_send([a], {opened.aggregate_id("db"): opened.idempotency_key("db")}, "db") == [a]


def _spread_entries(n, rnd, start=H, seconds=3600, key_len=24):
    entries = []
    for i in range(n):
        t = start + dt.timedelta(microseconds=rnd.randrange(seconds * 10**6))
        entries.append((t, "k%06d-%s" % (i, "x" * max(0, key_len - 8))))
    return entries


def _check_split(digests, entries, start, end):
    covers(digests, start, end)
    for d in digests:
        assert d.count <= digest.MAX_KEYS
        assert digest.fits(d.keys)
        assert d.keys == digest.sort_keys(d.keys)
    listed = [k for d in digests for k in d.keys]
    assert sorted(listed) == sorted(k for _t, k in entries)  # every key, exactly once


def test_a_window_of_more_than_10000_keys_is_split_in_time_into_windows_that_cover_it():
    rnd = random.Random(37)
    entries = _spread_entries(25000, rnd)
    digests = digest.split(entries, H, H + digest.HOUR)
    assert len(digests) >= 3
    _check_split(digests, entries, H, H + digest.HOUR)
    for d in digests:  # each key sits in the window holding its creation time
        times = {k: t for t, k in entries}
        assert all(d.window_start <= times[k] < d.window_end for k in d.keys)
    # Halves of the hour: every boundary is the hour's start plus a dyadic fraction of it.
    for d in digests:
        offset = (d.window_start - H) / digest.HOUR
        assert (offset * 2**20) == int(offset * 2**20)


def test_exactly_10000_keys_fit_in_one_digest_10001_do_not():
    rnd = random.Random(1)
    entries = _spread_entries(10000, rnd, key_len=10)
    assert len(digest.split(entries, H, H + digest.HOUR)) == 1
    entries.append((H + dt.timedelta(minutes=59), "k-one-more"))
    digests = digest.split(entries, H, H + digest.HOUR)
    assert len(digests) == 2
    _check_split(digests, entries, H, H + digest.HOUR)


def test_long_keys_split_a_window_before_its_body_passes_ingests_limit():
    rnd = random.Random(2)
    entries = _spread_entries(3000, rnd, key_len=255)  # 3000 keys, ~780 KB of keys
    digests = digest.split(entries, H, H + digest.HOUR)
    assert len(digests) >= 4
    _check_split(digests, entries, H, H + digest.HOUR)
    for d in digests:
        body = canonical_body(make_event("bus.digest", d.aggregate_id("d" * 63), d.payload(), occurred_at=H))
        assert len(body) <= INGEST_MAX_BODY


def test_a_window_with_empty_halves_still_covers_the_hour():
    # All the load in the last minute: the earlier halves are digested empty.
    rnd = random.Random(3)
    entries = _spread_entries(12000, rnd, start=H + dt.timedelta(minutes=59), seconds=60, key_len=10)
    digests = digest.split(entries, H, H + digest.HOUR)
    _check_split(digests, entries, H, H + digest.HOUR)
    assert digests[0].count == 0 and digests[0].window_end == H + dt.timedelta(minutes=30)


def test_one_transactions_keys_overflowing_a_digest_are_spread_over_its_window():
    # Odoo stamps every row of a transaction with the same create_date.
    t = H + dt.timedelta(minutes=12, seconds=3)
    entries = [(t, "expense:%d:expense.submitted:x" % i) for i in range(21000)]
    entries += [(H + dt.timedelta(minutes=40), "later")]
    digests = digest.split(entries, H, H + digest.HOUR)
    _check_split(digests, entries, H, H + digest.HOUR)
    assert sum(1 for d in digests if d.count > 1000) == 3
    # A hopeless instant (more digests than microseconds) is refused, not sent wrong.
    with pytest.raises(ValueError):
        digest._spread(["k%d" % i for i in range(20001)], H, H + dt.timedelta(microseconds=2))


def test_the_open_hour_is_split_like_the_hour_it_will_be():
    rnd = random.Random(4)
    entries = _spread_entries(30000, rnd, seconds=20 * 60, key_len=10)
    now = H + dt.timedelta(minutes=20)
    opened = digest.split(entries, H, now, H + digest.HOUR)
    _check_split(opened, entries, H, now)
    closed = digest.split(entries, H, H + digest.HOUR)
    _check_split(closed, entries, H, H + digest.HOUR)
    # The same windows, the last one ending at now rather than where the hour's does.
    assert [d.window_start for d in opened] == [d.window_start for d in closed][: len(opened)]
    assert [d.keys for d in opened] == [d.keys for d in closed][: len(opened)]


def test_a_row_outside_the_window_is_a_bug():
    with pytest.raises(ValueError):
        digest.split([(H + digest.HOUR, "k")], H, H + digest.HOUR)
    with pytest.raises(ValueError):
        digest.split([], H, H)


# ------------------------------------------------------------------------- healing

def test_the_bus_asks_for_a_list_of_at_most_10000_string_keys():
    assert digest.check_resend_keys(["b", "a", "b"]) == ["b", "a"]
    assert digest.check_resend_keys([]) == []
    for bad in ("a", None, {"a": 1}, [1], ["a", None], [""], ["k"] * 10001):
        with pytest.raises(ValueError):
            digest.check_resend_keys(bad)
    assert len(digest.check_resend_keys(["k%d" % i for i in range(10000)])) == 10000


def test_a_resent_row_is_pending_due_now_from_attempt_zero_a_cancelled_one_stays():
    now = dt.datetime(2026, 12, 7, 11, 0)
    for state in ("sent", "failed", "pending"):
        assert outbox.resend({"id": 1, "state": state, "attempts": 7}, now) == {
            "state": "pending", "attempts": 0, "next_attempt_at": now}
    with pytest.raises(ValueError):
        outbox.resend({"id": 1, "state": "cancelled"}, now)


# ------------------------------------------------------------- the SQL summary

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"


def _psql(sql):
    if not shutil.which("psql"):
        pytest.skip("psql is not installed (make setup installs postgresql-client)")
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    base, _, query = url.partition("?")
    url = base.rsplit("/", 1)[0] + "/postgres" + ("?" + query if query else "")
    proc = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-F", "|", "-c", sql],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode and ("could not connect" in proc.stderr or "Connection refused" in proc.stderr):
        pytest.skip("no PostgreSQL at %s (make db starts one)" % url)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _lit(value):
    if isinstance(value, dt.datetime):
        return "'%s'::timestamp" % value.isoformat(sep=" ")
    return "'%s'" % str(value).replace("'", "''")


def test_the_sql_summary_hashes_the_sent_keys_like_the_pure_code():
    rnd = random.Random(11)
    alphabet = "aAzZ09_:.-/é~"
    rows = []
    for i in range(400):
        t = H - digest.HOUR * rnd.randrange(4) + dt.timedelta(seconds=rnd.randrange(3600))
        key = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 12))) + str(i)
        state = rnd.choice(["sent", "sent", "sent", "failed", "cancelled"])
        event_type = "bus.digest" if i % 37 == 0 else "expense.paid"
        rows.append({"create_date": t, "state": state, "idempotency_key": key, "event_type": event_type})
    late = H - 2 * digest.HOUR + dt.timedelta(minutes=5)
    rows.append({"create_date": late, "state": "pending", "idempotency_key": "on-its-way", "event_type": "expense.paid"})
    values = ", ".join("(%s)" % ", ".join(_lit(r[k]) for k in ("create_date", "state", "idempotency_key", "event_type"))
                       for r in rows)
    since, until = H - 3 * digest.HOUR, H + digest.HOUR
    query = digest.HOURS_SQL.replace("%s", "{}").format(_lit(since), _lit(until))
    out = _psql("CREATE TEMP TABLE ipai_event_queue (create_date timestamp, state varchar, idempotency_key varchar, "
                "event_type varchar); INSERT INTO ipai_event_queue VALUES %s; %s" % (values, query))
    got = {}
    for line in out.strip().splitlines():
        hour, unfinished, sent, sha = line.split("|")
        got[dt.datetime.fromisoformat(hour)] = (int(unfinished), int(sent), sha)
    expected = {}
    for hour in sorted({digest.floor_hour(r["create_date"]) for r in rows}):
        in_hour = [r for r in rows if digest.floor_hour(r["create_date"]) == hour and r["event_type"] != "bus.digest"]
        sent = [r["idempotency_key"] for r in in_hour if r["state"] == "sent"]
        unfinished = sum(1 for r in in_hour if r["state"] not in digest.FINAL_STATES)
        expected[hour] = (unfinished, len(sent), digest.keys_sha256(sent))
        assert digest.keys_sha256(sent) == independent_sha(sent)
    assert got == expected
    assert got[H - 2 * digest.HOUR][0] == 1
    # The window rows the model reads next are the same rows.
    wquery = digest.WINDOW_ROWS_SQL.replace("%s", "{}").format(_lit(H - digest.HOUR), _lit(H))
    out = _psql("CREATE TEMP TABLE ipai_event_queue (create_date timestamp, state varchar, idempotency_key varchar, "
                "event_type varchar); INSERT INTO ipai_event_queue VALUES %s; %s" % (values, wquery))
    keys = sorted(line.split("|")[2] for line in out.strip().splitlines())
    assert keys == sorted(r["idempotency_key"] for r in rows if digest.floor_hour(r["create_date"]) == H - digest.HOUR
                          and r["event_type"] != "bus.digest")


def test_digest_bodies_are_json_the_bus_reads():
    d = digest.Digest(H, H + digest.HOUR, ["a"])
    body = json.loads(canonical_body(make_event("bus.digest", d.aggregate_id("db"), d.payload(), occurred_at=H)))
    assert body["payload"] == d.payload() and body["aggregate_id"] == "db:2026-12-07T10:00:00Z"
