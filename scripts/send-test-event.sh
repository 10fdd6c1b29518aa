#!/usr/bin/env bash
# Posts one signed expense.submitted event with curl, signed like Odoo signs (SPEC §3):
# hex HMAC-SHA256 of "<timestamp>.<body>" in x-ipai-signature.
# usage: scripts/send-test-event.sh [URL]
# The secret never goes on a command line (any local user can read those in `ps`): it is
# read from the file named by IPAI_SECRET_FILE, else from SPIN_VARIABLE_ODOO_WEBHOOK_SECRET
# (scripts/env.sh's development default when neither is set); the first entry of a
# comma-separated rotation list signs.
set -euo pipefail
if [ $# -gt 1 ]; then
  echo "send-test-event.sh: the secret is not taken as an argument (it would show in ps);" >&2
  echo "put it in a file and set IPAI_SECRET_FILE=<path>, or set SPIN_VARIABLE_ODOO_WEBHOOK_SECRET" >&2
  exit 2
fi
URL="${1:-http://127.0.0.1:3000/odoo-webhook}"
if [ -n "${IPAI_SECRET_FILE:-}" ]; then
  if [ ! -r "$IPAI_SECRET_FILE" ]; then
    echo "send-test-event.sh: IPAI_SECRET_FILE=$IPAI_SECRET_FILE is not a readable file" >&2
    exit 2
  fi
  IPAI_SIGNING_SECRET="$(cat "$IPAI_SECRET_FILE")"
else
  IPAI_SIGNING_SECRET="${SPIN_VARIABLE_ODOO_WEBHOOK_SECRET:-dev-secret-change-me}"
fi
export IPAI_SIGNING_SECRET
TS="$(date +%s%3N)"
BODY="{\"event_type\":\"expense.submitted\",\"aggregate_type\":\"expense\",\"aggregate_id\":\"42\",\"payload\":{\"expense_id\":42,\"employee_code\":\"E-0042\",\"amount\":1250.5,\"currency\":\"PHP\",\"status\":\"submit\"}}"
# HMAC in-process (python3's hmac), the key passed through the environment.
SIG="$(printf '%s.%s' "$TS" "$BODY" | python3 -c '
import hmac, hashlib, os, sys
key = next((s.strip() for s in os.environ["IPAI_SIGNING_SECRET"].split(",") if s.strip()), "")
if not key:
    sys.exit("send-test-event.sh: the signing secret is empty")
print(hmac.new(key.encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())')"
curl -sS -X POST "$URL" \
  -H 'content-type: application/json' \
  -H "x-ipai-timestamp: $TS" \
  -H "x-ipai-signature: $SIG" \
  -H "x-idempotency-key: test-$TS" \
  --data-binary "$BODY"
echo
