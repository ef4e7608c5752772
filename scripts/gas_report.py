"""Measure each operation's gas on an ephemeral chain and print it beside its budget and floor.

``ape run gas_report`` (ape's local network: its own throwaway anvil). The LAST line printed is one
JSON object mapping operation names to gas used: issue, redeem, dispatch, deliver, confirm, cancel,
lifecycle (the five steps together), and the variants: deliver_with_receipt, lifecycle_4tx (delivery
and receipt in one transaction), issue_batch_256 and issue_batch_per_rx (256 prescriptions in one
batch), redeem_batched (the first fill of a batched prescription, with its proof); and DrugBoxes:
box_register_10000 / box_register_per_box (a lot of 10,000 boxes), box_dispense_N and
box_dispense_N_per_box (a fill of N boxes of one lot, N = 1, 5, 20: the whole transaction, and it
divided by N), box_dispense_marginal_per_box (what each box adds to a fill: (fill of 20 - fill of 1) / 19),
claim_file (a claim for the fill of 5), claim_approve (approved and paid in one transaction),
box_report_duplicate (a sold box scanned again at another pharmacy, reported).
"""

import json

from ape import networks
from ape.logging import logger
from rich.console import Console

from rxchain.chain.boxes import BoxesClient
from rxchain.chain.client import RegistryClient
from rxchain.core import boxes as core
from rxchain.core.insurance import ClaimOpening
from rxchain.chain.deploy import deploy_registry
from rxchain.dev.gas import floors, gas_table
from rxchain.chain.signers import dev_accounts
from rxchain.dev.demo import demo_document, run_lifecycle
from rxchain.workflow import (
    confirm_payload_receipt,
    deliver_with_receipt_code,
    issue_batch,
    issue_on_paper,
    issue_prescription,
    patient_consent,
    patient_receipt,
    redeem_code,
    redeem_payload,
)

ORDER = [
    "issue",
    "redeem",
    "dispatch",
    "deliver",
    "confirm",
    "cancel",
    "lifecycle",
    "deliver_with_receipt",
    "lifecycle_4tx",
    "counter_with_receipt",
    "lifecycle_counter",
    "redeem_paper_slip",
    "issue_batch_256",
    "issue_batch_per_rx",
    "redeem_batched",
    "box_register_10000",
    "box_register_per_box",
    "box_dispense_1",
    "box_dispense_1_per_box",
    "box_dispense_5",
    "box_dispense_5_per_box",
    "box_dispense_20",
    "box_dispense_20_per_box",
    "box_dispense_marginal_per_box",
    "claim_file",
    "claim_approve",
    "box_report_duplicate",
]


def main():
    provider = networks.provider
    w3 = provider.web3
    ids = dev_accounts()
    deployment = deploy_registry(w3, ids["regulator"], network=provider.network.name, record=False)
    client = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block)
    console = Console(stderr=True)
    result = run_lifecycle(client, ids, console)
    gas = dict(result.gas)
    calldata = {}
    hashes = {s.step: s.tx_hash for s in result.steps}
    for op, step in (
        ("issue", "issued"),
        ("redeem", "redeemed"),
        ("dispatch", "dispatched"),
        ("deliver", "delivered"),
        ("confirm", "received"),
    ):
        calldata[op] = _input(w3, hashes[step])

    def fresh():
        return issue_prescription(
            client, ids["doctor"], demo_document(ids["doctor"].address, client.latest_block_time())
        )

    spare = fresh()  # cancel: withdrawn by its doctor
    tx = client.cancel(ids["doctor"], spare.rx_id)
    gas["cancel"], calldata["cancel"] = tx.gas_used, _input(w3, tx.tx_hash)

    one = fresh()  # delivery and receipt in one transaction
    redeem_payload(client, ids["pharmacy"], one.payload_text)
    client.dispatch(ids["pharmacy"], one.rx_id, ids["courier"].address)
    tx = confirm_payload_receipt(client, ids["courier"], one.payload_text, with_delivery=True)
    gas["deliver_with_receipt"], calldata["deliver_with_receipt"] = tx.gas_used, _input(w3, tx.tx_hash)
    gas["lifecycle_4tx"] = gas["issue"] + gas["redeem"] + gas["dispatch"] + gas["deliver_with_receipt"]

    # The cheapest whole life with the patient's receipt: issue, redeem with the patient's app's
    # consent, hand-over at the counter with the receipt the patient's app signed for the pharmacy.
    counter = fresh()
    consent = patient_consent(client, counter.payload_text, client.consent_request(ids["pharmacy"].address).encode())
    _, redeemed = redeem_code(client, ids["pharmacy"], consent.encode())
    receipt = patient_receipt(
        client, counter.payload_text, client.delivery_request(ids["pharmacy"].address, counter.rx_id).encode()
    )
    tx = deliver_with_receipt_code(client, ids["pharmacy"], receipt.encode())
    gas["counter_with_receipt"] = tx.gas_used
    gas["lifecycle_counter"] = counter.tx.gas_used + redeemed.gas_used + tx.gas_used

    # A paper fill slip names no pharmacy: the registry tries the named form first, then the slip's.
    paper = issue_on_paper(client, ids["doctor"], demo_document(ids["doctor"].address, client.latest_block_time()))
    _, tx = redeem_code(client, ids["pharmacy"], paper.fill_slips[0])
    gas["redeem_paper_slip"] = tx.gas_used

    now = client.latest_block_time()
    batch = issue_batch(client, ids["hospital"], [demo_document(ids["doctor"].address, now) for _ in range(256)])
    gas["issue_batch_256"], calldata["issue_batch"] = batch.tx.gas_used, _input(w3, batch.tx.tx_hash)
    gas["issue_batch_per_rx"] = batch.tx.gas_used // 256
    _, tx = redeem_payload(client, ids["pharmacy"], batch.prescriptions[100].payload_text)
    gas["redeem_batched"], calldata["redeem_batched"] = tx.gas_used, _input(w3, tx.tx_hash)

    gas.update(_boxes_and_claims(client, deployment, ids, fresh))

    Console().print(gas_table({k: gas[k] for k in ORDER}, floors(calldata)))
    logger.set_level("WARNING")  # the JSON line stays the last line: no "stopping anvil" after it
    print(json.dumps({k: gas[k] for k in ORDER}))


def _boxes_and_claims(client, deployment, ids, fresh) -> dict[str, int]:
    """DrugBoxes' gas: a lot of 10,000 boxes, fills of 1, 5 and 20 boxes of it (consecutive boxes, as
    they leave a carton), a claim for the fill of 5 and its approval."""
    boxes = BoxesClient.for_deployment(client, deployment)
    made = [core.Box(i, f"{86_000_000_000_000_000_000 + i:020d}", core.new_secret()) for i in range(10_000)]
    lot = core.Lot.from_boxes(made, client.latest_block_time() + 365 * 86_400)
    gas = {"box_register_10000": boxes.register_lot(ids["manufacturer"], lot).gas_used}
    gas["box_register_per_box"] = gas["box_register_10000"] // 10_000
    start, claimable = 1_000, None
    for n in (1, 5, 20):
        issued = fresh()
        redeem_payload(client, ids["pharmacy"], issued.payload_text)
        tx, _ = boxes.dispense(
            ids["pharmacy"], issued.rx_id, [(b.code, b.secret) for b in made[start : start + n]], [lot]
        )
        gas[f"box_dispense_{n}"], gas[f"box_dispense_{n}_per_box"] = tx.gas_used, tx.gas_used // n
        start += 300  # the next fill opens another carton: a bitmap word of its own
        if n == 5:
            claimable = issued
    gas["box_dispense_marginal_per_box"] = (gas["box_dispense_20"] - gas["box_dispense_1"]) // 19
    client.deliver(ids["pharmacy"], claimable.rx_id)
    confirm_payload_receipt(client, ids["pharmacy"], claimable.payload_text)
    opening = ClaimOpening.new({"total": 12_800, "copay": 2_560}, "INS-0000-0001")
    gas["claim_file"] = boxes.file_claim(ids["pharmacy"], claimable.rx_id, 0, ids["insurer"].address, opening).gas_used
    gas["claim_approve"] = boxes.approve(ids["insurer"], claimable.rx_id, 0, "PAY-0001").gas_used
    (again,) = boxes.locate([(made[1_000].code, made[1_000].secret)], [lot])
    gas["box_report_duplicate"] = boxes.report_duplicate(ids["pharmacy2"], again).gas_used
    return gas


def _input(w3, tx_hash: str) -> bytes:
    return bytes(w3.eth.get_transaction(tx_hash)["input"])
