#!/usr/bin/env bash
# Sets up everything rxchain needs on a fresh machine with python3.11, node and npm:
# a virtualenv with the locked Python set, the locked npm packages (solc, OpenZeppelin, anvil, ethers),
# and the offline Solidity compiler wrapper. Idempotent: a second run only checks stamps.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || { echo "setup: $python not found (rxchain needs Python 3.11)" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "setup: node and npm are required" >&2; exit 1; }

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# System packages the tests use: Debian's chromium (browser tests) and PostgreSQL (the index's
# PostgreSQL variant; the tests start their own throwaway server). Installed when missing and this
# runs as root with apt-get; otherwise the test run names them at its end and fails.
missing=()
command -v chromium >/dev/null 2>&1 || [ -x "${RXCHAIN_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "setup: installing ${missing[*]} (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: WARNING: ${missing[*]} missing and not root with apt-get: the tests that need them will not run" >&2
    echo "setup:          (sudo apt-get install -y ${missing[*]}; or RXCHAIN_ALLOW_SKIPS=1 make test to accept it)" >&2
  fi
fi

# Python: the whole resolved set from requirements.lock, then the project itself (editable).
py_key="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if ! stamp_ok .venv/.rxchain-stamp "$py_key"; then
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e ".[test]"
  echo "$py_key" > .venv/.rxchain-stamp
  echo "setup: Python environment ready (.venv)"
fi

# npm: exactly what package-lock.json says.
npm_key="$(sha256sum package-lock.json | cut -c1-16)"
if ! stamp_ok node_modules/.rxchain-stamp "$npm_key"; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_key" > node_modules/.rxchain-stamp
  echo "setup: npm packages ready (node_modules)"
fi

# The solc wrapper where py-solc-x / ape-solidity look.
bash tools/install-solc.sh

# anvil: link the platform's native binary into the venv, so signals reach it directly.
native_anvil="$(ls node_modules/@foundry-rs/anvil-*/bin/anvil 2>/dev/null | head -n 1 || true)"
if [ -n "$native_anvil" ] && [ "$(readlink .venv/bin/anvil 2>/dev/null)" != "$root/$native_anvil" ]; then
  ln -sf "$root/$native_anvil" .venv/bin/anvil
fi
