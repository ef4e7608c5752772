"""Batch issuance: a hospital commits many prescriptions in one transaction under a Merkle root.

The tree is the registry's: prescription ids are the leaves in the order given; each level hashes
neighbouring pairs with sorted-pair keccak256 (OpenZeppelin's commutative hash) and carries an odd
last node up unchanged. Proofs verify with OpenZeppelin's MerkleProof. Nothing in the QR payload
changes: a pharmacy's client finds a batched prescription's root and sibling ids in the chain's
``PrescriptionBatched`` events and rebuilds the proof (:func:`find_batch_proof`).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import keccak

from rxchain.errors import InvalidValue, Refused


class NotBatched(Refused):
    """No batch on chain announces this prescription id."""


@dataclass(frozen=True)
class BatchProof:
    """Where a batched prescription sits: its batch's root and the id's Merkle proof."""

    root: bytes
    proof: list[bytes]


def merkle_root(ids: list[bytes]) -> bytes:
    """The root the registry computes for ``ids``."""
    if not ids:
        raise InvalidValue("a batch holds at least one prescription")
    level = [bytes(i) for i in ids]
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
    levels = [[bytes(i) for i in ids]]
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


def verify_proof(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    """What OpenZeppelin's MerkleProof.verify answers."""
    node = bytes(leaf)
    for sibling in proof:
        node = _pair(node, sibling)
    return node == bytes(root)


def find_batch_proof(client, rx_id: bytes) -> BatchProof:
    """The root and proof of batched prescription ``rx_id``, rebuilt from the chain's events."""
    event = client.contract.events.PrescriptionBatched
    announced = client.call_node(
        lambda: event().get_logs(from_block=client.deploy_block, to_block="latest", argument_filters={"id": rx_id})
    )
    if not announced:
        raise NotBatched(f"no batch announces prescription 0x{bytes(rx_id).hex()} on chain {client.chain_id}")
    ordered = sorted(announced, key=lambda entry: (entry["blockNumber"], entry["logIndex"]))
    live = [log for log in ordered if not client.batch(bytes(log["args"]["root"]))["cancelled"]]
    # The newest live batch that announces it (a withdrawn batch may have been issued again); when all
    # were withdrawn, the first, so that the registry answers BatchIsCancelled.
    chosen = live[-1] if live else ordered[0]
    root, block = bytes(chosen["args"]["root"]), chosen["blockNumber"]
    siblings = client.call_node(
        lambda: event().get_logs(from_block=block, to_block=block, argument_filters={"root": root})
    )
    ids = [bytes(entry["args"]["id"]) for entry in sorted(siblings, key=lambda entry: entry["logIndex"])]
    return BatchProof(root, merkle_proof(ids, ids.index(bytes(rx_id))))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def _next_level(level: list[bytes]) -> list[bytes]:
    up = [_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        up.append(level[-1])
    return up
