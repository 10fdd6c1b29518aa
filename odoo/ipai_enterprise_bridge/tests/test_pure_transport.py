"""The sender's HTTP layer against a real loopback server that misbehaves in every way
the issue lists: each failure is one readable exception (or an HTTP answer), bounded in
time, and a redirect is never followed."""

import socket
import time

import pytest

from odoo.addons.ipai_enterprise_bridge.utils import ipai_webhook as wh

EVENT = {"event_type": "expense.submitted", "aggregate_type": "expense", "aggregate_id": "42", "payload": {}}


def send(url, **kw):
    kw.setdefault("timeout", 2)
    return wh.send_ipai_event(url, "s3cret", EVENT, "expense:42:k", **kw)


@pytest.mark.parametrize(
    "url, message",
    [
        ("", "not configured"),
        ("   ", "not configured"),
        ("127.0.0.1:8080/odoo-webhook", "must start with http:// or https://"),
        ("bus.example.com/odoo-webhook", "must start with http:// or https://"),
        ("ftp://bus.example.com/odoo-webhook", "must start with http:// or https://"),
        ("http:///odoo-webhook", "has no host"),
        ("http://bus.example.com:99999/odoo-webhook", "is not a URL"),
        ("http://bus.example.com:port/odoo-webhook", "is not a URL"),
    ],
)
def test_an_unusable_url_is_a_config_error_naming_the_problem(url, message):
    with pytest.raises(wh.IpaiConfigError, match=message):
        send(url)


def test_a_config_error_never_shows_credentials_from_the_url():
    with pytest.raises(wh.IpaiConfigError) as err:
        send("ftp://user:hunter2@bus.example.com/x?token=abc")
    assert "hunter2" not in str(err.value) and "abc" not in str(err.value)


def test_a_missing_secret_is_a_config_error(scripted_server):
    with pytest.raises(wh.IpaiConfigError, match="secret"):
        wh.send_ipai_event(scripted_server.url(), "", EVENT, "k", timeout=2)
    assert scripted_server.requests == []


@pytest.mark.parametrize(
    "action, message",
    [
        ("reset", "the connection was reset"),
        ("close", "closed the connection without answering"),
        ("truncated", "the answer was cut off"),
        ("long_line", "over-long line"),
        ("garbage", "BadStatusLine"),
    ],
)
def test_a_broken_answer_is_a_transport_error(scripted_server, action, message):
    scripted_server.script = [action]
    with pytest.raises(wh.IpaiTransportError, match=message) as err:
        send(scripted_server.url())
    assert "127.0.0.1:%d/odoo-webhook" % scripted_server.port in str(err.value)
    assert len(scripted_server.requests) == 1


def test_a_silent_server_is_a_timeout_bounded_by_the_read_timeout(scripted_server):
    scripted_server.script = [("silent", 3)]
    started = time.monotonic()
    with pytest.raises(wh.IpaiTransportError, match="timed out"):
        send(scripted_server.url(), timeout=0.3)
    assert time.monotonic() - started < 2


def test_a_refused_connection_is_a_transport_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(wh.IpaiTransportError, match="connection refused"):
        send("http://127.0.0.1:%d/odoo-webhook" % port)


def test_dns_is_bounded_even_when_the_resolver_hangs():
    def hanging_resolver(host, port):
        time.sleep(5)
        return [("127.0.0.1", port)]

    started = time.monotonic()
    with pytest.raises(wh.IpaiTransportError, match="DNS lookup of bus.invalid took longer than 0.2 s"):
        send("http://bus.invalid/odoo-webhook", dns_timeout=0.2, resolver=hanging_resolver)
    assert time.monotonic() - started < 1.5


def test_a_failed_dns_lookup_is_a_transport_error():
    def failing_resolver(host, port):
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(wh.IpaiTransportError, match="DNS lookup of bus.invalid failed: .*not known"):
        send("http://bus.invalid/odoo-webhook", resolver=failing_resolver)


def test_the_resolver_result_is_where_the_request_goes(scripted_server):
    seen = []

    def resolver(host, port):
        seen.append((host, port))
        return [("127.0.0.1", scripted_server.port)]

    resp = send("http://bus.test:%d/odoo-webhook" % scripted_server.port, resolver=resolver)
    assert resp.status == 202 and seen == [("bus.test", scripted_server.port)]
    assert scripted_server.requests[0][1]["host"] == "bus.test:%d" % scripted_server.port


def test_timeouts_default_to_short_dns_and_connect_bounds():
    t = wh.Timeouts(10)
    assert (t.dns, t.connect, t.read) == (5.0, 5.0, 10.0)
    assert (wh.Timeouts(2).dns, wh.Timeouts(2).connect) == (2.0, 2.0)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_returned_never_followed_and_names_the_location(scripted_server, code):
    target = "https://bus.example.com/odoo-webhook?token=secret-ish"
    scripted_server.script = [("status", code, {}, {"location": target}), ("status", 202, {"id": "x"}, {})]
    resp = send(scripted_server.url())
    assert resp.status == code and not resp.accepted and resp.redirect
    assert resp.location == "https://bus.example.com/odoo-webhook"
    assert "redirect to https://bus.example.com/odoo-webhook not followed" in resp.describe()
    assert "secret-ish" not in resp.describe()
    assert [r[0] for r in scripted_server.requests] == ["POST /odoo-webhook HTTP/1.1"]  # no second request


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 408, 409, 410, 413, 415, 422, 425, 429, 451,
                                  500, 502, 503, 504])
def test_every_error_status_is_an_answer_with_its_reason(scripted_server, code):
    scripted_server.script = [("status", code, {"error": "code_%d" % code, "message": "why"}, {"retry-after": "7"})]
    resp = send(scripted_server.url())
    assert (resp.status, resp.accepted, resp.error_code) == (code, False, "code_%d" % code)
    assert resp.describe() == "HTTP %d code_%d why" % (code, code)
    assert resp.retry_after == 7.0


def test_the_request_is_the_signed_post_the_bus_expects(scripted_server):
    resp = send(scripted_server.url("/odoo-webhook?x=1"))
    assert resp.accepted and resp.event_id == "e-1"
    line, headers, body = scripted_server.requests[0]
    assert line == "POST /odoo-webhook?x=1 HTTP/1.1"
    assert headers["x-idempotency-key"] == "expense:42:k"
    assert headers["x-ipai-signature"] == wh.sign("s3cret", headers["x-ipai-timestamp"], body)
    assert headers["content-type"] == "application/json"


def test_an_oversized_answer_is_read_only_up_to_the_limit(scripted_server):
    scripted_server.script = [("status", 202, {"id": "e", "pad": "x" * 200000}, {})]
    resp = send(scripted_server.url())
    assert resp.status == 202 and isinstance(resp.body, str) and len(resp.body) <= 64 * 1024


def test_an_https_url_speaks_tls_and_names_the_host(scripted_server):
    """The loopback server speaks plain HTTP: the TLS handshake fails, as a transport
    error naming TLS (proof that https:// URLs are wrapped, with the host for SNI)."""
    seen = []

    def resolver(host, port):
        seen.append((host, port))
        return [("127.0.0.1", scripted_server.port)]

    scripted_server.script = [("silent", 0.5)]
    with pytest.raises(wh.IpaiTransportError, match="TLS|closed|reset|timed out"):
        send("https://bus.test/odoo-webhook", resolver=resolver, timeout=0.3)
    assert seen == [("bus.test", 443)]
