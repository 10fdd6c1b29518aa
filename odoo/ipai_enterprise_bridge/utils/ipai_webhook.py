"""Signed delivery of one event to the IPAI integration bus (SPEC §3).

Standard library only (``urllib``), so it runs inside Odoo without extra packages.

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
import json
import socket
import time
import urllib.error
import urllib.request

__all__ = [
    "IpaiResponse",
    "IpaiTransportError",
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

    def describe(self):
        """One line for a log or a human: status, machine code, message (no secrets)."""
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


def send_ipai_event(url, secret, event, idempotency_key=None, timeout=DEFAULT_TIMEOUT, timestamp=None):
    """POST one signed event to the bus.

    ``event`` is the envelope dict (``event_type``, ``aggregate_type``, ``aggregate_id``,
    ``payload``, optional ``occurred_at``/``source``) or an already serialised body.
    Returns an :class:`IpaiResponse` for every HTTP answer, 4xx/5xx included; raises
    :class:`IpaiTransportError` when there is no answer. Without ``idempotency_key`` a
    key derived from the event's content is used, so a retry of the same event dedupes.
    """
    if not url:
        raise ValueError("IPAI webhook URL is not configured")
    body, headers = build_request(secret, event, idempotency_key, timestamp)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (configured URL)
            raw = resp.read(_MAX_RESPONSE_BYTES)
            return IpaiResponse(resp.status, _parse(raw, resp.headers.get("content-type")), dict(resp.headers))
    except urllib.error.HTTPError as e:
        try:
            raw = e.read(_MAX_RESPONSE_BYTES)
        except Exception:  # the body of an error answer is best effort
            raw = b""
        hdrs = dict(e.headers) if e.headers else {}
        return IpaiResponse(e.code, _parse(raw, hdrs.get("Content-Type") or hdrs.get("content-type")), hdrs)
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise IpaiTransportError("no answer from %s: %s" % (_safe_url(url), reason)) from None


def _safe_url(url):
    """The URL without userinfo or query string (which could carry credentials)."""
    try:
        from urllib.parse import urlsplit

        p = urlsplit(url)
        host = p.hostname or ""
        if p.port:
            host = "%s:%d" % (host, p.port)
        return "%s://%s%s" % (p.scheme, host, p.path)
    except ValueError:
        return "<invalid url>"
