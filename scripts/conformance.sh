#!/usr/bin/env bash
# Spin's conformance suite (fermyon/conformance-tests at the pinned commit, the one real
# Spin 4.0.2 passes) for the capabilities the local host implements, against the local host
# and, when a Spin CLI is available, against real Spin. Ends with one summary line,
# `conformance: local 5/5, spin 5/5`; exits 1 when a test fails.
#
# usage: scripts/conformance.sh [--from-bundle-if-present]
#
# The suite is not vendored (its code stays upstream) and is not published on a package
# registry, so it needs a copy: CONFORMANCE_TESTS_DIR = a clone or checkout of
# fermyon/conformance-tests (a bare clone works) that holds the pinned commit, else the git
# bundle in ../shared/spin-conformance/, cloned into target/conformance-tests.git. Without
# either, it says how to get one and exits 2 (`make conformance`); with
# --from-bundle-if-present (`make test`) it says in one line that it skipped the suite and
# exits 0. The test components
# are built here as upstream builds them (cargo, wasm32-unknown-unknown, the suite's
# Cargo.lock) into target/conformance/target.
set -euo pipefail
cd "$(dirname "$0")/.."

from_bundle=
case "${1:-}" in
  --from-bundle-if-present) from_bundle=1 ;;
  "") ;;
  *) echo "usage: $0 [--from-bundle-if-present]" >&2; exit 2 ;;
esac

COMMIT=61f2799f92b5d85f342cc07e3f5dec5cd0a7bc9c
TESTS=(request-shape variables postgres outbound-wasi-http-v0.2.0 outbound-wasi-http-v0.2.0-no-perms)
OUT="$PWD/target/conformance"
SUITE="$OUT/suite-${COMMIT:0:7}"
BUNDLE_DIR=../shared/spin-conformance
CLONE="$PWD/target/conformance-tests.git"

has_commit() { [ -n "$1" ] && git -C "$1" cat-file -e "$COMMIT^{commit}" 2>/dev/null; }

if [ ! -f "$SUITE/.complete" ]; then
  src="${CONFORMANCE_TESTS_DIR:-}"
  bundle="$(ls "$BUNDLE_DIR"/conformance-tests-*.bundle 2>/dev/null | head -n1 || true)"
  if [ -z "$src" ] && [ -n "$bundle" ]; then
    if ! has_commit "$CLONE"; then
      rm -rf "$CLONE"
      git -c init.defaultBranch=pinned clone -q --bare "$bundle" "$CLONE"
    fi
    src="$CLONE"
  fi
  if [ -z "$src" ] && [ -n "$from_bundle" ]; then
    echo "conformance: skipped (no $BUNDLE_DIR/conformance-tests-*.bundle beside the checkout, CONFORMANCE_TESTS_DIR unset)"
    exit 0
  fi
  if ! has_commit "$src"; then
    echo "conformance: no copy of fermyon/conformance-tests holding commit ${COMMIT:0:7}." >&2
    echo "  Set CONFORMANCE_TESTS_DIR to a clone of it (git clone, a bare mirror, or a clone of" >&2
    echo "  $BUNDLE_DIR/conformance-tests-${COMMIT:0:7}.bundle) and rerun." >&2
    exit 2
  fi
  rm -rf "$SUITE" && mkdir -p "$SUITE"
  git -C "$src" archive "$COMMIT" | tar -x -C "$SUITE"
  touch "$SUITE/.complete"
fi
echo "== conformance suite fermyon/conformance-tests@${COMMIT:0:7} ($SUITE)"

# Test components, as the suite's packager builds them.
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
packages=()
for t in "${TESTS[@]}"; do
  for c in $(grep -o '%{source=[^}]*}' "$SUITE/tests/$t/spin.toml" | sed -E 's/%\{source=(.*)\}/\1/'); do
    packages+=(-p "$(sed -nE 's/^name *= *"([^"]+)".*/\1/p' "$SUITE/components/$c/Cargo.toml" | head -n1)")
  done
done
(cd "$SUITE" && cargo build --release --locked --target wasm32-unknown-unknown \
  --target-dir "$OUT/target" "${packages[@]}")

# Runtimes: the local host always (built by make: `make conformance` and `make test` depend on
# it); real Spin when one is found (SPIN_BIN, PATH, make spin-cli).
if [ ! -x target/release/ipai-spin-host ]; then
  echo "conformance: target/release/ipai-spin-host is missing: run 'make host' first" >&2
  exit 2
fi
runtimes=(--runtime "local=$PWD/target/release/ipai-spin-host up --from spin.toml")
spin="${SPIN_BIN:-$(command -v spin 2>/dev/null || ls target/spin-cli/spin-*/bin/spin 2>/dev/null | head -n1 || true)}"
if [ -n "$spin" ] && [ -x "$spin" ]; then
  echo "== real Spin: $("$spin" --version)"
  runtimes+=(--runtime "spin=$(cd "$(dirname "$spin")" && pwd)/$(basename "$spin") up")
else
  echo "== real Spin leg skipped: no spin CLI (set SPIN_BIN, put spin on PATH, or run 'make spin-cli')"
  runtimes+=(--skipped "spin=no spin CLI")
fi

python3 scripts/conformance.py --suite "$SUITE" \
  --components "$OUT/target/wasm32-unknown-unknown/release" \
  --workdir "$OUT/run" "${runtimes[@]}" "${TESTS[@]}"
