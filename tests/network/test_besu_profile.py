"""The `besu` network profile end to end, on a chain that stands where a Besu node would.

No Besu runs on these machines, so a separate anvil with the Besu network's chain id, free gas and
the project's hardfork plays the node. What this checks is OUR side: ape-config.yaml's `besu`
network (RPC URL from $RXCHAIN_BESU_RPC), `ape run deploy` unchanged on it, real-key signers (no
development identities), and free-gas legacy transactions (type 0, gas price 0) from the client.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from eth_account import Account
from web3 import Web3

from rxchain.dev.anvil import Anvil
from rxchain.cli import main as cli
from rxchain.paths import evm_version, network_chain_id, project_root, tool_env

REGULATOR_KEY = "0x" + "a1" * 32
HOSPITAL_KEY = "0x" + "a2" * 32
DOCTOR_KEY = "0x" + "a3" * 32
PHARMACY_KEY = "0x" + "a4" * 32


@pytest.fixture(scope="module")
def besu_like_node():
    with Anvil.start(chain_id=network_chain_id("besu"), accounts=0) as node:  # no funded accounts, as on Besu
        yield node.url


@pytest.fixture(scope="module")
def besu_env(besu_like_node, tmp_path_factory):
    deployments = tmp_path_factory.mktemp("deployments")
    env = {
        "RXCHAIN_BESU_RPC": besu_like_node,
        "RXCHAIN_DEPLOYMENTS": str(deployments),
        "RXCHAIN_DEPLOYER": "env:RX_REGULATOR_KEY",
        "RX_REGULATOR_KEY": REGULATOR_KEY,
        "RX_HOSPITAL_KEY": HOSPITAL_KEY,
        "RX_DOCTOR_KEY": DOCTOR_KEY,
        "RX_PHARMACY_KEY": PHARMACY_KEY,
    }
    deploy = subprocess.run(
        ["ape", "run", "deploy", "--network", "ethereum:besu:node"],
        cwd=project_root(),
        env={**tool_env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    return env


@pytest.fixture
def rx(besu_env, monkeypatch, tmp_path, capsys):
    for key, value in besu_env.items():
        monkeypatch.setenv(key, value)

    def run(*args: str):
        capsys.readouterr()
        try:
            cli.main(["--network", "besu", "--outbox", str(tmp_path / "o.sqlite"), "--json", *args])
        except SystemExit as exit_:
            assert exit_.code == 0, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    return run


def test_deploy_script_records_the_besu_deployment(besu_env, besu_like_node):
    record = json.loads(open(os.path.join(besu_env["RXCHAIN_DEPLOYMENTS"], "besu.json")).read())

    assert record["chain_id"] == network_chain_id("besu")
    assert record["rpc_url"] == besu_like_node
    assert record["regulator"] == Account.from_key(REGULATOR_KEY).address
    assert record["evm_version"] == evm_version()
    tx = Web3(Web3.HTTPProvider(besu_like_node)).eth.get_transaction(record["deploy_tx"])
    assert tx["type"] == 0 and tx["gasPrice"] == 0


def test_members_and_a_prescription_with_real_key_signers(rx, besu_like_node, tmp_path):
    hospital = Account.from_key(HOSPITAL_KEY).address
    doctor = Account.from_key(DOCTOR_KEY).address
    pharmacy = Account.from_key(PHARMACY_KEY).address
    rx("member", "add", hospital, "hospital", "--as", "env:RX_REGULATOR_KEY")
    rx("member", "add", pharmacy, "pharmacy", "--as", "env:RX_REGULATOR_KEY")
    rx("member", "add", doctor, "doctor", "--as", "env:RX_HOSPITAL_KEY")

    issued = rx("issue", "--drug", "Ibuprofen 400 mg tablet", "--out", str(tmp_path), "--as", "env:RX_DOCTOR_KEY")
    redeemed = rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "env:RX_PHARMACY_KEY")

    w3 = Web3(Web3.HTTPProvider(besu_like_node))
    for tx_hash in (issued["txHash"], redeemed["txHash"]):
        tx = w3.eth.get_transaction(tx_hash)
        assert tx["type"] == 0 and tx["gasPrice"] == 0
        assert w3.eth.get_balance(tx["from"]) == 0  # members hold no ether: free gas
    assert rx("show", issued["id"])["status"] == "dispensed"


def test_development_identities_are_refused_off_the_devnet(besu_env, monkeypatch, capsys):
    for key, value in besu_env.items():
        monkeypatch.setenv(key, value)
    cli.main(["--network", "besu", "member", "list"])  # reading needs no signer
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--network", "besu", "cancel", "0x" + "11" * 32, "--as", "regulator"])
    assert exit_.value.code == cli.EXIT_BAD_INPUT
    assert "development identities are for the devnet only" in capsys.readouterr().err
