# Shared defaults for make targets. Sourced, not run.
# DATABASE_URL: local PostgreSQL; Spin needs ?sslmode=disable for a server without a
# CA-signed certificate, so a loopback URL without sslmode gets it added.
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ipai?sslmode=disable}"
case "$DATABASE_URL" in
  *sslmode=*) ;;
  *://*@127.0.0.1[:/]*|*://127.0.0.1[:/]*|*://*@localhost[:/]*|*://localhost[:/]*)
    case "$DATABASE_URL" in *\?*) DATABASE_URL="$DATABASE_URL&sslmode=disable" ;; *) DATABASE_URL="$DATABASE_URL?sslmode=disable" ;; esac ;;
esac
export DATABASE_URL
# host:port of DATABASE_URL, for allowed_outbound_hosts.
DB_HOST="$(printf '%s' "$DATABASE_URL" | sed -E 's#^[a-z]+://([^@/]*@)?([^/?]*).*#\2#')"
case "$DB_HOST" in *:*) ;; *) DB_HOST="$DB_HOST:5432" ;; esac
# The app connects as its own login roles ipai_app and ipai_ingest (created by the
# migrations, not superusers, with connection limits): DATABASE_URL with its user (and
# password) replaced.
# DATABASE_URL itself (a role that may create databases and roles) is for migrations.
DATABASE_URL_APP="${DATABASE_URL_APP:-$(printf '%s' "$DATABASE_URL" | sed -E 's#^([a-z]+://)([^@/]*@)?#\1ipai_app@#')}"
export DATABASE_URL_APP
export SPIN_VARIABLE_DB_URL="${SPIN_VARIABLE_DB_URL:-$DATABASE_URL_APP}"
# Ingest connects as ipai_ingest: a connection budget of its own.
DATABASE_URL_INGEST="${DATABASE_URL_INGEST:-$(printf '%s' "$DATABASE_URL" | sed -E 's#^([a-z]+://)([^@/]*@)?#\1ipai_ingest@#')}"
export DATABASE_URL_INGEST
export SPIN_VARIABLE_DB_URL_INGEST="${SPIN_VARIABLE_DB_URL_INGEST:-$DATABASE_URL_INGEST}"
# /health and /metrics connect as ipai_probe: EXECUTE on the probe functions only and a
# budget of 4 connections, so anonymous probes never take delivery's connections.
DATABASE_URL_PROBE="${DATABASE_URL_PROBE:-$(printf '%s' "$DATABASE_URL" | sed -E 's#^([a-z]+://)([^@/]*@)?#\1ipai_probe@#')}"
export DATABASE_URL_PROBE
export SPIN_VARIABLE_DB_URL_PROBE="${SPIN_VARIABLE_DB_URL_PROBE:-$DATABASE_URL_PROBE}"
export SPIN_VARIABLE_DB_HOST="${SPIN_VARIABLE_DB_HOST:-$DB_HOST}"
# Development secret: override with SPIN_VARIABLE_ODOO_WEBHOOK_SECRET in any real setup.
export SPIN_VARIABLE_ODOO_WEBHOOK_SECRET="${SPIN_VARIABLE_ODOO_WEBHOOK_SECRET:-dev-secret-change-me}"
LISTEN="${LISTEN:-127.0.0.1:3000}"
export LISTEN

# The Spin CLI to use, if any: SPIN_BIN, else `spin` on PATH.
find_spin() {
  if [ -n "${SPIN_BIN:-}" ] && [ -x "$SPIN_BIN" ]; then echo "$SPIN_BIN"; return; fi
  command -v spin 2>/dev/null || true
}

# For tests and benchmarks also the bundle `make spin-cli` unpacks from ../shared/spin.
find_spin_any() {
  local s; s="$(find_spin)"
  if [ -z "$s" ]; then s="$(ls target/spin-cli/spin-*/bin/spin 2>/dev/null | head -n1 || true)"; fi
  echo "$s"
}
export SPIN_VARIABLE_DISPATCH_TOKEN="${SPIN_VARIABLE_DISPATCH_TOKEN:-dev-dispatch-token-change-me}"
# One token per door (SPEC §15): the dispatcher → handlers, and the cron's ops calls.
export SPIN_VARIABLE_HANDLER_TOKEN="${SPIN_VARIABLE_HANDLER_TOKEN:-dev-handler-token-change-me}"
export SPIN_VARIABLE_OPS_TOKEN="${SPIN_VARIABLE_OPS_TOKEN:-dev-ops-token-change-me}"
# Ops dashboard (/ops, user "ops"): development password; set your own anywhere real.
export SPIN_VARIABLE_OPS_PASSWORD="${SPIN_VARIABLE_OPS_PASSWORD:-dev-ops-password-change-me}"
# MCP: development bearer token, and the read-only role on the same database.
export SPIN_VARIABLE_MCP_TOKEN="${SPIN_VARIABLE_MCP_TOKEN:-dev-mcp-token-change-me}"
DATABASE_URL_READONLY="${DATABASE_URL_READONLY:-$(printf '%s' "$DATABASE_URL" | sed -E 's#^([a-z]+://)([^@/]*@)?#\1integration_reader@#')}"
export SPIN_VARIABLE_DB_URL_READONLY="${SPIN_VARIABLE_DB_URL_READONLY:-$DATABASE_URL_READONLY}"
export SPIN_VARIABLE_PUBLIC_BASE_URL="${SPIN_VARIABLE_PUBLIC_BASE_URL:-http://$LISTEN}"
export SPIN_VARIABLE_HANDLER_BASE_URL="${SPIN_VARIABLE_HANDLER_BASE_URL:-http://$LISTEN}"
# Handlers and approvals (docs/handlers.md): development signing key for the Mattermost
# buttons; the outside services (Mattermost, Resend, Google, Odoo) stay unconfigured
# unless SPIN_VARIABLE_* say otherwise, and events needing them wait and retry.
export SPIN_VARIABLE_MATTERMOST_ACTION_SECRET="${SPIN_VARIABLE_MATTERMOST_ACTION_SECRET:-dev-mattermost-action-secret-change-me}"
