"""The ethers-only third-party script (dapp/third-party-redeem.mjs), and the dApp's canonical JSON and
batch Merkle tree, all run with node and checked against the Python side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import rfc8785
from eth_utils import keccak

from rxchain.core.batch import merkle_proof, merkle_root, verify_proof
from rxchain.chain.deployment import load_abi
from rxchain.core.document import MedicationSpec, build_prescription, document_hash, new_patient_pseudonym
from rxchain.dev.demo import demo_document
from rxchain.paths import project_root, tool_env
from rxchain.core.status import Status

SCRIPT = project_root() / "dapp" / "third-party-redeem.mjs"
RXCORE = project_root() / "dapp" / "rxcore.js"
#: node is a requirement of make setup (solc, anvil and ethers come from npm): no skip without it.
NODE = shutil.which("node", path=tool_env()["PATH"]) or "node"


def node(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NODE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project_root(),
        env={**tool_env(), **(env or {})},
    )


def private_key(account) -> str:
    return "0x" + bytes(account.key).hex()


# ------------------------------------------------------------------------------ third-party script


def test_script_redeems_with_the_interface_abi_and_a_free_gas_legacy_tx(issue, client, ids, deployment, rpc_url, w3):
    issued = issue()
    result = node(
        str(SCRIPT),
        "--rpc",
        rpc_url,
        "--registry",
        deployment.registry,
        "--payload",
        issued.payload_text,
        "--key",
        private_key(ids["pharmacy"]),
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines["redeemed"] == "0x" + issued.rx_id.hex()
    tx = w3.eth.get_transaction(lines["tx"])
    assert tx["type"] == 0 and tx["gasPrice"] == 0 and tx["from"] == ids["pharmacy"].address
    assert lines["block"].startswith(f"{tx['blockNumber']} at ")
    state = client.prescription(issued.rx_id)
    assert state.status is Status.DISPENSED
    assert state.custodian == ids["pharmacy"].address

    again = node(
        str(SCRIPT),
        "--rpc",
        rpc_url,
        "--registry",
        deployment.registry,
        "--payload",
        issued.payload_text,
        "--key",
        private_key(ids["pharmacy"]),
    )
    assert again.returncode == 1
    assert f"refused: AlreadyRedeemed(id=0x{issued.rx_id.hex()})" in again.stderr


def test_script_reads_a_plain_abi_file_stdin_and_env_key(issue, client, ids, deployment, rpc_url, tmp_path):
    """A third party holding only the interface ABI (as a JSON array), the payload on stdin, the key in the
    environment."""
    interface_abi = tmp_path / "IPrescriptionRegistry.json"
    interface_abi.write_text(json.dumps(load_abi("IPrescriptionRegistry")))
    issued = issue(designated_pharmacy=ids["pharmacy2"].address)
    result = node(
        str(SCRIPT),
        "--rpc",
        rpc_url,
        "--registry",
        deployment.registry,
        "--abi",
        str(interface_abi),
        "--payload",
        "-",
        stdin=issued.payload_text,
        env={"RXCHAIN_PHARMACY_KEY": private_key(ids["pharmacy2"])},
    )
    assert result.returncode == 0, result.stderr
    assert client.prescription(issued.rx_id).custodian == ids["pharmacy2"].address


def test_script_reports_refusals_and_bad_input(issue, ids, deployment, rpc_url, tmp_path):
    issued = issue(designated_pharmacy=ids["pharmacy2"].address)
    common = ["--rpc", rpc_url, "--registry", deployment.registry, "--key", private_key(ids["pharmacy"])]

    wrong_pharmacy = node(str(SCRIPT), *common, "--payload", issued.payload_text)
    assert wrong_pharmacy.returncode == 1
    assert (
        f"NotDesignatedPharmacy(id=0x{issued.rx_id.hex()}, pharmacy={ids['pharmacy'].address})" in wrong_pharmacy.stderr
    )

    damaged = node(str(SCRIPT), *common, "--payload", issued.payload_text[:-6] + "AAAAAA")
    assert damaged.returncode == 4
    assert "checksum" in damaged.stderr

    usage = node(str(SCRIPT), "--rpc", rpc_url)
    assert usage.returncode == 2

    record = tmp_path / "local.json"
    record.write_text(json.dumps({"rpc_url": "http://127.0.0.1:9", "registry": deployment.registry}))
    down = node(
        str(SCRIPT),
        "--deployment",
        str(record),
        "--payload",
        issued.payload_text,
        "--key",
        private_key(ids["pharmacy"]),
    )
    assert down.returncode == 3
    assert "does not answer" in down.stderr


def test_script_redeems_a_batched_prescription_from_the_events(
    issue_batched, client, ids, deployment, rpc_url, w3, tmp_path
):
    """A batched prescription has no record until its first redemption: the script finds its batch in the
    PrescriptionBatched events, rebuilds the proof and sends redeemBatched; a withdrawn batch is refused by name."""
    batch = issue_batched(3)
    item = batch.prescriptions[2]
    record = tmp_path / "local.json"
    record.write_text(
        json.dumps({"rpc_url": rpc_url, "registry": deployment.registry, "deploy_block": deployment.deploy_block})
    )
    common = ["--deployment", str(record), "--key", private_key(ids["pharmacy"])]

    result = node(str(SCRIPT), *common, "--payload", item.payload_text)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines["redeemed"] == "0x" + item.rx_id.hex()
    assert lines["batch"] == "0x" + batch.root.hex()
    tx = w3.eth.get_transaction(lines["tx"])
    assert tx["type"] == 0 and tx["gasPrice"] == 0 and tx["from"] == ids["pharmacy"].address
    assert (
        bytes(tx["input"])[:4]
        == keccak(text="redeemBatched(address,bytes32,address,address,uint256,bytes,bytes32,bytes32[])")[:4]
    )
    state = client.prescription(item.rx_id)
    assert state.status is Status.DISPENSED and state.custodian == ids["pharmacy"].address

    again = node(str(SCRIPT), *common, "--payload", item.payload_text)  # opened now: a plain redeem, refused
    assert again.returncode == 1
    assert f"refused: AlreadyRedeemed(id=0x{item.rx_id.hex()})" in again.stderr

    client.transact(ids["hospital"], "cancelBatch", ids["hospital"].address, batch.root)
    withdrawn = node(str(SCRIPT), *common, "--payload", batch.prescriptions[0].payload_text)
    assert withdrawn.returncode == 1
    assert f"refused: BatchIsCancelled(root=0x{batch.root.hex()})" in withdrawn.stderr


def test_script_cannot_be_steered_to_another_hospitals_batch_when_it_announces_the_id(
    issue_batched, client, ids, deployment, rpc_url, w3, tmp_path
):
    """Issue 11, finding 2, for the script: another hospital saw the ids in PrescriptionBatched and
    announced the prescription in a newer batch of its own, and the genuine batch's ids (so its root)
    too. The script must still open the prescription from its doctor's own hospital's batch."""
    batch = issue_batched(3)
    victim = batch.prescriptions[1]
    client.issue_batch(ids["hospital2"], [victim.rx_id], victim.expires_at)
    client.issue_batch(ids["hospital2"], [p.rx_id for p in batch.prescriptions], victim.expires_at)
    record = tmp_path / "local.json"
    record.write_text(
        json.dumps({"rpc_url": rpc_url, "registry": deployment.registry, "deploy_block": deployment.deploy_block})
    )

    result = node(
        str(SCRIPT),
        "--deployment",
        str(record),
        "--key",
        private_key(ids["pharmacy"]),
        "--payload",
        victim.payload_text,
    )

    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines["batch"] == "0x" + batch.root.hex()
    assert client.prescription(victim.rx_id).status is Status.DISPENSED
    opened = client.contract.events.PrescriptionOpened().process_receipt(w3.eth.get_transaction_receipt(lines["tx"]))
    assert [(e["args"]["doctor"], e["args"]["hospital"]) for e in opened] == [
        (ids["doctor"].address, ids["hospital"].address)
    ]


# ------------------------------------------------------------------------------ batch Merkle tree


MERKLE_JS = """
import { merkleRoot, merkleProof, verifyProof, commutativeKeccak } from %s;
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((ids) => {
  const root = merkleRoot(ids);
  const proofs = ids.map((_, i) => merkleProof(ids, i));
  return {
    root,
    proofs,
    verified: ids.every((id, i) => verifyProof(proofs[i], root, id)),
    strangerRefused: !verifyProof(proofs[0], root, commutativeKeccak(ids[0], ids[0])),
    swappedRefused: ids.length < 2 || !verifyProof(proofs[0], root, ids[1]),
  };
});
process.stdout.write(JSON.stringify(out));
"""


def test_dapp_merkle_tree_matches_python_for_batches_of_1_to_17():
    batches = [[os.urandom(32) for _ in range(size)] for size in range(1, 18)]
    batches.append([bytes(32), b"\xff" * 32, bytes(31) + b"\x01"])  # extremes of the sorted-pair order
    hexed = [["0x" + leaf.hex() for leaf in leaves] for leaves in batches]
    result = node("--input-type=module", "-e", MERKLE_JS % json.dumps(RXCORE.as_uri()), stdin=json.dumps(hexed))
    assert result.returncode == 0, result.stderr
    for leaves, js in zip(batches, json.loads(result.stdout), strict=True):
        assert js["root"] == "0x" + merkle_root(leaves).hex()
        assert js["proofs"] == [["0x" + p.hex() for p in merkle_proof(leaves, i)] for i in range(len(leaves))]
        assert all(verify_proof(merkle_proof(leaves, i), merkle_root(leaves), leaf) for i, leaf in enumerate(leaves))
        assert js["verified"] and js["strangerRefused"] and js["swappedRefused"]


# ------------------------------------------------------------------------------ canonical JSON


CANONICAL_JS = """
import { canonicalize, documentHash } from %s;
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((doc) => ({ text: canonicalize(doc), hash: documentHash(doc) }));
process.stdout.write(JSON.stringify(out));
"""


def documents(ids) -> list:
    doctor, pharmacy = ids["doctor"].address, ids["pharmacy"].address
    from datetime import datetime, timezone

    multi = build_prescription(
        doctor=doctor,
        patient_pseudonym=new_patient_pseudonym(),
        medications=[
            MedicationSpec(
                code="197361",
                system="http://www.nlm.nih.gov/research/umls/rxnorm",
                text="Amlodipine 5 mg tablet",
                dosage_text="1 tablet daily",
                quantity=3,
                unit="tablet",
                supply_days=3,
                frequency=1,
            ),
            MedicationSpec(
                code="313782",
                system="http://www.nlm.nih.gov/research/umls/rxnorm",
                text="Paracétamol 500 mg — 每日三次 😀",
                dosage_text="½ comprimé « si besoin »\n\tmax 4/j",
                quantity=2.5,
                unit="mL",
                supply_days=3,
                frequency=4,
            ),
        ],
        valid_from=datetime(2025, 3, 1, 8, 30, tzinfo=timezone.utc),
        valid_days=3,
        designated_pharmacy=pharmacy,
        emergency=True,
    )
    tricky = {
        "b": [1.5, -0.0, 1e21, 1e-7, 0.1, 1.2345678901234568e20, 5e-324, 2**53 - 1, 333333333.3333333, 1e23, 100.0],
        "a": {"z": None, "y": True, "x": False, "": "empty key"},
        "é": '\u0000\u001f"\\/\u007f\u2028',
        "€": "euro",
        "😀": "astral",
        "\uff61": "halfwidth ideographic full stop: sorts after the surrogate pair in UTF-16 order",
        "A": [],
        "aa": {},
        "10": "digits sort as text",
        "1": 1,
    }
    return [
        demo_document(doctor, 1_700_000_000),
        demo_document(doctor, 1_750_000_000, designated_pharmacy=pharmacy),
        multi,
        tricky,
    ]


def test_dapp_canonical_json_and_document_hash_match_python(ids):
    docs = documents(ids)
    result = node("--input-type=module", "-e", CANONICAL_JS % json.dumps(RXCORE.as_uri()), stdin=json.dumps(docs))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out) == len(docs)
    for doc, js in zip(docs, out):
        assert js["text"].encode("utf-8") == rfc8785.dumps(doc)
    for doc, js in zip(docs[:3], out[:3]):
        assert js["hash"] == "0x" + document_hash(doc).hex()


def test_script_and_dapp_core_find_a_batch_on_a_node_with_besus_log_range_limit(
    issue_batched, client, ids, deployment, rpc_url, tmp_path
):
    """Besu refuses eth_getLogs over more than --rpc-max-logs-range blocks: the script and the dApp's
    getLogsInWindows ask in windows and halve a refused one (the node here: anvil behind a front that
    refuses as Besu does, with a limit of 6 blocks and a history of 30)."""
    from client.fronts import NodeFront  # tests/ is on the path: pytest imports tests/client as "client"

    batch = issue_batched(3)
    item = batch.prescriptions[1]
    for _ in range(30):
        client.w3.provider.make_request("evm_mine", [])
    front = NodeFront(rpc_url, max_logs_range=6)
    try:
        record = tmp_path / "limited.json"
        record.write_text(
            json.dumps({"rpc_url": front.url, "registry": deployment.registry, "deploy_block": deployment.deploy_block})
        )
        probe = f"""
            import {{ ethers }} from "ethers";
            import * as core from "{RXCORE.as_posix()}";
            const provider = new ethers.JsonRpcProvider("{front.url}", undefined, {{ batchMaxCount: 1 }});
            const logs = await core.getLogsInWindows(
                provider, {{ address: "{deployment.registry}" }}, {deployment.deploy_block}, "latest", 1000
            );
            console.log(logs.length);
        """
        windows = node("--input-type=module", "-e", probe)
        assert windows.returncode == 0, windows.stderr
        assert int(windows.stdout.strip()) == len(
            client.w3.eth.get_logs({"address": deployment.registry, "fromBlock": deployment.deploy_block})
        )
        assert front.refused >= 1  # the 1,000-block window was refused, then halved until answered

        result = node(
            str(SCRIPT),
            "--deployment",
            str(record),
            "--key",
            private_key(ids["pharmacy"]),
            "--payload",
            item.payload_text,
        )

        assert result.returncode == 0, result.stderr
        assert client.prescription(item.rx_id).status is Status.DISPENSED
        assert front.log_queries and all(end - start <= 6 for start, end in front.log_queries)
    finally:
        front.stop()


# ------------------------------------------------------------------------------ one code, one spelling


DECODE_JS = """
import { decodePayload } from %s;
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const text of JSON.parse(input)) {
  try {
    const payload = await decodePayload(text);
    out.push({ ok: true, rxId: payload.rxId ?? null });
  } catch (error) {
    out.push({ ok: false, code: error.code ?? null, message: error.message });
  }
}
process.stdout.write(JSON.stringify(out));
"""

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def respelled(text: str) -> str:
    """The same bytes under another spelling: the last character's spare low bits set."""
    last = BASE64URL.index(text[-1])
    assert last & 1 == 0, "the encoder leaves spare bits zero"
    return text[:-1] + BASE64URL[last | 1]


def test_dapp_core_and_script_refuse_a_code_respelled_in_its_spare_bits(issue, ids, deployment, rpc_url):
    from rxchain.core.payload import NonCanonicalPayload, decode_payload

    prefix = len("RX1.")
    codes = []
    while len(codes) < 2:  # one code of each length with spare bits (2 and 4 of them)
        text = issue().payload_text
        if (len(text) - prefix) % 4 in (2, 3) and (len(text) - prefix) % 4 not in [
            (len(c) - prefix) % 4 for c in codes
        ]:
            codes.append(text)
    altered = [respelled(text) for text in codes]
    for text in altered:
        try:
            decode_payload(text)
        except NonCanonicalPayload:
            pass
        else:
            raise AssertionError(f"Python read a respelled code: {text[-8:]}")

    result = node(
        "--input-type=module", "-e", DECODE_JS % json.dumps(RXCORE.as_uri()), stdin=json.dumps(codes + altered)
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [o["ok"] for o in out] == [True, True, False, False], out
    assert all(o["code"] == "checksum" and "last character" in o["message"] for o in out[2:])

    common = ["--rpc", rpc_url, "--registry", deployment.registry, "--key", private_key(ids["pharmacy"])]
    refused = node(str(SCRIPT), *common, "--payload", altered[0])
    assert refused.returncode == 4
    assert "damaged in its last character" in refused.stderr


# ------------------------------------------------------------------------------ the patient's authorization


def test_script_redeems_with_the_patients_authorization_and_no_claim_key(issue, client, ids, deployment, rpc_url, w3):
    from rxchain.core import handover
    from rxchain.core.payload import decode_payload

    issued = issue()
    payload = decode_payload(issued.payload_text)
    auth = handover.authorize(payload, client.consent_request(ids["pharmacy"].address), 1).encode()
    assert payload.claim_key.hex[2:] not in auth.lower()
    common = ["--rpc", rpc_url, "--registry", deployment.registry, "--authorization", auth]

    elsewhere = node(str(SCRIPT), *common, "--key", private_key(ids["pharmacy2"]))
    assert elsewhere.returncode == 4
    assert (
        f"the patient authorised pharmacy {ids['pharmacy'].address}, not {ids['pharmacy2'].address}" in elsewhere.stderr
    )
    assert client.prescription(issued.rx_id).status is Status.ACTIVE

    result = node(str(SCRIPT), *common, "--key", private_key(ids["pharmacy"]))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines["redeemed"] == "0x" + issued.rx_id.hex()
    tx = w3.eth.get_transaction(lines["tx"])
    assert tx["from"] == ids["pharmacy"].address and tx["gasPrice"] == 0
    state = client.prescription(issued.rx_id)
    assert state.status is Status.DISPENSED and state.custodian == ids["pharmacy"].address

    again = node(str(SCRIPT), *common, "--key", private_key(ids["pharmacy"]))
    assert again.returncode == 4
    assert "the authorization is for the fill with 1 fill(s) left; the prescription has 0" in again.stderr

    both = node(str(SCRIPT), *common, "--payload", issued.payload_text, "--key", private_key(ids["pharmacy"]))
    assert both.returncode == 2 and "not both" in both.stderr
