#!/usr/bin/env bash
# The README's main command (make demo): the local devnet, the registry, and prescriptions taken
# through their whole life with the `rx` command — first in one go (rx demo), then step by step
# with the commands a hospital, a pharmacy and a courier would type.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/env.sh

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
run() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; "$@"; }

run rx devnet up
run rx deploy
run rx demo

out=.rxchain/demo
mkdir -p "$out"
printf '\n%s--- the same, one command at a time ---%s\n' "$bold" "$plain"
printf '\n%s$ rx issue --drug "Ibuprofen 400 mg tablet" --dosage "1 tablet every 8 hours" --quantity 9 --unit tablet --supply-days 3 --as doctor --out %s --json%s\n' "$bold" "$out" "$plain"
issued="$(rx issue --drug "Ibuprofen 400 mg tablet" --dosage "1 tablet every 8 hours" --quantity 9 --unit tablet \
  --supply-days 3 --as doctor --out "$out" --json)"
id="$(printf '%s' "$issued" | python -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
qr="$(printf '%s' "$issued" | python -c 'import json,sys; print(json.load(sys.stdin)["qrPng"])')"
echo "issued $id; the patient's QR code: $qr"
run rx show --qr-image "$qr"
run rx redeem --qr-image "$qr" --as pharmacy
run rx dispatch "$id" --courier courier --as pharmacy
run rx deliver "$id" --as courier
run rx confirm --qr-image "$qr" --as courier
run rx trail "$id"
printf '\nThe pharmacy dApp: rx dapp (then open http://127.0.0.1:8600). Stop the devnet: make devnet-down.\n'
