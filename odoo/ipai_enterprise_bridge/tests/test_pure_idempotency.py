"""Stable idempotency keys, without Odoo."""

import datetime as dt

from odoo.addons.ipai_enterprise_bridge.utils import idempotency


WRITE = dt.datetime(2026, 11, 26, 5, 0, 0)


def test_the_key_is_aggregate_id_event_type_and_write_date():
    key = idempotency.make_key("expense", 42, "expense.submitted", WRITE)
    assert key == "expense:42:expense.submitted:20261126T050000"
    assert idempotency.is_valid_key(key)


def test_the_same_change_always_gets_the_same_key():
    a = idempotency.make_key("expense", "42", "expense.approved", WRITE)
    b = idempotency.make_key("expense", 42, "expense.approved", dt.datetime(2026, 11, 26, 5, 0, 0))
    assert a == b


def test_a_later_change_or_another_event_type_gets_another_key():
    base = idempotency.make_key("expense", 42, "expense.submitted", WRITE)
    assert idempotency.make_key("expense", 42, "expense.submitted", WRITE + dt.timedelta(seconds=1)) != base
    assert idempotency.make_key("expense", 42, "expense.approved", WRITE) != base
    assert idempotency.make_key("expense", 43, "expense.submitted", WRITE) != base
    assert idempotency.make_key("expense", 42, "expense.submitted", WRITE.replace(microsecond=5)) != base


def test_a_discriminator_separates_repeated_events_without_a_write():
    l1 = idempotency.make_key("asset_booking", 7, "asset.overdue", WRITE, "L1")
    l2 = idempotency.make_key("asset_booking", 7, "asset.overdue", WRITE, "L2")
    assert l1 != l2 and l1.endswith(":L1")


def test_aware_datetimes_are_normalised_to_utc():
    aware = dt.datetime(2026, 11, 26, 13, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert idempotency.make_key("e", 1, "t", aware) == idempotency.make_key("e", 1, "t", WRITE)


def test_keys_stay_printable_ascii_and_at_most_255_characters():
    weird = idempotency.make_key("expense", "a b:c\u00e9\n", "expense.paid", WRITE, "x" * 400, namespace="db1")
    assert idempotency.is_valid_key(weird)
    assert len(weird) == 255
    assert weird.startswith("db1:expense:a_b_c__:")
    # Still deterministic after shortening.
    assert weird == idempotency.make_key("expense", "a b:c\u00e9\n", "expense.paid", WRITE, "x" * 400, namespace="db1")
    assert weird != idempotency.make_key("expense", "a b:c\u00e9\n", "expense.paid", WRITE, "x" * 401, namespace="db1")


def test_a_missing_write_date_renders_as_zero():
    assert idempotency.make_key("e", 1, "t", None).endswith(":0")
    assert not idempotency.is_valid_key("")
    assert not idempotency.is_valid_key("k\x7f")
