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
mkdir -p -m 700 "$out"
field() { python -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
printf '\n%s--- the same, one command at a time: the hospital, the patient'"'"'s app, the pharmacy, the courier ---%s\n' "$bold" "$plain"
printf '\n%s$ rx issue --drug "Ibuprofen 400 mg tablet" --dosage "1 tablet every 8 hours" --quantity 9 --unit tablet --supply-days 3 --as doctor --json%s\n' "$bold" "$plain"
issued="$(rx issue --drug "Ibuprofen 400 mg tablet" --dosage "1 tablet every 8 hours" --quantity 9 --unit tablet \
  --supply-days 3 --as doctor --json)"
id="$(printf '%s' "$issued" | field id)"
# What the patient's app scans at the desk; kept here only for this demo (readable by you alone).
(umask 077 && printf '%s' "$issued" | field payload > "$out/patient-app.rxqr")
echo "issued $id; the patient's app took the prescription code home (the key stays with the patient)"
request="$(rx consent-request --as pharmacy --json | field code)"
run rx consent-request --as pharmacy
run rx patient consent --code "@$out/patient-app.rxqr" --request "$request"
auth="$(rx patient consent --code "@$out/patient-app.rxqr" --request "$request" --json | field code)"
run rx redeem --code "$auth" --as pharmacy
run rx dispatch "$id" --courier courier --as pharmacy
delivery="$(rx delivery-request "$id" --as courier --json | field code)"
run rx delivery-request "$id" --as courier
receipt="$(rx patient receive --code "@$out/patient-app.rxqr" --request "$delivery" --json | field code)"
run rx deliver "$id" --receipt "$receipt" --as courier
run rx trail "$id"
rm -f "$out/patient-app.rxqr"
printf '\nThe pharmacy dApp: rx serve (then open http://127.0.0.1:8600/dapp/). Stop the devnet: make devnet-down.\n'
