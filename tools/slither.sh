#!/usr/bin/env bash
# Static analysis of the contracts with Slither, through the offline solc wrapper (combined-JSON mode).
# Fails on any medium or high finding; lower ones are printed. Each accepted finding is explained in
# the code where it stands (slither-disable comments).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
solc="$(ls .solcx/solc-v* | head -n 1)"
evm="$(python3 -c "import yaml; print(yaml.safe_load(open('ape-config.yaml'))['solidity']['evm_version'])" 2>/dev/null || echo london)"
for contract in contracts/PrescriptionRegistry.sol contracts/ConsortiumPermissioning.sol contracts/DrugBoxes.sol; do
  slither "$contract" --solc "$solc" --solc-remaps "@openzeppelin/contracts=node_modules/@openzeppelin/contracts" \
    --solc-args "--optimize --evm-version $evm" --filter-paths node_modules \
    --exclude-informational --exclude-optimization --fail-medium "$@"
done
