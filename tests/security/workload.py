"""Deterministic prescriptions for volume tests: made from a tag and an index, so a re-run (or another
process) plans exactly the same ones. Only what goes on chain is made here (document hash, claim key,
ids, batch proofs); the documents themselves are stand-ins.
"""

from __future__ import annotations

from dataclasses import dataclass

import coincurve
from eth_utils import keccak, to_checksum_address

from rxchain.core.batch import merkle_proof, merkle_root
from rxchain.core.claims import RegistryDomain, receipt_digest, redeem_digest, sign_digest
from rxchain.core.ids import prescription_id, terms_hash
from rxchain.core.ids import ZERO_ADDRESS as ZERO


@dataclass(frozen=True)
class Planned:
    """One prescription as the patient's QR code knows it."""

    index: int
    rx_id: bytes
    terms: bytes
    doctor: str
    doc_hash: bytes
    pharmacy: str
    claim_key: bytes
    claim_address: str
    fills: int
    root: bytes | None = None
    proof: tuple = ()

    def issue_args(self, expires_at: int) -> list:
        return [self.doc_hash, self.claim_address, self.pharmacy, expires_at, self.fills]

    def redeem_call(
        self, domain: RegistryDomain, pharmacy: str, fills_left: int, deadline: int, *, opened: bool = False
    ) -> tuple[str, list]:
        """(function, args) for redeeming one fill as ``pharmacy`` with a valid claim signature;
        a batched prescription not yet ``opened`` goes through redeemBatched with its proof."""
        signature = sign_digest(self.claim_key, redeem_digest(domain, self.rx_id, pharmacy, fills_left, deadline))
        args = [self.doctor, self.doc_hash, self.pharmacy, self.claim_address, deadline, signature]
        if self.root is not None and not opened:
            return "redeemBatched", args + [self.root, list(self.proof)]
        return "redeem", args

    def receipt_args(self, domain: RegistryDomain, deliverer: str, fills_left: int, deadline: int) -> list:
        signature = sign_digest(self.claim_key, receipt_digest(domain, self.rx_id, deliverer, fills_left, deadline))
        return [self.rx_id, self.terms, deadline, signature]


def address_of(private_key: bytes) -> str:
    public = coincurve.PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return to_checksum_address(keccak(public)[-20:])


def plan(tag: str, doctor: str, count: int, *, fills: int = 1, start: int = 0, pharmacy: str = ZERO) -> list[Planned]:
    """``count`` single prescriptions by ``doctor``."""
    out = []
    for i in range(start, start + count):
        doc_hash = keccak(text=f"{tag} document {i}")
        claim_key = keccak(text=f"{tag} claim key {i}")
        claim_address = address_of(claim_key)
        terms = terms_hash(doctor, doc_hash, pharmacy)
        out.append(
            Planned(
                i,
                prescription_id(claim_address, terms),
                terms,
                doctor,
                doc_hash,
                pharmacy,
                claim_key,
                claim_address,
                fills,
            )
        )
    return out


def plan_batch(tag: str, doctor: str, count: int, *, fills: int = 1) -> tuple[bytes, list[Planned]]:
    """A batch of ``count`` prescriptions by ``doctor`` (issued by its hospital): its root and members."""
    loose = plan(tag, doctor, count, fills=fills)
    ids = [p.rx_id for p in loose]
    root = merkle_root(ids)
    return root, [
        Planned(
            p.index,
            p.rx_id,
            p.terms,
            p.doctor,
            p.doc_hash,
            p.pharmacy,
            p.claim_key,
            p.claim_address,
            fills,
            root,
            tuple(merkle_proof(ids, k)),
        )
        for k, p in enumerate(loose)
    ]
