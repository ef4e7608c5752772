"""The auditor's view: a prescription's trail rebuilt from the chain's events, document checks,
evidence bundles a third party can re-check against any node, and member reports.

Nothing here trusts a party's database: every fact is read from logs and blocks of a node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3._utils.events import get_event_data

from rxchain.chain.client import RegistryClient
from rxchain.core.ids import ZERO_ADDRESS, RxId
from rxchain.core.document import document_hash, prescription_parties
from rxchain.errors import Refused

#: Trail events, in the order a prescription meets them, with the label an auditor reads.
TRAIL_EVENTS: dict[str, str] = {
    "PrescriptionIssued": "issued",
    "PrescriptionBatched": "issued in batch",
    "PrescriptionOpened": "opened from batch",
    "PrescriptionCancelled": "cancelled",
    "PrescriptionRedeemed": "redeemed",
    "PrescriptionDispatched": "dispatched",
    "PrescriptionDelivered": "delivered",
    "ReceiptConfirmed": "received",
    "CustodyReassigned": "custody reassigned",
    "CustodyVoided": "custody voided",
}


@dataclass(frozen=True)
class TrailStep:
    """One stamped step of a prescription's trail."""

    step: str
    actor: str
    block_number: int
    block_hash: str
    block_time: int
    tx_hash: str
    log_index: int
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        """The step as JSON, camelCase like every JSON rxchain writes (``rx --json``, the console, evidence)."""
        return {
            "step": self.step,
            "actor": self.actor,
            "blockNumber": self.block_number,
            "blockHash": self.block_hash,
            "blockTime": self.block_time,
            "txHash": self.tx_hash,
            "logIndex": self.log_index,
            "details": self.details,
        }


#: The evidence bundle's format. Version 2 writes its events in camelCase; version 1 bundles (snake_case
#: events) are still read by :func:`verify_evidence`.
EVIDENCE_FORMAT = "rxchain-evidence/2"

_V1_EVENT_KEYS = {
    "block_number": "blockNumber",
    "block_hash": "blockHash",
    "block_time": "blockTime",
    "tx_hash": "txHash",
    "log_index": "logIndex",
}


class TrailNotFound(Refused):
    """No event names this prescription id."""


def trail(client: RegistryClient, rx_id: bytes, *, from_block: int | None = None) -> list[TrailStep]:
    """Every event of prescription ``rx_id`` (from ``from_block``, by default the deploy block), oldest
    first, with block times.

    One log query (in windows a range-limited node accepts): every trail event carries the id as its
    first indexed argument.
    """
    abis = {item["name"]: item for item in client.abi if item.get("type") == "event" and item["name"] in TRAIL_EVENTS}
    by_topic = {event_abi_to_log_topic(abi): abi for abi in abis.values()}
    logs = client.raw_logs([list("0x" + t.hex() for t in by_topic), str(RxId(rx_id))], from_block=from_block)
    steps = []
    for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
        abi = by_topic[bytes(log["topics"][0])]
        event = get_event_data(client.w3.codec, abi, log)
        args = {k: _plain(v) for k, v in event["args"].items() if k != "id"}
        label = TRAIL_EVENTS[event["event"]]
        if label == "issued in batch":
            actor = _batch_issuer(client, log, args["root"])
        elif label == "opened from batch":
            actor = args.pop("doctor")
        else:
            actor_key = {
                "issued": "doctor",
                "cancelled": "by",
                "redeemed": "pharmacy",
                "dispatched": "pharmacy",
                "delivered": "by",
                "received": "relayer",
                "custody reassigned": "by",
                "custody voided": "by",
            }[label]
            actor = args.pop(actor_key)
        if label == "delivered" and steps and steps[-1].step == "redeemed":
            label = "handed over in store"
        steps.append(
            TrailStep(
                label,
                actor,
                log["blockNumber"],
                "0x" + bytes(log["blockHash"]).hex(),
                client.block_time(log["blockNumber"]),
                "0x" + bytes(log["transactionHash"]).hex(),
                log["logIndex"],
                args,
            )
        )
    return steps


def trail_from_index(client: RegistryClient, rx_id: bytes, db_url: str) -> list[TrailStep] | None:
    """:func:`trail` read from the regulator's event index (``rx index run``) up to its last block and
    from the chain after it: on a long chain, a few blocks' logs instead of the whole history. None
    when ``db_url`` holds no index of this registry on this chain, or the node's block at the index's
    last block is not the indexed one (the caller reads the chain instead)."""
    from rxchain.indexer import queries
    from rxchain.indexer.db import Database, read_meta

    with Database(db_url).connect(readonly=True) as conn:
        meta = read_meta(conn)
        if (
            not meta
            or int(meta["chain_id"]) != client.chain_id
            or to_checksum_address(meta["registry"]) != client.address
        ):
            return None
        last = int(meta["last_block"])
        indexed = [
            TrailStep(
                s["step"],
                s["actor"],
                s["blockNumber"],
                s["blockHash"],
                s["blockTime"],
                s["txHash"],
                s["logIndex"],
                s["details"],
            )
            for s in queries.trail(conn, str(RxId(rx_id)))
        ]
    block = client.call_node(lambda: client.w3.eth.get_block(last))
    if "0x" + bytes(block["hash"]).hex() != meta["last_block_hash"]:
        return None
    tail = trail(client, rx_id, from_block=last + 1)
    if tail and tail[0].step == "delivered" and indexed and indexed[-1].step == "redeemed":
        tail[0] = replace(tail[0], step="handed over in store")
    return indexed + tail


@dataclass(frozen=True)
class DocumentCheck:
    """Whether a document is the one a prescription committed to, and if not, where it differs."""

    matches: bool
    rx_id: str
    document_hash: str
    on_chain_hash: str | None
    problems: list[str]

    def as_json(self) -> dict:
        return {
            "matches": self.matches,
            "id": self.rx_id,
            "documentHash": self.document_hash,
            "onChainHash": self.on_chain_hash,
            "problems": self.problems,
        }


def verify_document(
    client: RegistryClient, rx_id: bytes, document: dict, claim_key_address: str | None = None
) -> DocumentCheck:
    """Checks ``document`` against prescription ``rx_id``'s issue event (and its id, given the claim key)."""
    steps = trail(client, rx_id)
    rx_hex = str(RxId(rx_id))
    doc_hash = document_hash(document)
    opening = _issue_opening(client, steps)
    if opening is None:
        raise TrailNotFound(
            f"no prescription {rx_hex} on chain {client.chain_id} at {client.address}, or a batched one not yet "
            "opened (its document hash reaches the chain with its first redemption or its cancellation from the batch)"
        )
    problems = []
    on_chain = opening["docHash"]
    if on_chain != "0x" + doc_hash.hex():
        problems.append(
            f"document hash 0x{doc_hash.hex()} differs from the issued {on_chain}: the document was altered"
        )
    doctor, pharmacy = prescription_parties(document)
    if to_checksum_address(doctor) != opening["doctor"]:
        problems.append(f"the document names doctor {doctor}, but the prescription is {opening['doctor']}'s")
    if (pharmacy or ZERO_ADDRESS) != opening["designatedPharmacy"]:
        problems.append(f"the document names pharmacy {pharmacy}, the chain {opening['designatedPharmacy']}")
    if claim_key_address is not None:
        expected, _ = client.compute_id(doctor, doc_hash, pharmacy, claim_key_address)
        if expected != bytes(rx_id):
            problems.append("the id does not open to this document and claim key")
    return DocumentCheck(not problems, rx_hex, "0x" + doc_hash.hex(), on_chain, problems)


def _batch_issuer(client: RegistryClient, log, root: str) -> str:
    """The hospital of the batch a ``PrescriptionBatched`` log belongs to: the ``BatchIssued`` of the same
    transaction and root (two hospitals may announce the same root, each in its own batch)."""
    topic = event_abi_to_log_topic(
        next(i for i in client.abi if i.get("type") == "event" and i["name"] == "BatchIssued")
    )
    issued = client.call_node(
        lambda: client.w3.eth.get_logs(
            {
                "address": client.address,
                "fromBlock": log["blockNumber"],
                "toBlock": log["blockNumber"],
                "topics": ["0x" + topic.hex(), root],
            }
        )
    )
    for entry in issued:
        if bytes(entry["transactionHash"]) == bytes(log["transactionHash"]):
            return to_checksum_address("0x" + bytes(entry["topics"][2])[-20:].hex())
    raise TrailNotFound(f"no BatchIssued for root {root} in transaction 0x{bytes(log['transactionHash']).hex()}")


def _issue_opening(client: RegistryClient, steps: list[TrailStep]) -> dict | None:
    """The doctor, document hash and designated pharmacy a prescription committed to: from its issue
    event, or for a batched one from the call that opened it (its first redemption, or its cancellation
    from the batch: both take the id's openings), whose doctor ``PrescriptionOpened`` names."""
    for step in steps:
        if step.step == "issued":
            return {
                "doctor": step.actor,
                "docHash": step.details["docHash"],
                "designatedPharmacy": step.details["designatedPharmacy"],
            }
        if step.step == "opened from batch":
            tx = client.call_node(lambda: client.w3.eth.get_transaction(step.tx_hash))
            _, args = client.contract.decode_function_input(tx["input"])
            return {
                "doctor": step.actor,
                "docHash": "0x" + bytes(args["docHash"]).hex(),
                "designatedPharmacy": args["designatedPharmacy"],
            }
    return None


def evidence_bundle(client: RegistryClient, rx_id: bytes) -> dict:
    """A self-contained JSON bundle: the prescription's events with their provenance, for re-checking."""
    steps = trail(client, rx_id)
    if not steps:
        raise TrailNotFound(f"no prescription {RxId(rx_id)} on chain {client.chain_id} at {client.address}")
    return {
        "format": EVIDENCE_FORMAT,
        "chainId": client.chain_id,
        "registry": client.address,
        "prescriptionId": str(RxId(rx_id)),
        "documentHash": (_issue_opening(client, steps) or {}).get("docHash"),
        "state": client.prescription(rx_id).as_json(),
        "events": [step.as_json() for step in steps],
    }


def export_evidence(client: RegistryClient, rx_id: bytes, path: Path) -> dict:
    """Writes :func:`evidence_bundle` to ``path`` and returns it."""
    bundle = evidence_bundle(client, rx_id)
    path.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n")
    return bundle


def verify_evidence(client: RegistryClient, bundle: dict) -> list[str]:
    """Re-checks a bundle against ``client``'s node; returns the differences (empty when it holds)."""
    problems = []
    if bundle.get("chainId") != client.chain_id:
        problems.append(f"bundle is for chain {bundle.get('chainId')}, the node serves {client.chain_id}")
    if to_checksum_address(bundle.get("registry", ZERO_ADDRESS)) != client.address:
        problems.append(f"bundle is for registry {bundle.get('registry')}, not {client.address}")
    rx_id = bytes.fromhex(bundle["prescriptionId"][2:])
    fresh = {(s.tx_hash, s.log_index): s.as_json() for s in trail(client, rx_id)}
    events = bundle.get("events", [])
    if bundle.get("format") == "rxchain-evidence/1":
        events = [{_V1_EVENT_KEYS.get(k, k): v for k, v in e.items()} for e in events]
    for event in events:
        key = (event.get("txHash"), event.get("logIndex"))
        if key not in fresh:
            problems.append(f"event {event.get('step')} in tx {key[0]} is not on chain")
        elif fresh[key] != event:
            problems.append(f"event {event.get('step')} in tx {key[0]} differs from the chain")
    if len(fresh) != len(bundle.get("events", [])):
        problems.append(
            f"the chain has {len(fresh)} events for this prescription, the bundle {len(bundle.get('events', []))}"
        )
    return problems


def member_report(client: RegistryClient, from_block: int | None = None, to_block: int | None = None) -> list[dict]:
    """Members by role with credential end dates, and what each issued, filled, carried in a block range."""
    now = client.latest_block_time()
    start = client.deploy_block if from_block is None else from_block
    counts: dict[str, dict[str, int]] = {}
    for event, key, label in (
        ("PrescriptionIssued", "doctor", "issued"),
        ("PrescriptionRedeemed", "pharmacy", "redeemed"),
        ("PrescriptionDispatched", "courier", "carried"),
        ("PrescriptionDelivered", "by", "delivered"),
    ):
        for log in client.events(event, from_block=start, to_block=to_block):
            actor = log["args"][key]
            counts.setdefault(actor, {}).setdefault(label, 0)
            counts[actor][label] += 1
    report = []
    for m in client.members():
        report.append(
            {
                **m.as_json(),
                "inGoodStanding": m.in_good_standing(now),
                "expiresInDays": round((m.valid_until - now) / 86400, 1),
                "activity": counts.get(m.account, {}),
            }
        )
    report.sort(key=lambda r: (",".join(r["roles"]), r["account"]))
    return report


def block_at_time(client: RegistryClient, timestamp: int) -> int:
    """The first block at or after ``timestamp`` (the latest block if none is), by binary search."""
    low, high = client.deploy_block, int(client.call_node(lambda: client.w3.eth.block_number))
    if client.block_time(high) < timestamp:
        return high
    while low < high:
        middle = (low + high) // 2
        if client.block_time(middle) < timestamp:
            low = middle + 1
        else:
            high = middle
    return low


def _plain(value):
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


__all__ = [
    "TRAIL_EVENTS",
    "DocumentCheck",
    "TrailNotFound",
    "TrailStep",
    "evidence_bundle",
    "export_evidence",
    "member_report",
    "trail",
    "trail_from_index",
    "verify_document",
    "verify_evidence",
]
