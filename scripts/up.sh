#!/usr/bin/env bash
# `make up`: build, create + migrate the database, then serve the app with the Spin CLI
# when one is available (RUNTIME=spin|local|auto), else the local host.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

RUNTIME="${RUNTIME:-auto}"
SPIN="$(find_spin)"
if [ "$RUNTIME" = auto ]; then RUNTIME=$([ -n "$SPIN" ] && echo spin || echo local); fi
if [ "$RUNTIME" = spin ] && [ -z "$SPIN" ]; then
  echo "RUNTIME=spin but no spin CLI found (set SPIN_BIN or put spin on PATH)" >&2; exit 1
fi

# Never beyond this machine with the development secrets (SPEC §15).
scripts/refuse-dev-secrets.sh

target/release/ipai migrate --database-url "$DATABASE_URL"

cat <<MSG

  IPAI integration bus — runtime: $RUNTIME
  Ingest URL:  http://$LISTEN/odoo-webhook   (also /functions/v1/odoo-webhook)
  Send a signed test event from another terminal:
    scripts/send-test-event.sh http://$LISTEN/odoo-webhook

MSG
if [ "$RUNTIME" = spin ]; then
  exec "$SPIN" up --from spin.toml --listen "$LISTEN"
else
  exec target/release/ipai-spin-host up --from spin.toml --listen "$LISTEN"
fi
