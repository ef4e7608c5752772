"""The gas budgets set for the registry (issue 11's hardening, issue 12's patient-held key) and for boxes
and claims (issue 14), measured by
``make gas`` (scripts/gas_report.py)."""

from __future__ import annotations

import json
import runpy

from rxchain.paths import project_root

BUDGETS = {
    "issue": 57_000,
    "redeem": 45_000,
    "issue_batch_per_rx": 3_000,
    "lifecycle_4tx": 180_000,
    "lifecycle_counter": 180_000,
    "redeem_paper_slip": 50_000,
    # issue 14: per box registered in a lot of 10,000; what each box adds to a fill; a whole fill of
    # 5 (a ceiling against regressions, see docs/boxes-and-claims.md); one claim.
    "box_register_per_box": 500,
    "box_dispense_marginal_per_box": 8_000,
    "box_dispense_5": 110_000,
    "claim_file": 60_000,
}


def test_hardened_registry_cannot_exceed_its_gas_budgets_when_measured(capsys):
    runpy.run_path(str(project_root() / "scripts" / "gas_report.py"))["main"]()
    gas = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    over = {op: (gas[op], budget) for op, budget in BUDGETS.items() if gas[op] > budget}
    assert not over, f"over budget (measured, budget): {over}"
    assert min(gas["lifecycle"], gas["lifecycle_4tx"]) <= 180_000
