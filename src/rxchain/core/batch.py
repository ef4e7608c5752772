"""Batch issuance: a hospital commits many prescriptions in one transaction under a Merkle root.

The tree is the registry's: the leaves are keccak256 of each prescription id (32 bytes hashed), in
the order given; each level hashes neighbouring pairs with sorted-pair keccak256 (OpenZeppelin's
commutative hash, 64 bytes hashed) and carries an odd last node up unchanged. A leaf and an inner
node hash inputs of different lengths, so neither can pass for the other. Proofs verify with
OpenZeppelin's MerkleProof against the leaf. Nothing in the QR payload changes: a pharmacy's client
finds a batched prescription's root and sibling ids in the chain's events and rebuilds the proof
(:func:`find_batch_proof`), looking only at batches of the prescription's doctor's own hospital --
the only ones the registry opens it from, whatever other members announce.
"""

from __future__ import annotations

from dataclasses import dataclass

from rxchain.core.hashing import keccak256
from rxchain.core.ids import RxId
from rxchain.errors import InvalidValue, Refused


class NotBatched(Refused):
    """No batch on chain announces this prescription id."""


@dataclass(frozen=True)
class BatchProof:
    """Where a batched prescription sits: its batch's root and the id's Merkle proof."""

    root: bytes
    proof: list[bytes]


def leaf(rx_id: bytes) -> bytes:
    """The Merkle leaf of a prescription id: keccak256 of its 32 bytes."""
    return keccak256(bytes(rx_id))


def merkle_root(ids: list[bytes]) -> bytes:
    """The root the registry computes for ``ids``."""
    if not ids:
        raise InvalidValue("a batch holds at least one prescription")
    level = [leaf(i) for i in ids]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(ids: list[bytes], index: int) -> list[bytes]:
    """The sibling hashes from leaf ``index`` up to the root."""
    if not 0 <= index < len(ids):
        raise IndexError(f"leaf {index} is not in a batch of {len(ids)}")
    return _proof(_levels(ids), index)


def merkle_proofs(ids: list[bytes]) -> list[list[bytes]]:
    """Every leaf's proof, from one pass over the tree (what a hospital system hands out per batch)."""
    levels = _levels(ids)
    return [_proof(levels, index) for index in range(len(ids))]


def _levels(ids: list[bytes]) -> list[list[bytes]]:
    if not ids:
        raise InvalidValue("a batch holds at least one prescription")
    levels = [[leaf(i) for i in ids]]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    return levels


def _proof(levels: list[list[bytes]], index: int) -> list[bytes]:
    proof = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def verify_proof(proof: list[bytes], root: bytes, rx_id: bytes) -> bool:
    """What the registry answers: OpenZeppelin's MerkleProof.verify for the id's leaf."""
    node = leaf(rx_id)
    for sibling in proof:
        node = _pair(node, sibling)
    return node == bytes(root)


def find_batch_proof(client, rx_id: bytes, doctor: str) -> BatchProof:
    """The root and proof of batched prescription ``rx_id`` of ``doctor``, rebuilt from the chain's events.

    The registry opens a batched prescription only from a batch of its doctor's own hospital, so only
    those are considered: another member announcing the same id (or the same root) in a batch of its
    own cannot steer the client away from the genuine batch.
    """
    hospital = client.member(doctor).hospital
    if hospital is None:
        raise NotBatched(f"{doctor} was never a doctor of a hospital: no batch of its can hold {RxId(rx_id)}")
    # Deploy block to head, in windows a node with a range limit answers (client.events).
    announced = client.events("PrescriptionBatched", argument_filters={"id": rx_id})
    roots = {bytes(log["args"]["root"]) for log in announced}
    own = (
        [
            log
            for log in client.events("BatchIssued", argument_filters={"hospital": hospital})
            if bytes(log["args"]["root"]) in roots
        ]
        if roots
        else []
    )
    if not own:
        raise NotBatched(
            f"no batch of {hospital} (the hospital of {doctor}) announces prescription {RxId(rx_id)}"
            f" on chain {client.chain_id}"
        )
    own.sort(key=lambda entry: (entry["blockNumber"], entry["logIndex"]))
    live = [log for log in own if not client.batch(hospital, bytes(log["args"]["root"]))["cancelled"]]
    # The newest live batch that announces it (a withdrawn batch may have been issued again); when all
    # were withdrawn, the first, so that the registry answers BatchIsCancelled.
    chosen = live[-1] if live else own[0]
    root, block, tx_hash = bytes(chosen["args"]["root"]), chosen["blockNumber"], bytes(chosen["transactionHash"])
    siblings = client.events("PrescriptionBatched", from_block=block, to_block=block, argument_filters={"root": root})
    ids = [
        bytes(entry["args"]["id"])
        for entry in sorted(siblings, key=lambda entry: entry["logIndex"])
        if bytes(entry["transactionHash"]) == tx_hash  # the ids of this hospital's issueBatch, not another's
    ]
    return BatchProof(root, merkle_proof(ids, ids.index(bytes(rx_id))))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b) if a < b else keccak256(b + a)


def _next_level(level: list[bytes]) -> list[bytes]:
    up = [_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        up.append(level[-1])
    return up
