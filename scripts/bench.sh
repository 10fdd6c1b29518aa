#!/usr/bin/env bash
# `make bench`: runs `ipai-bench` against the system under each available runtime (the
# local host always; real Spin when a CLI is found), each phase on a fresh database:
#   shipped  — what users run: spin.toml with every default (kick, cron, chaining, the
#              app's roles and limits), the expense handler calling Odoo and Mattermost
#              stand-ins; a burst of expense.submitted, then until every event is done
#   shipped-one-call — the same with expense.rejected: one outside call (Mattermost)
#   ingest   — diagnostic: kick off and no cron trigger, so only ingest runs (nothing dispatches the
#              bench's events on the same cores): throughput, latency at half peak, raw SQL
#              baseline
#   dispatch — diagnostic: kick on, handlers = a trivial loopback handler in the bench process:
#              pending→done throughput and end-to-end latency at a fixed rate
#   reconcile — what shipped does with one hour of 10,000 sent rows digested (SPEC §11): the
#              digests (split under 256 KiB) posted signed, bus time until all are handled
#   replay   — `ipai replay` (no runtime: the CLI and PostgreSQL): the dry run of 100,000 done
#              events, then their execution while ingest keeps storing
# The merged report is target/bench/report.json. BENCH_ARGS adds flags to every phase;
# BENCH_PHASES and BENCH_RUNTIMES pick a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
SERVER="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}"
REPORT=target/bench/report.json
mkdir -p target/bench target/test-logs
[ -n "${BENCH_RUNTIMES:-}" ] || rm -f "$REPORT"
SPIN="$(find_spin_any)"
RUNTIMES="local"; [ -n "$SPIN" ] && RUNTIMES="local spin"
RUNTIMES="${BENCH_RUNTIMES:-$RUNTIMES}"
# spin.toml without its [[trigger.cron]] table, sources made absolute, for the ingest phase.
ingest_manifest() {
  python3 - "$PWD" target/bench/ingest-spin.toml <<'PY'
import re, sys
root, out = sys.argv[1], sys.argv[2]
text = open(f"{root}/spin.toml").read().replace('source = "target/', f'source = "{root}/target/')
text = re.sub(r'\n\[\[trigger\.cron\]\]\n.*?(?=\n\[)', '', text, flags=re.S)
assert "trigger.cron" not in text
open(out, "w").write(text)
PY
  echo target/bench/ingest-spin.toml
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run_phase() { # runtime phase
  local rt=$1 phase=$2
  local db="ipai_bench_$(date +%s)_${rt}_${phase//-/_}"
  local url="$SERVER/$db?sslmode=disable"
  local port hport oport mport
  port=$(free_port); hport=$(free_port); oport=$(free_port); mport=$(free_port)
  target/release/ipai migrate --database-url "$url" >/dev/null
  # Count calls of the queue's SQL functions (per event figures of the shipped phase).
  psql "$SERVER/postgres" -q -c "ALTER DATABASE $db SET track_functions = 'pl'" >/dev/null
  local -a env=(
    SPIN_VARIABLE_DB_URL="$(printf '%s' "$url" | sed -E 's#^([a-z]+://)([^@/]*@)?#\1ipai_app@#')"
    SPIN_VARIABLE_DB_URL_INGEST="$(printf '%s' "$url" | sed -E 's#^([a-z]+://)([^@/]*@)?#\1ipai_ingest@#')"
    SPIN_VARIABLE_DB_HOST="127.0.0.1:5432"
    SPIN_VARIABLE_ODOO_WEBHOOK_SECRET=bench-secret SPIN_VARIABLE_DISPATCH_TOKEN=bench-token
    SPIN_VARIABLE_PUBLIC_BASE_URL="http://127.0.0.1:$port"
  )
  if [ "$phase" = ingest ]; then
    # The Standard Webhooks secret, so the stuffed-signature probe reaches the entry limit.
    env+=(SPIN_VARIABLE_DISPATCH_KICK=off
          SPIN_VARIABLE_STANDARD_WEBHOOKS_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw)
  elif [ "${phase#shipped}" != "$phase" ] || [ "$phase" = reconcile ]; then
    env+=(SPIN_VARIABLE_ODOO_URL="http://127.0.0.1:$oport" SPIN_VARIABLE_ODOO_DB=bench
          SPIN_VARIABLE_ODOO_USER=bench SPIN_VARIABLE_ODOO_API_KEY=bench-key
          SPIN_VARIABLE_MATTERMOST_ORIGIN="http://127.0.0.1:$mport"
          SPIN_VARIABLE_MATTERMOST_WEBHOOK_URL="http://127.0.0.1:$mport/hooks/bench"
          SPIN_VARIABLE_MATTERMOST_USER_MAP="approver@bench.example.com=approver:benchapproverid00000000000")
  else
    env+=(SPIN_VARIABLE_SERVICE_CHAINING=off SPIN_VARIABLE_HANDLER_BASE_URL="http://127.0.0.1:$hport")
  fi
  local manifest=spin.toml
  [ "$phase" = ingest ] && manifest=$(ingest_manifest)
  local -a cmd
  if [ "$rt" = spin ]; then cmd=("$SPIN" up --from "$manifest" --listen "127.0.0.1:$port")
  else cmd=(target/release/ipai-spin-host up --from "$manifest" --listen "127.0.0.1:$port"); fi
  env "${env[@]}" "${cmd[@]}" > "target/test-logs/bench-$rt-$phase.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  set +e
  target/release/ipai-bench --phase "$phase" --runtime "$rt" --url "http://127.0.0.1:$port/odoo-webhook" \
    --secret bench-secret --dispatch-token bench-token --handler-port "$hport" \
    --odoo-port "$oport" --mattermost-port "$mport" \
    --database-url "$url" --host-pid "$pid" --out "$REPORT" ${BENCH_ARGS:-}
  local rc=$?
  set -e
  kill -TERM -- "$pid" 2>/dev/null || true; pkill -P "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  psql "$SERVER/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [ $rc -eq 0 ] || { echo "bench $phase under $rt failed (log: target/test-logs/bench-$rt-$phase.log)" >&2; exit $rc; }
}

run_replay() { # the replay phase: no runtime, the ipai binary against a fresh database
  local db="ipai_bench_$(date +%s)_replay" rc
  local url="$SERVER/$db?sslmode=disable"
  target/release/ipai migrate --database-url "$url" >/dev/null
  set +e
  target/release/ipai-bench --phase replay --secret unused --database-url "$url" --out "$REPORT" ${BENCH_ARGS:-}
  rc=$?
  set -e
  psql "$SERVER/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [ $rc -eq 0 ] || { echo "bench replay failed" >&2; exit $rc; }
}

PHASES="${BENCH_PHASES:-shipped shipped-one-call ingest dispatch reconcile replay}"
for rt in $RUNTIMES; do
  echo "== runtime: $rt"
  for phase in $PHASES; do [ "$phase" = replay ] || run_phase "$rt" "$phase"; done
done
case " $PHASES " in *" replay "*) echo "== replay (no runtime)"; run_replay ;; esac
echo; echo "== $REPORT"; cat "$REPORT"
