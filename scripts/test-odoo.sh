#!/usr/bin/env bash
# The addon inside a real Odoo 18.0 (from ../shared/odoo18, prepared by scripts/odoo-setup.sh):
#   1. install: `-i ipai_enterprise_bridge` on a fresh database; any WARNING, ERROR or
#      CRITICAL line in the log (Odoo's deprecation warnings included) fails the run;
#   2. server tests: Odoo's own runner, `--test-tags /ipai_enterprise_bridge`, on that database;
#   3. upgrade: the previous release (git tag of 18.0.1.0.0, from this repository's history)
#      installed and seeded, upgraded to the current addon, its migration's result checked.
# Prints one tally line per step and exits non-zero on any failure. Databases are fresh per
# run (named after this process) and dropped at the end, but for a copy of the clean install
# kept as the template the Odoo loop suite (tests/tests/odoo_loop.rs) starts its databases
# from; its name is written to target/odoo18/loop-template.
# usage: scripts/test-odoo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The release before the current one: its manifest says 18.0.1.0.0.
PREVIOUS_RELEASE=40ebe42

eval "$(scripts/odoo-setup.sh | tail -n1)"
if [ -n "${ODOO_SKIP:-}" ]; then
  echo "odoo: skipped ($ODOO_SKIP)"
  exit 0
fi

# One run at a time on a machine: the logs and the loop template are shared.
exec 9>"$PWD/target/odoo18/test-odoo.lock"
flock 9
logs="$PWD/target/test-logs/odoo"
mkdir -p "$logs"
run="ipai_odoo_$$"
created=()
cleanup() {
  for db in "${created[@]}"; do dropdb -h 127.0.0.1 -U postgres --if-exists "$db" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# odoo_bin ADDONS_DIR LOGFILE ARGS...: one odoo-bin run that stops after init.
odoo_bin() {
  local addons="$1" logfile="$2"; shift 2
  rm -f "$logfile"
  "$ODOO_HOME/venv/bin/python" "$ODOO_HOME/src/odoo-bin" \
    --addons-path="$ODOO_HOME/src/odoo/addons,$ODOO_HOME/src/addons,$addons" \
    --db_host 127.0.0.1 --db_port 5432 --db_user odoo18_test --db_password odoo18_test \
    --data-dir "$PWD/target/odoo18/data" --http-interface 127.0.0.1 --http-port "$(free_port)" \
    --stop-after-init --logfile "$logfile" "$@" 2> >(grep -v "Running as user 'root'" >&2)
}

# clean_log STEP LOGFILE: fails the run on any WARNING/ERROR/CRITICAL line.
clean_log() {
  local bad
  bad="$(grep -E '^[0-9-]+ [0-9:,]+ [0-9]+ (WARNING|ERROR|CRITICAL) ' "$2" || true)"
  if [ -n "$bad" ]; then
    echo "odoo $1: the log has warnings or errors ($2):"
    printf '%s\n' "$bad" | head -n 20
    return 1
  fi
}

# odoo_shell ADDONS_DIR DB SCRIPT: runs a Python file in `odoo-bin shell`, prints its output.
odoo_shell() {
  "$ODOO_HOME/venv/bin/python" "$ODOO_HOME/src/odoo-bin" shell \
    --addons-path="$ODOO_HOME/src/odoo/addons,$ODOO_HOME/src/addons,$1" \
    --db_host 127.0.0.1 --db_port 5432 --db_user odoo18_test --db_password odoo18_test \
    --data-dir "$PWD/target/odoo18/data" --no-http --log-level warn -d "$2" < "$3" 2>&1
}

status=0

# 1. install
db="${run}_install"
created+=("$db")
start=$SECONDS
odoo_bin "$PWD/odoo" "$logs/install.log" -d "$db" -i ipai_enterprise_bridge --without-demo=all
modules="$(grep -Eo '[0-9]+ modules loaded' "$logs/install.log" | tail -n1 | cut -d' ' -f1)"
if clean_log install "$logs/install.log"; then
  echo "odoo install: ${modules:-?} modules, no warning ($((SECONDS - start)) s)"
  # The loop suite's template: this clean install (the previous one is replaced).
  # Named after this checkout too: two checkouts on one machine keep templates of their own.
  template="ipai_odoo_loop_$(printf '%s' "$PWD" | sha256sum | cut -c1-6)_${ODOO_HOME##*/}"
  dropdb -h 127.0.0.1 -U postgres --if-exists "$template" 2>/dev/null
  createdb -h 127.0.0.1 -U postgres -O odoo18_test -T "$db" "$template"
  echo "$template" > target/odoo18/loop-template
else
  status=1
  rm -f target/odoo18/loop-template
fi

# 2. server tests (post_install tests run on the installed database)
start=$SECONDS
set +e
odoo_bin "$PWD/odoo" "$logs/server-tests.log" -d "$db" --test-enable --test-tags /ipai_enterprise_bridge
rc=$?
set -e
result="$(grep -Eo '[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests' "$logs/server-tests.log" | tail -n1 || true)"
if [ -z "$result" ]; then
  echo "odoo server tests: no result line (rc=$rc); the end of $logs/server-tests.log:"
  tail -n 30 "$logs/server-tests.log"
  status=1
else
  read -r failed _ errors _ _ total _ <<<"$result"
  grep -E ' (ERROR|FAIL): ' "$logs/server-tests.log" | head -n 20 || true
  echo "odoo server tests: $total run, $failed failed, $errors errors ($((SECONDS - start)) s)"
  echo "odoo-server: $((total - failed - errors)) passed, $((failed + errors)) failed"
  if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$errors" -ne 0 ] || [ "$total" -eq 0 ]; then status=1; fi
fi

# 3. upgrade from the previous release
start=$SECONDS
prev="$PWD/target/odoo18/addon-$PREVIOUS_RELEASE"
if [ ! -f "$prev/.complete" ]; then
  rm -rf "$prev" && mkdir -p "$prev"
  git archive "$PREVIOUS_RELEASE" odoo/ipai_enterprise_bridge | tar -x -C "$prev" --strip-components=1
  touch "$prev/.complete"
fi
up="${run}_upgrade"
created+=("$up")
odoo_bin "$prev" "$logs/upgrade-install-previous.log" -d "$up" -i ipai_enterprise_bridge --without-demo=all
seeded="$(odoo_shell "$prev" "$up" odoo/upgrade/seed_previous.py)"
odoo_bin "$PWD/odoo" "$logs/upgrade.log" -d "$up" -u ipai_enterprise_bridge
checked="$(odoo_shell "$PWD/odoo" "$up" odoo/upgrade/check_upgraded.py)"
if grep -q 'UPGRADE-SEED OK' <<<"$seeded" && grep -q 'UPGRADE-CHECK OK' <<<"$checked" && clean_log upgrade "$logs/upgrade.log"; then
  echo "odoo upgrade 18.0.1.0.0 -> $(grep -Eo '"version": "[^"]+"' odoo/ipai_enterprise_bridge/__manifest__.py | cut -d'"' -f4): migrated and checked ($((SECONDS - start)) s)"
else
  echo "odoo upgrade: failed"
  printf '%s\n%s\n' "$seeded" "$checked" | tail -n 20
  status=1
fi

exit "$status"
