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

printf '\n%s--- drug boxes: the manufacturer registers a lot, the pharmacy scans the fill'"'"'s boxes ---%s\n' "$bold" "$plain"
# Three boxes with fresh 20-digit codes (the clock in them: a rerun on the same devnet needs new codes).
stamp="$(date +%s)"
printf 'code\n69%s00000001\n69%s00000002\n69%s00000003\n' "$stamp" "$stamp" "$stamp" > "$out/codes.csv"
run rx box register --csv "$out/codes.csv" --expires-days 365 --as manufacturer
lot="$(ls -t .rxchain/lots/*.boxes.csv | head -1)"
box() { sed -n "$(($1 + 2))p" "$lot" | awk -F, '{print $2":"$3}'; }  # line 1 is the header
run rx box dispense "$id" --scan "RXS1:$(box 0)" --scan "RXS1:$(box 1)" --lot .rxchain/lots --as pharmacy
run rx dispatch "$id" --courier courier --as pharmacy
delivery="$(rx delivery-request "$id" --as courier --json | field code)"
run rx delivery-request "$id" --as courier
receipt="$(rx patient receive --code "@$out/patient-app.rxqr" --request "$delivery" --json | field code)"
run rx deliver "$id" --receipt "$receipt" --as courier
run rx trail "$id"

printf '\n%s--- the insurer: the pharmacy claims the received fill once, the insurer approves and pays ---%s\n' "$bold" "$plain"
opening="$(rx claim file "$id" --insurer insurer --amount total=1280 --amount copay=256 --insurance-ref DEMO-INS-0001 \
  --as pharmacy --json | field opening)"
echo "claim filed; its opening (amounts, insurance reference) went to $opening, off chain"
run rx claim approve "$id" --fills-left 0 --payment-ref "DEMO-PAY-$stamp" --opening "$opening" --as insurer
run rx claim show "$id"
run rx box check "$(box 2 | cut -d: -f1)" "$(box 2 | cut -d: -f2)" --lot .rxchain/lots
printf '\n%s$ rx box check <a box of the fill, scanned again>%s\n' "$bold" "$plain"
rx box check "$(box 0 | cut -d: -f1)" "$(box 0 | cut -d: -f2)" --lot .rxchain/lots || echo "(exit $?: sold once already)"
rm -f "$out/codes.csv"
rm -f "$out/patient-app.rxqr"
printf '\nThe pharmacy dApp: rx serve (then open http://127.0.0.1:8600/dapp/). Stop the devnet: make devnet-down.\n'
