#!/usr/bin/env bash
# Runs the end-to-end suites (tests/tests/*.rs) under one runtime and prints a tally line.
# usage: scripts/test-e2e.sh local|spin
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
rt="${1:-local}"
if [ "$rt" = spin ]; then
  SPIN="$(find_spin_any)"
  if [ -z "$SPIN" ]; then
    echo "== Spin leg skipped: no spin CLI (set SPIN_BIN, put spin on PATH, or run 'make spin-cli')"
    exit 0
  fi
  export SPIN_BIN="$SPIN"
  echo "== end-to-end suites under real Spin: $("$SPIN" --version)"
else
  echo "== end-to-end suites under the local host"
fi
log="target/test-logs/e2e-$rt.txt"
mkdir -p target/test-logs
set +e
IPAI_RUNTIME="$rt" cargo test --release -p ipai-tests --tests 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "e2e-$rt: $passed passed, $failed failed"
exit "$rc"
