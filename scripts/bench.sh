#!/usr/bin/env bash
# `make bench`: runs `ipai bench` against the system under each available runtime (the
# local host always; real Spin when a CLI is found), each on a fresh database, and leaves
# the merged report in target/bench/report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
SERVER="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
REPORT=target/bench/report.json
mkdir -p target/bench target/test-logs
rm -f "$REPORT"
SPIN="$(find_spin)"
RUNTIMES="local"; [ -n "$SPIN" ] && RUNTIMES="local spin"

for rt in $RUNTIMES; do
  DB="ipai_bench_$(date +%s)_$rt"
  URL="$SERVER/$DB?sslmode=disable"
  target/release/ipai migrate --database-url "$URL" >/dev/null
  PORT=$((39000 + RANDOM % 1000))
  export SPIN_VARIABLE_DB_URL="$URL" SPIN_VARIABLE_DB_HOST="127.0.0.1:5432"
  export SPIN_VARIABLE_ODOO_WEBHOOK_SECRET="bench-secret"
  if [ "$rt" = spin ]; then CMD=("$SPIN" up --from spin.toml --listen "127.0.0.1:$PORT")
  else CMD=(target/release/ipai-spin-host up --from spin.toml --listen "127.0.0.1:$PORT"); fi
  "${CMD[@]}" > "target/test-logs/bench-$rt.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  set +e
  target/release/ipai bench --runtime "$rt" --url "http://127.0.0.1:$PORT/odoo-webhook" \
    --secret bench-secret --database-url "$URL" --host-pid "$PID" --out "$REPORT" ${BENCH_ARGS:-}
  rc=$?
  set -e
  kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
  psql "$SERVER/postgres" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  [ $rc -eq 0 ] || { echo "bench under $rt failed (log: target/test-logs/bench-$rt.log)" >&2; exit $rc; }
done
echo; echo "== $REPORT"; cat "$REPORT"
