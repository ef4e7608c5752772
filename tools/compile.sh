#!/usr/bin/env bash
# Compiles the contracts. ape-solidity's incremental build can miss a contract whose IMPORT changed
# (seen: an edited base contract left the derived contract's ABI and bytecode stale), so whenever any
# source or the compiler settings change, this forces a full build; otherwise it is a no-op check.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamp=".build/.sources-stamp"
key="$( (find contracts -name '*.sol' -not -path 'contracts/.cache/*' -print0 | sort -z | xargs -0 sha256sum; sha256sum ape-config.yaml package-lock.json) | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ -f .build/__local__.json ] && [ "$(cat "$stamp")" = "$key" ]; then
  exit 0
fi
ape compile --force
echo "$key" > "$stamp"
