"""Signs (or verifies) one request with a Python library, for the Rust interop tests.

stdin: a JSON object
  {"op": "sign", "scheme": "standard-webhooks", "secret": "whsec_...", "id": "msg_1",
   "timestamp": 1764130000, "body": "..."}          -> the official `standardwebhooks` (PyPI)
  {"op": "sign", "scheme": "ipai", "secret": "...", "key": "k", "timestamp": "1764130000000",
   "body": "..."}                                    -> the Odoo addon's ipai_webhook
  {"op": "verify", "scheme": "standard-webhooks", "secret": "whsec_...", "headers": {...},
   "body": "..."}                                    -> Webhook.verify of the official library
stdout: {"headers": {...}} or {"ok": true|false, "error": "..."}
"""

import datetime as dt
import json
import sys


def main():
    req = json.load(sys.stdin)
    op, scheme = req["op"], req["scheme"]
    if scheme == "standard-webhooks":
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        wh = Webhook(req["secret"])
        if op == "sign":
            ts = dt.datetime.fromtimestamp(int(req["timestamp"]), tz=dt.timezone.utc)
            sig = wh.sign(req["id"], ts, req["body"])
            out = {"headers": {"webhook-id": req["id"], "webhook-timestamp": str(int(req["timestamp"])),
                               "webhook-signature": sig, "content-type": "application/json"}}
        else:
            try:
                wh.verify(req["body"], req["headers"])
                out = {"ok": True}
            except WebhookVerificationError as e:
                out = {"ok": False, "error": str(e)}
    elif scheme == "ipai" and op == "sign":
        from _addon import ipai_webhook

        _body, headers = ipai_webhook.build_request(req["secret"], req["body"], req["key"], req.get("timestamp"))
        out = {"headers": {k.lower(): v for k, v in headers.items()}}
    else:
        raise SystemExit("unsupported request %r/%r" % (op, scheme))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
