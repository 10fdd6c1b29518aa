"""Signed delivery of one event to the IPAI integration bus (SPEC §3).

Standard library only (``http.client``), so it runs inside Odoo without extra packages.

The IPAI scheme::

    x-ipai-timestamp:  Unix time in milliseconds, as a decimal string
    x-ipai-signature:  lowercase hex HMAC-SHA256(secret, "{x-ipai-timestamp}.{raw body}")
    x-idempotency-key: 1-255 printable ASCII characters, stable across retries
    content-type:      application/json

Usage (the seed's pattern)::

    from odoo.addons.ipai_enterprise_bridge.utils.ipai_webhook import send_ipai_event
    resp = send_ipai_event(url, secret, event, idempotency_key="expense:42:expense.submitted:...")
    if resp.accepted: ...

The secret is never logged, and never appears in exceptions or ``repr`` output.
"""

import base64
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse

__all__ = [
    "IpaiConfigError",
    "IpaiResponse",
    "IpaiTransportError",
    "Timeouts",
    "build_request",
    "canonical_body",
    "default_idempotency_key",
    "send_ipai_event",
    "sign",
    "sign_standard_webhook",
    "signing_secret",
    "timestamp_ms",
]

USER_AGENT = "ipai-enterprise-bridge/18.0 (+odoo)"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_DNS_TIMEOUT = 5.0
# Responses are small JSON objects; never read more than this from the wire.
_MAX_RESPONSE_BYTES = 64 * 1024


class IpaiTransportError(Exception):
    """The request did not get an HTTP answer (DNS, refused connection, timeout, TLS)."""


class IpaiResponse:
    """What the bus answered: HTTP status, the parsed JSON body (or raw text), headers."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, status, body, headers=None):
        self.status = int(status)
        self.body = body
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    @property
    def accepted(self):
        """2xx: stored (202 queued) or already stored (200 duplicate)."""
        return 200 <= self.status < 300

    @property
    def duplicate(self):
        return isinstance(self.body, dict) and self.body.get("status") == "duplicate"

    @property
    def event_id(self):
        return self.body.get("id") if isinstance(self.body, dict) else None

    @property
    def error_code(self):
        return self.body.get("error") if isinstance(self.body, dict) else None

    @property
    def retry_after(self):
        """Seconds from a numeric ``Retry-After`` header, else None."""
        value = self.headers.get("retry-after")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None

    @property
    def location(self):
        """Where a 3xx answer points (credentials and query removed), else None."""
        value = self.headers.get("location")
        return _safe_url(value) if value else None

    @property
    def redirect(self):
        return 300 <= self.status < 400

    def describe(self):
        """One line for a log or a human: status, machine code, message (no secrets)."""
        if self.redirect:
            return (
                "HTTP %d redirect to %s not followed (a POST is never redirected): if that is the bus, "
                "set ipai.webhook.url to it" % (self.status, self.location or "<no Location header>")
            )
        if isinstance(self.body, dict):
            code = self.body.get("error") or self.body.get("status") or ""
            msg = self.body.get("message") or ""
            text = " ".join(p for p in (str(code), str(msg)) if p)
        else:
            text = str(self.body or "")[:300]
        return ("HTTP %d %s" % (self.status, text)).strip()

    def __repr__(self):
        return "IpaiResponse(%s)" % self.describe()


def signing_secret(secret):
    """The secret to sign with: the first entry of a comma-separated rotation list."""
    if secret is None:
        raise ValueError("IPAI webhook secret is not configured")
    for part in str(secret).split(","):
        if part.strip():
            return part.strip()
    raise ValueError("IPAI webhook secret is empty")


def canonical_body(event):
    """The exact bytes to send. dict -> compact UTF-8 JSON (key order kept);
    str/bytes are taken as already serialised (a queued body is resent byte for byte)."""
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode("utf-8")
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def timestamp_ms(now=None):
    """Unix time in milliseconds as a string (``now`` in seconds, default: the clock)."""
    return str(int(round((time.time() if now is None else now) * 1000)))


def sign(secret, timestamp, body):
    """Lowercase hex HMAC-SHA256(secret, "{timestamp}.{body}")."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    msg = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(signing_secret(secret).encode("utf-8"), msg, hashlib.sha256).hexdigest()


def sign_standard_webhook(secret, msg_id, timestamp, body):
    """Standard Webhooks ``v1,<base64>`` over "{id}.{timestamp}.{body}", secret ``whsec_<b64>``."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    b64 = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    key = base64.b64decode(b64 + "=" * (-len(b64) % 4))
    msg = ("%s.%s." % (msg_id, timestamp)).encode("utf-8") + body
    return "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode("ascii")


def default_idempotency_key(event, body=None):
    """A key derived from the event itself, so resending the same event dict dedupes:
    ``{aggregate_type}:{aggregate_id}:{event_type}:sha256(body)[:24]``."""
    if body is None:
        body = canonical_body(event)
    digest = hashlib.sha256(body).hexdigest()[:24]
    if isinstance(event, dict):
        parts = [event.get("aggregate_type"), event.get("aggregate_id"), event.get("event_type")]
        prefix = ":".join(str(p) for p in parts if p not in (None, ""))
    else:
        prefix = "event"
    key = "%s:%s" % (prefix, digest)
    key = "".join(c if 0x20 < ord(c) < 0x7F else "_" for c in key)
    return key[-255:]


def build_request(secret, event, idempotency_key=None, timestamp=None):
    """(body bytes, headers) of a signed request; pure, for tests and custom transports."""
    body = canonical_body(event)
    ts = str(timestamp) if timestamp is not None else timestamp_ms()
    key = idempotency_key or default_idempotency_key(event, body)
    headers = {
        "Content-Type": "application/json",
        "X-Ipai-Timestamp": ts,
        "X-Ipai-Signature": sign(secret, ts, body),
        "X-Idempotency-Key": key,
        "User-Agent": USER_AGENT,
    }
    return body, headers


def _parse(raw, content_type):
    text = raw.decode("utf-8", "replace")
    if "json" in (content_type or "") or text[:1] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


# ------------------------------------------------------------------------- transport
#
# ``http.client`` directly rather than ``urllib``: urllib follows redirects (a 301/302
# turns the POST into a GET without body, a 307/308 can loop) and bounds neither DNS
# nor the connect phase separately. Here every phase has its own bound, nothing is
# followed, and every failure is one of two exception types.


class IpaiConfigError(ValueError):
    """The configured URL or secret cannot be used (no scheme, unknown scheme, no host,
    bad port, no secret): nothing was sent; a human must fix the configuration."""


def parse_url(url):
    """(scheme, host, port, path-with-query) of an ingest URL, or IpaiConfigError."""
    if not url or not str(url).strip():
        raise IpaiConfigError("IPAI webhook URL is not configured")
    try:
        parts = urllib.parse.urlsplit(str(url).strip())
        port = parts.port
    except ValueError as e:
        raise IpaiConfigError("IPAI webhook URL %r is not a URL: %s" % (_safe_url(url), e)) from None
    if parts.scheme not in ("http", "https"):
        raise IpaiConfigError(
            "IPAI webhook URL %r must start with http:// or https://" % (_safe_url(url),)
        )
    if not parts.hostname:
        raise IpaiConfigError("IPAI webhook URL %r has no host" % (_safe_url(url),))
    port = port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def _system_resolver(host, port):
    return [info[4] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolve(host, port, timeout, resolver=None):
    """The addresses of ``host``, waiting at most ``timeout`` seconds.

    ``getaddrinfo`` has no timeout of its own (a dead resolver blocks for the system's
    retries, often 20 s and more): it runs in a daemon thread and is abandoned when late.
    """
    resolver = resolver or _system_resolver
    box = {}

    def work():
        try:
            box["addrs"] = resolver(host, port)
        except Exception as e:  # noqa: BLE001 (reported below)
            box["error"] = e

    worker = threading.Thread(target=work, name="ipai-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise IpaiTransportError("DNS lookup of %s took longer than %.3g s" % (host, timeout))
    if "error" in box:
        raise IpaiTransportError("DNS lookup of %s failed: %s" % (host, box["error"]))
    if not box.get("addrs"):
        raise IpaiTransportError("DNS lookup of %s returned no address" % (host,))
    return box["addrs"]


def _connect(addrs, connect_timeout):
    last = None
    for addr in addrs:
        try:
            return socket.create_connection(addr[:2], timeout=connect_timeout)
        except OSError as e:
            last = e
    raise last


class _Connection(http.client.HTTPConnection):
    """An HTTP(S) connection whose DNS, connect and read phases are each bounded."""

    def __init__(self, scheme, host, port, timeouts, resolver=None):
        # The Host header omits the port when it is the scheme's default.
        self.default_port = 443 if scheme == "https" else 80
        super().__init__(host, port, timeout=timeouts.read)
        self._scheme = scheme
        self._timeouts = timeouts
        self._resolver = resolver

    def connect(self):
        addrs = resolve(self.host, self.port, self._timeouts.dns, self._resolver)
        sock = _connect(addrs, self._timeouts.connect)
        if self._scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        sock.settimeout(self._timeouts.read)
        self.sock = sock


class Timeouts:
    """Seconds allowed to each phase of one request: DNS lookup, TCP (and TLS) connect,
    and each wait for the answer's bytes (the whole answer is at most 64 KiB)."""

    __slots__ = ("dns", "connect", "read")

    def __init__(self, read=DEFAULT_TIMEOUT, connect=None, dns=None):
        self.read = float(read)
        self.connect = float(connect if connect is not None else min(self.read, DEFAULT_CONNECT_TIMEOUT))
        self.dns = float(dns if dns is not None else min(self.read, DEFAULT_DNS_TIMEOUT))

    def __repr__(self):
        return "Timeouts(dns=%g, connect=%g, read=%g)" % (self.dns, self.connect, self.read)


def _describe_failure(url, error):
    if isinstance(error, socket.timeout) or isinstance(error, TimeoutError):
        what = "timed out (%s)" % (error or "no answer in time")
    elif isinstance(error, http.client.IncompleteRead):
        what = "the answer was cut off (%d bytes read, more expected)" % len(error.partial)
    elif isinstance(error, http.client.LineTooLong):
        what = "the answer had an over-long line (%s)" % error
    elif isinstance(error, http.client.RemoteDisconnected):
        what = "the server closed the connection without answering"
    elif isinstance(error, ConnectionResetError):
        what = "the connection was reset"
    elif isinstance(error, ConnectionRefusedError):
        what = "connection refused"
    elif isinstance(error, ssl.SSLError):
        what = "TLS failed (%s)" % (error.reason or error)
    else:
        what = "%s: %s" % (error.__class__.__name__, error)
    return "no answer from %s: %s" % (_safe_url(url), what)


def _read_body(resp):
    """At most 64 KiB of the answer; an answer cut off before its announced length is an
    ``IncompleteRead`` (``read(amt)`` alone would return the fragment silently)."""
    raw = resp.read(_MAX_RESPONSE_BYTES)
    missing = resp.length or 0
    if missing and len(raw) < _MAX_RESPONSE_BYTES:
        raise http.client.IncompleteRead(raw, missing)
    return raw


def send_ipai_event(url, secret, event, idempotency_key=None, timeout=DEFAULT_TIMEOUT, timestamp=None,
                    connect_timeout=None, dns_timeout=None, resolver=None):
    """POST one signed event to the bus.

    ``event`` is the envelope dict (``event_type``, ``aggregate_type``, ``aggregate_id``,
    ``payload``, optional ``occurred_at``/``source``) or an already serialised body.
    Returns an :class:`IpaiResponse` for every HTTP answer, 3xx/4xx/5xx included (a
    redirect is never followed: a POST must not turn into a GET or loop). Raises
    :class:`IpaiConfigError` for an unusable URL or secret (nothing sent) and
    :class:`IpaiTransportError` when there is no complete answer. ``timeout`` bounds each
    read; ``connect_timeout`` and ``dns_timeout`` default to at most 5 s each.
    Without ``idempotency_key`` a key derived from the event's content is used.
    """
    scheme, host, port, path = parse_url(url)
    try:
        body, headers = build_request(secret, event, idempotency_key, timestamp)
    except ValueError as e:
        raise IpaiConfigError(str(e)) from None
    conn = _Connection(scheme, host, port, Timeouts(timeout, connect_timeout, dns_timeout), resolver)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = _read_body(resp)
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return IpaiResponse(resp.status, _parse(raw, hdrs.get("content-type")), hdrs)
    except IpaiTransportError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise IpaiTransportError(_describe_failure(url, e)) from None
    finally:
        conn.close()


def _safe_url(url):
    """The URL without userinfo or query string (which could carry credentials)."""
    try:
        p = urllib.parse.urlsplit(str(url))
        if not p.scheme or not p.netloc:
            return p.path.split("@")[-1][:200]
        host = p.hostname or ""
        if p.port:
            host = "%s:%d" % (host, p.port)
        return "%s://%s%s" % (p.scheme, host, p.path)
    except ValueError:
        return "<invalid url>"
