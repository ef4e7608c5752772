"""Measure each operation's gas on an ephemeral chain and print it beside its budget and floor.

``ape run gas_report`` (ape's local network: its own throwaway anvil). The LAST line printed is one
JSON object mapping operation names to gas used: issue, redeem, dispatch, deliver, confirm, cancel,
and lifecycle (the five steps together).
"""

import json

from ape import networks
from ape.logging import logger
from rich.console import Console

from rxchain.client import RegistryClient
from rxchain.deploy import deploy_registry
from rxchain.gas import floors, gas_table
from rxchain.identities import dev_accounts
from rxchain.lifecycle import demo_document, run_lifecycle
from rxchain.workflow import issue_prescription


def main():
    provider = networks.provider
    w3 = provider.web3
    ids = dev_accounts()
    deployment = deploy_registry(w3, ids["regulator"], network=provider.network.name, record=False)
    client = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block)
    console = Console(stderr=True)
    result = run_lifecycle(client, ids, console)

    # cancel: a second prescription, withdrawn by its doctor
    spare = issue_prescription(client, ids["doctor"], demo_document(ids["doctor"].address, client.latest_block_time()))
    cancelled = client.cancel(ids["doctor"], spare.rx_id)

    gas = dict(result.gas)
    gas["cancel"] = cancelled.gas_used
    calldata = {}
    hashes = {s.step: s.tx_hash for s in result.steps}
    for op, step in (("issue", "issued"), ("redeem", "redeemed"), ("dispatch", "dispatched"),
                     ("deliver", "delivered"), ("confirm", "received")):  # fmt: skip
        calldata[op] = bytes(w3.eth.get_transaction(hashes[step])["input"])
    calldata["cancel"] = bytes(w3.eth.get_transaction(cancelled.tx_hash)["input"])

    Console().print(gas_table({k: gas[k] for k in ("issue", "redeem", "dispatch", "deliver", "confirm", "cancel", "lifecycle")}, floors(calldata)))
    logger.set_level("WARNING")  # the JSON line stays the last line: no "stopping anvil" after it
    print(json.dumps({k: gas[k] for k in ("issue", "redeem", "dispatch", "deliver", "confirm", "cancel", "lifecycle")}))
