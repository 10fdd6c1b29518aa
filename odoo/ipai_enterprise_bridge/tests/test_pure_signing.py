"""Signing (SPEC §3) and the HTTP sender, without Odoo."""

import hashlib
import hmac
import json

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import ipai_webhook as wh


def test_every_shared_ipai_vector_signs_to_the_expected_signature(signature_vectors):
    ipai = [c for c in signature_vectors if c["scheme"] == "ipai"]
    assert len(ipai) >= 4
    for case in ipai:
        got = wh.sign(case["secret"], case["timestamp"], case["body"].encode("utf-8"))
        assert got == case["signature"], case["name"]
        # build_request puts the same value in the header, for the same bytes.
        body, headers = wh.build_request(case["secret"], case["body"], "k", timestamp=case["timestamp"])
        assert body == case["body"].encode("utf-8")
        assert headers["X-Ipai-Signature"] == case["signature"], case["name"]
        assert headers["X-Ipai-Timestamp"] == case["timestamp"]


def test_every_shared_standard_webhooks_vector_signs_to_the_expected_signature(signature_vectors):
    cases = [c for c in signature_vectors if c["scheme"] == "standard-webhooks"]
    assert cases
    for case in cases:
        got = wh.sign_standard_webhook(case["secret"], case["id"], case["timestamp"], case["body"])
        assert got == case["signature"], case["name"]


def test_the_official_standardwebhooks_library_agrees_with_the_vectors(signature_vectors):
    sw = pytest.importorskip("standardwebhooks.webhooks")
    import datetime as dt

    for case in (c for c in signature_vectors if c["scheme"] == "standard-webhooks"):
        ts = dt.datetime.fromtimestamp(int(case["timestamp"]), tz=dt.timezone.utc)
        assert sw.Webhook(case["secret"]).sign(case["id"], ts, case["body"]) == case["signature"]


def test_signature_is_lowercase_hex_hmac_sha256_over_timestamp_dot_body():
    sig = wh.sign("s3cr3t", "1764130000000", b'{"a":1}')
    assert sig == hmac.new(b"s3cr3t", b'1764130000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sig == sig.lower() and len(sig) == 64


def test_a_rotation_list_signs_with_its_first_secret():
    assert wh.sign("new, old", "1", b"{}") == wh.sign("new", "1", b"{}")
    with pytest.raises(ValueError):
        wh.sign(" , ", "1", b"{}")
    with pytest.raises(ValueError):
        wh.sign(None, "1", b"{}")


def test_timestamps_are_milliseconds():
    assert wh.timestamp_ms(1764130000.123) == "1764130000123"
    assert len(wh.timestamp_ms()) == 13


def test_the_body_is_compact_utf8_json_and_serialised_bodies_pass_through():
    event = {"event_type": "finance_task.created", "payload": {"name": "BIR 1601-C — Oktubre ✓"}}
    body = wh.canonical_body(event)
    assert body == '{"event_type":"finance_task.created","payload":{"name":"BIR 1601-C — Oktubre ✓"}}'.encode()
    assert wh.canonical_body(body.decode()) == body
    assert wh.canonical_body(body) == body


def test_headers_are_the_four_the_bus_expects():
    body, headers = wh.build_request("k", {"a": 1}, "key-1", timestamp="1764130000000")
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Idempotency-Key"] == "key-1"
    assert set(h.lower() for h in headers) >= {"content-type", "x-ipai-timestamp", "x-ipai-signature", "x-idempotency-key"}


def test_without_a_key_the_default_key_is_derived_from_the_event_and_stable():
    event = {"event_type": "expense.submitted", "aggregate_type": "expense", "aggregate_id": "42", "payload": {}}
    k1 = wh.default_idempotency_key(event)
    assert k1 == wh.default_idempotency_key(dict(event))
    assert k1.startswith("expense:42:expense.submitted:")
    other = dict(event, payload={"amount": 1})
    assert wh.default_idempotency_key(other) != k1
    _, headers = wh.build_request("s", event)
    assert headers["X-Idempotency-Key"] == k1


def test_send_ipai_event_posts_a_request_the_bus_accepts(fake_bus):
    event = {"event_type": "expense.submitted", "aggregate_type": "expense", "aggregate_id": "42",
             "payload": {"expense_id": 42, "status": "submit"}}
    resp = wh.send_ipai_event(fake_bus.url, "bus-secret", event, idempotency_key="expense:42:a")
    assert (resp.status, resp.accepted, resp.duplicate) == (202, True, False)
    assert resp.event_id == "id-expense:42:a"
    headers, body = fake_bus.requests[-1]
    assert json.loads(body) == event
    assert headers["content-type"] == "application/json"
    assert headers["x-idempotency-key"] == "expense:42:a"
    # The same event again (a retry): 200 duplicate, still accepted.
    again = wh.send_ipai_event(fake_bus.url, "bus-secret", event, idempotency_key="expense:42:a")
    assert (again.status, again.accepted, again.duplicate) == (200, True, True)


def test_an_http_error_is_returned_not_raised_and_carries_no_secret(fake_bus):
    resp = wh.send_ipai_event(fake_bus.url, "wrong-secret", {"a": 1}, idempotency_key="k")
    assert (resp.status, resp.accepted, resp.error_code) == (401, False, "invalid_signature")
    assert "wrong-secret" not in resp.describe() and "wrong-secret" not in repr(resp)
    fake_bus.force_status = 503
    resp = wh.send_ipai_event(fake_bus.url, "bus-secret", {"a": 1}, idempotency_key="k")
    assert resp.status == 503 and resp.retry_after == 1.0


def test_no_answer_raises_a_transport_error_without_the_secret_or_credentials():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(wh.IpaiTransportError) as err:
        wh.send_ipai_event("http://user:pw@127.0.0.1:%d/odoo-webhook?token=t" % port, "top-secret", {"a": 1}, "k",
                           timeout=2)
    text = str(err.value)
    assert "top-secret" not in text and "pw" not in text and "token" not in text
    assert "127.0.0.1:%d/odoo-webhook" % port in text


def test_a_missing_url_or_secret_is_a_clear_error():
    with pytest.raises(ValueError, match="URL"):
        wh.send_ipai_event("", "s", {"a": 1})
    with pytest.raises(ValueError, match="secret"):
        wh.send_ipai_event("http://127.0.0.1:9/x", "", {"a": 1})
