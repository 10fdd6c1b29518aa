"""A tiny stand-in for the bus's ingest endpoint (stdlib only), for the pure tests:
verifies the IPAI signature and idempotency key like ingest, remembers what it stored,
and can be told to answer with an outage status."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeBus:
    def __init__(self, secret):
        self.secret = secret
        self.stored = {}  # idempotency key -> (sha256 of body, event)
        self.requests = []  # (headers dict, body bytes)
        self.force_status = None  # e.g. 503 to simulate an outage
        self._server = None
        self._thread = None

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return "http://%s:%d/odoo-webhook" % (host, port)

    def start(self):
        bus = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status, body, headers=()):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                bus.requests.append((headers, body))
                if bus.force_status:
                    return self._answer(bus.force_status, {"error": "forced", "message": "simulated"},
                                        [("retry-after", "1")] if bus.force_status in (429, 503) else [])
                ts = headers.get("x-ipai-timestamp", "")
                expected = hmac.new(bus.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, headers.get("x-ipai-signature", "")):
                    return self._answer(401, {"error": "invalid_signature", "message": "bad signature"})
                if abs(int(ts) - time.time() * 1000) > 300_000:
                    return self._answer(401, {"error": "stale_timestamp", "message": "stale"})
                key = headers.get("x-idempotency-key")
                if not key:
                    return self._answer(400, {"error": "missing_header", "message": "no key"})
                digest = hashlib.sha256(body).hexdigest()
                if key in bus.stored:
                    if bus.stored[key][0] != digest:
                        return self._answer(409, {"error": "idempotency_conflict", "message": "conflict"})
                    return self._answer(200, {"id": "id-" + key, "status": "duplicate"})
                bus.stored[key] = (digest, json.loads(body))
                return self._answer(202, {"id": "id-" + key, "status": "queued"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
