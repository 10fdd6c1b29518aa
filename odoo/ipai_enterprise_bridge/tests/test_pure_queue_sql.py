"""The sender's SQL selection (``outbox.OLDEST_UNSENT_SQL``, run by the model) on a real
PostgreSQL, against the pure rule ``outbox.sendable`` on the same rows: the two must pick
the same rows, so per-record order holds in production as it does in the pure tests.

Uses ``psql`` and the repository's local PostgreSQL (``DATABASE_URL``, see scripts/env.sh;
CI starts it before the tests); a temporary table, nothing persists."""

import datetime as dt
import os
import random
import shutil
import subprocess

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import outbox

NOW = dt.datetime(2026, 11, 26, 5, 0, 0)
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"


def _server_url():
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/postgres" + ("?" + query if query else "")


def _psql(sql):
    if not shutil.which("psql"):
        pytest.skip("psql is not installed (make setup installs postgresql-client)")
    proc = subprocess.run(["psql", _server_url(), "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode and ("could not connect" in proc.stderr or "Connection refused" in proc.stderr):
        pytest.skip("no PostgreSQL at %s (make db starts one)" % _server_url())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, dt.datetime):
        return "'%s'::timestamp" % value.isoformat(sep=" ")
    if isinstance(value, int):
        return str(value)
    return "'%s'" % str(value).replace("'", "''")


def _select_in_postgres(rows, now, limit):
    values = ", ".join(
        "(%s)" % ", ".join(_literal(r[k]) for k in ("id", "state", "aggregate_type", "aggregate_id", "next_attempt_at"))
        for r in rows
    )
    query = outbox.OLDEST_UNSENT_SQL.replace("%s", "{}").format(_literal(now), int(limit))
    sql = (
        "CREATE TEMP TABLE ipai_event_queue (id int PRIMARY KEY, state varchar, aggregate_type varchar, "
        "aggregate_id varchar, next_attempt_at timestamp); "
        "INSERT INTO ipai_event_queue VALUES %s; %s" % (values, query)
    )
    return [int(line) for line in _psql(sql).split()]


def _row(id_, agg, state="pending", due=NOW):
    return {"id": id_, "state": state, "aggregate_type": "expense", "aggregate_id": agg, "next_attempt_at": due}


def test_the_sql_keeps_each_records_order_like_the_pure_rule():
    later = NOW + dt.timedelta(minutes=5)
    rows = [_row(1, "a", "failed"), _row(2, "a"), _row(3, "b", "sent"), _row(4, "b"), _row(5, "c", due=later),
            _row(6, "c"), _row(7, "d", "cancelled"), _row(8, "d", due=None), _row(9, "e")]
    got = _select_in_postgres(rows, NOW, 50)
    assert got == [4, 8, 9]
    assert got == [r["id"] for r in outbox.sendable(rows, NOW, 50)]
    assert _select_in_postgres(rows, NOW, 2) == [4, 8]


def test_the_sql_and_the_pure_rule_agree_on_random_queues():
    rnd = random.Random(16)
    for _ in range(20):
        rows = []
        for i in range(1, 40):
            state = rnd.choice(["pending", "pending", "pending", "failed", "sent", "cancelled"])
            due = NOW + dt.timedelta(minutes=rnd.choice([-60, -1, 0, 1, 60]))
            rows.append(_row(i, rnd.choice("abcdef"), state, rnd.choice([due, due, None])))
        assert _select_in_postgres(rows, NOW, 50) == [r["id"] for r in outbox.sendable(rows, NOW, 50)]
