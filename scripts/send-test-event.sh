#!/usr/bin/env bash
# Posts one signed expense.submitted event with curl + openssl (SPEC §3), like Odoo does.
# usage: scripts/send-test-event.sh [URL] [SECRET]
set -euo pipefail
URL="${1:-http://127.0.0.1:3000/odoo-webhook}"
SECRET="${2:-${SPIN_VARIABLE_ODOO_WEBHOOK_SECRET:-dev-secret-change-me}}"
SECRET="${SECRET%%,*}"   # sign with the first secret of a rotation list
TS="$(date +%s%3N)"
BODY="{\"event_type\":\"expense.submitted\",\"aggregate_type\":\"expense\",\"aggregate_id\":\"42\",\"payload\":{\"expense_id\":42,\"employee_code\":\"E-0042\",\"amount\":1250.5,\"currency\":\"PHP\",\"status\":\"submit\"}}"
SIG="$(printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
curl -sS -X POST "$URL" \
  -H 'content-type: application/json' \
  -H "x-ipai-timestamp: $TS" \
  -H "x-ipai-signature: $SIG" \
  -H "x-idempotency-key: test-$TS" \
  --data-binary "$BODY"
echo
