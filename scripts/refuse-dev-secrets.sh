#!/usr/bin/env bash
# `make up` must never serve beyond this machine with the development secrets of
# scripts/env.sh (SPEC §15): anyone who reads this repository knows them. While LISTEN is
# not a loopback address (127.0.0.0/8, ::1, localhost), every SPIN_VARIABLE_* whose value is
# still a development default (`dev-…-change-me`) is named and the start is refused (exit 2).
# usage: scripts/refuse-dev-secrets.sh   (reads LISTEN and SPIN_VARIABLE_* from the environment)
set -euo pipefail
listen="${LISTEN:-127.0.0.1:3000}"
host="${listen%:*}"
host="${host#[}"
host="${host%]}"
case "$host" in
  127.* | localhost | ::1) exit 0 ;;
esac
dev=()
while IFS= read -r name; do
  case "${!name}" in *change-me*) dev+=("$name") ;; esac
done < <(compgen -e | grep '^SPIN_VARIABLE_' | sort)
if [ ${#dev[@]} -gt 0 ]; then
  {
    echo "make up: refusing to listen on $listen (not a loopback address) while these secrets"
    echo "are still their development defaults from scripts/env.sh:"
    printf '  %s\n' "${dev[@]}"
    echo "Set each to a secret of your own (e.g. export NAME=\"\$(openssl rand -hex 32)\"), or"
    echo "listen on loopback only (LISTEN=127.0.0.1:3000)."
  } >&2
  exit 2
fi
