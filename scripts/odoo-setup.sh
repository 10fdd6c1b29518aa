#!/usr/bin/env bash
# Prepares a real Odoo 18.0 for the addon's server tests and the Odoo loop suite, from the
# archive in ../shared/odoo18 (test input: extracted here, never copied into the repository).
#
# Everything lands under target/odoo18/<first 12 hex of the archive's sha256>/ (source tree,
# Python venv, a `ready` stamp), so a rerun with the same archive costs a hash and a stat.
# Also makes sure the database role Odoo connects as exists (Odoo refuses the superuser).
#
# Prints one line `ODOO_HOME=<dir>` on success (the caller evals it), or, when no archive is
# present, `ODOO_SKIP=<reason>` and exits 0: a laptop without ../shared still runs `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

archive="${ODOO_ARCHIVE:-$(ls ../shared/odoo18/odoo-18.0-*.tar.zst 2>/dev/null | head -n1 || true)}"
if [ -z "$archive" ] || [ ! -f "$archive" ]; then
  echo "ODOO_SKIP='no Odoo 18 archive (../shared/odoo18/odoo-18.0-*.tar.zst or ODOO_ARCHIVE)'"
  exit 0
fi

hash="$(sha256sum "$archive" | cut -c1-12)"
home="$PWD/target/odoo18/$hash"
log="$PWD/target/odoo18/setup-$hash.log"
mkdir -p "$PWD/target/odoo18"

if [ ! -f "$home/ready" ]; then
  echo "Odoo 18: preparing $home (log: $log)" >&2
  rm -rf "$home"
  mkdir -p "$home/src"
  command -v zstd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd; } >>"$log" 2>&1
  command -v pg_config >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpq-dev; } >>"$log" 2>&1
  tar -I zstd -xf "$archive" -C "$home/src" --strip-components=1
  {
    python3 -m venv "$home/venv"
    "$home/venv/bin/pip" install -q -U pip wheel 'setuptools<70' 'setuptools_scm<8'
    # cbor2 5.4.2 has no cp311 wheel; its sdist needs pkg_resources and setuptools_scm.
    "$home/venv/bin/pip" install -q --no-build-isolation cbor2==5.4.2
    # python-ldap serves only auth_ldap, which the addon's closure does not install.
    grep -v '^python-ldap' "$home/src/requirements.txt" > "$home/requirements.txt"
    "$home/venv/bin/pip" install -q -r "$home/requirements.txt"
  } >>"$log" 2>&1 || { echo "Odoo 18 setup failed; the end of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }
  touch "$home/ready"
fi

# The role Odoo connects as: may create its test databases, is not a superuser.
role="${ODOO_DB_USER:-odoo18_test}"
psql -h 127.0.0.1 -U postgres -d postgres -qtAc "SELECT 1 FROM pg_roles WHERE rolname = '$role'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$role'" >/dev/null
echo "ODOO_HOME=$home"
