#!/usr/bin/env bash
# Installs the solcjs wrapper where py-solc-x and ape-solidity look for compilers:
# $SOLCX_BINARY_PATH/solc-v<version> (default .solcx/ in the checkout), and as the venv's `solc`.
# Idempotent. py-solc-x copies the file it finds, so the shim holds absolute paths and depends on
# nothing beside it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="$root/node_modules/solc"
[ -f "$module/package.json" ] || { echo "install-solc: run 'npm ci' first ($module missing)" >&2; exit 1; }
version="$(node -p "require('$module/package.json').version")"
bin_dir="${SOLCX_BINARY_PATH:-$root/.solcx}"
target="$bin_dir/solc-v$version"
if ! { [ -x "$target" ] && grep -q "$root/tools/solc-wrapper.cjs" "$target" 2>/dev/null; }; then
  mkdir -p "$bin_dir"
  full="$(node -p "require('$module').version()")"
  tmp="$(mktemp "$bin_dir/.solc.XXXXXX")"
  cat > "$tmp" <<SHIM
#!/bin/sh
RXCHAIN_SOLC_MODULE='$module' RXCHAIN_SOLC_FULL_VERSION='$full' exec node '$root/tools/solc-wrapper.cjs' "\$@"
SHIM
  chmod +x "$tmp"
  mv "$tmp" "$target"
  echo "install-solc: solc $full -> $target"
fi

# A plain `solc` in the venv is this wrapper too (Slither and crytic-compile call `solc`; solc-select,
# which slither-analyzer brings, would otherwise put a downloader there).
venv_solc="$root/.venv/bin/solc"
if [ -d "$root/.venv/bin" ] && [ "$(readlink "$venv_solc" 2>/dev/null)" != "$target" ]; then
  ln -sf "$target" "$venv_solc"
fi
