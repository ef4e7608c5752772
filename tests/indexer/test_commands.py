"""``rx index`` / ``python -m rxchain.indexer``: the commands on the scripted workload."""

from __future__ import annotations

import json

from click.testing import CliRunner

from rxchain.indexer.commands import main, standalone


def invoke(*args):
    result = CliRunner(mix_stderr=False).invoke(standalone, list(args), catch_exceptions=False)
    return result


def test_run_status_and_verify_commands(client, scenario, db_url):
    target = ["--registry", client.address, "--deploy-block", str(client.deploy_block), "--db", db_url]
    rpc = ["--rpc", client.w3.provider.endpoint_uri, "--json"]
    result = invoke(*rpc, "run", *target)
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["events"] > 0 and stats["lastBlock"] == client.w3.eth.block_number

    again = json.loads(invoke(*rpc, "run", *target).stdout)
    assert again["events"] == 0

    status = json.loads(invoke(*rpc, "status", "--db", db_url).stdout)
    assert status["summary"]["issued"] == len(scenario.prescriptions)
    assert status["rows"]["events"] == stats["events"]

    checked = invoke(*rpc, "verify", "--db", db_url, "--all")
    assert checked.exit_code == 0 and json.loads(checked.stdout) == {"ok": True, "problems": []}

    from rxchain.indexer.db import Database

    conn = Database(db_url).connect()
    with conn.transaction():
        conn.execute("DELETE FROM events WHERE name = 'PrescriptionCancelled'")
    conn.close()
    failed = invoke(*rpc, "verify", "--db", db_url, "--sample", "500")
    assert failed.exit_code == 1 and "PrescriptionCancelled" in failed.stdout


def test_seed_then_run_from_the_deployment_record(deployment, scenario, tmp_path, monkeypatch):
    from rxchain.chain.deployment import save_deployment

    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    save_deployment(deployment)
    db = str(tmp_path / "index.sqlite")
    seeded = invoke("--network", "local", "--json", "seed", "--days", "1", "--per-day", "4", "--seed", "test")
    assert seeded.exit_code == 0, seeded.stderr
    assert json.loads(seeded.stdout)["prescriptions"] == 4
    result = invoke("--network", "local", "--json", "run", "--db", db)
    assert result.exit_code == 0, result.stderr
    status = json.loads(invoke("--network", "local", "--json", "status", "--db", db).stdout)
    assert status["summary"]["issued"] == len(scenario.prescriptions) + 4
    assert status["boxes"] == deployment.boxes  # the record's DrugBoxes is followed beside the registry
    refused = invoke("--network", "besu", "seed")
    assert refused.exit_code != 0 and "devnet only" in refused.stderr


def test_the_standalone_command_ends_a_named_error_as_rx_does(tmp_path, capsys):
    try:
        main(["totals", "--db", str(tmp_path / "empty.sqlite")])
        code = 0
    except SystemExit as exit_:
        code = exit_.code

    err = " ".join(capsys.readouterr().err.split())
    assert code == 4 and "Traceback" not in err
    assert err.startswith("error: ") and "empty.sqlite holds no index: build one first (rx index run)" in err
