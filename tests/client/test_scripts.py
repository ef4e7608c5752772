"""The ape scripts themselves (scripts/*.py), run in the suite against the ephemeral chain."""

from __future__ import annotations

import json
import runpy

from rxchain.chain.deployment import save_deployment
from rxchain.paths import project_root
from rxchain.core.status import Status


def script(name: str):
    return runpy.run_path(str(project_root() / "scripts" / f"{name}.py"))["main"]


def test_deploy_script_deploys_a_live_registry(w3):
    deployment = script("deploy")()

    assert deployment.network == "local"
    assert w3.eth.get_code(deployment.registry)
    assert deployment.chain_id == w3.eth.chain_id


def test_lifecycle_script_prints_the_five_step_trail(deployment, monkeypatch, tmp_path, capsys, client):
    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path))
    save_deployment(deployment)

    result = script("lifecycle")()

    out = capsys.readouterr().out
    for step in ("issued", "redeemed", "dispatched", "delivered", "received"):
        assert step in out
    assert [s.step for s in result.steps] == ["issued", "redeemed", "dispatched", "delivered", "received"]
    assert client.prescription(result.issued.rx_id).status is Status.COMPLETED


def test_gas_report_prints_its_json_last(capsys):
    script("gas_report")()

    last = capsys.readouterr().out.strip().splitlines()[-1]
    gas = json.loads(last)
    assert set(gas) >= {"issue", "redeem", "dispatch", "deliver", "confirm", "cancel", "lifecycle"}
    assert gas["lifecycle"] == sum(gas[k] for k in ("issue", "redeem", "dispatch", "deliver", "confirm"))
    # every whole transaction pays at least the 21,000 of a transaction; a per-prescription or per-box share need not
    shares = {
        "issue_batch_per_rx",
        "box_register_per_box",
        "box_dispense_5_per_box",
        "box_dispense_20_per_box",
        "box_dispense_marginal_per_box",
    }
    assert all(isinstance(v, int) for v in gas.values())
    assert all(v > 21_000 for k, v in gas.items() if k not in shares)
