"""A varied, scripted workload for the indexer and the console: every state a prescription can reach.

``rx bench`` takes every prescription to Completed, which makes a fast benchmark but flat figures. This
one (through the same pipelined :class:`~rxchain.chain.pipeline.Pipeline`) plays several days of a small
consortium: doctors of two hospitals issue prescriptions one by one and their hospitals in batches;
pharmacies redeem, dispatch to couriers or hand over in store; couriers deliver after varying times;
patients confirm receipt; some prescriptions are cancelled (by the doctor, the hospital, the
regulator, or with their whole batch), some take a second fill, some stay open, and some expire
unfilled. Chain time moves forward between the steps (``evm_increaseTime``: development chains only).

It returns what it did, prescription by prescription (:class:`Planned`), so tests compute the
expected figures without reading the index — and check those against the registry's views too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import coincurve
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from rxchain.core.batch import merkle_proof, merkle_root
from rxchain.core.claims import receipt_digest, redeem_digest, sign_digest
from rxchain.chain.client import RegistryClient
from rxchain.chain.pipeline import Pipeline, SignedTx
from rxchain.errors import SendFailed
from rxchain.core.ids import ZERO_ADDRESS, RxId, prescription_id, terms_hash

DAY = 86400

#: What happens to a prescription, and how often (weights).
FATES: dict[str, int] = {
    "courier": 26,  # redeem, dispatch, deliver at the door, receipt confirmed
    "door_receipt": 10,  # redeem, dispatch, deliver with receipt (one transaction)
    "in_store": 14,  # redeem, handed over in store, receipt confirmed
    "dispensed": 5,  # redeemed only
    "dispatched": 5,  # redeemed and dispatched, not delivered yet
    "delivered": 5,  # delivered, receipt not confirmed
    "cancelled": 8,  # cancelled before redemption (doctor, or hospital for a batched one)
    "untouched": 12,  # never redeemed: expires unfilled (or stays active on the last day)
    "refill": 6,  # two fills, both delivered and received: completed
    "refillable": 5,  # three fills allowed, one taken: refillable
    "refill_cancelled": 4,  # one of two fills, then cancelled by the regulator
}
#: Fates that need more than one fill (only for prescriptions issued one by one).
MULTI_FILL = {"refill": 2, "refillable": 3, "refill_cancelled": 2}
#: Chain-time steps between the courier groups' deliveries (seconds): the delivery-time spread.
DELIVERY_STEPS = (600, 900, 1200, 1800, 2700, 3600)


class WorkloadFailed(SendFailed):
    """A scripted transaction reverted."""


@dataclass
class Fill:
    pharmacy: str
    courier: str | None = None
    in_store: bool = False
    delivered: bool = False
    received: bool = False
    redeemed_at: int | None = None
    dispatched_at: int | None = None
    delivered_at: int | None = None
    received_at: int | None = None


@dataclass
class Planned:
    """One scripted prescription and what was done to it."""

    index: int
    rx_id: bytes
    doctor: str
    hospital: str
    doc_hash: bytes
    claim_key: bytes
    claim_address: str
    terms: bytes
    designated: str | None
    fills: int
    expires_at: int
    fate: str
    day: int
    root: bytes | None = None
    proof: list[bytes] = field(default_factory=list)
    issued_at: int = 0
    taken: list[Fill] = field(default_factory=list)
    cancelled: str | None = None  # "prescription" or "batch"
    cancelled_at: int | None = None

    @property
    def id_hex(self) -> str:
        return str(RxId(self.rx_id))

    def status(self) -> str:
        """The registry's status label (batched and never opened: 'active', or 'cancelled' when its batch was)."""
        if self.cancelled:
            return "cancelled"
        if not self.taken:
            return "active"
        last = self.taken[-1]
        if last.received:
            return "completed" if len(self.taken) == self.fills else "refillable"
        if last.delivered:
            return "delivered"
        if last.courier:
            return "dispatched"
        return "dispensed"

    def expired_unfilled(self, now: int) -> bool:
        return not self.cancelled and not self.taken and self.expires_at < now


@dataclass
class WorkloadResult:
    """Everything scripted, with the accounts by role."""

    prescriptions: list[Planned]
    batches: dict[bytes, dict]
    hospitals: dict[str, str]  # address -> name
    pharmacies: dict[str, str]
    couriers: dict[str, str]
    transactions: int
    start_time: int
    end_time: int
    member_notes: dict[str, str] = field(default_factory=dict)  # account -> what was done to its membership

    def by_id(self) -> dict[str, Planned]:
        return {p.id_hex: p for p in self.prescriptions}


def run_workload(
    client: RegistryClient,
    ids: dict[str, LocalAccount],
    *,
    days: int = 3,
    per_day: int = 24,
    batch_size: int = 8,
    seed: str = "rxchain-workload",
    extra_doctors: int = 2,
    extra_pharmacies: int = 1,
    extra_couriers: int = 1,
    log: Callable[[str], None] | None = None,
) -> WorkloadResult:
    """Plays ``days`` days of ``per_day`` prescriptions each (half of them in batches of up to
    ``batch_size``) against ``client``'s registry, already onboarded with the development identities
    (:func:`rxchain.dev.demo.onboard`). Needs a development chain (it moves chain time)."""
    log = log or (lambda message: None)
    rng = random.Random(seed)
    pipe = Pipeline(client)
    runner = _Runner(client, pipe)
    regulator, hospital1, hospital2 = ids["regulator"], ids["hospital"], ids["hospital2"]
    start = client.latest_block_time()

    staff = lambda role, n: [Account.from_key(keccak(text=f"{seed}:{role}:{i}")) for i in range(n)]
    doctors1 = [ids["doctor"], *staff("doctor-h1", extra_doctors)]
    doctors2 = [ids["doctor2"], *staff("doctor-h2", max(1, extra_doctors // 2))]
    pharmacies = [ids["pharmacy"], ids["pharmacy2"], *staff("pharmacy", extra_pharmacies)]
    couriers = [ids["courier"], ids["courier2"], *staff("courier", extra_couriers)]
    # Memberships with a story: one credential that runs out during the run, one that ends soon after
    # it, one renewed, one revoked.
    lapsing = Account.from_key(keccak(text=f"{seed}:lapsing-pharmacy"))
    revoked = Account.from_key(keccak(text=f"{seed}:revoked-courier"))
    until = start + 365 * DAY
    role = lambda name: keccak(text=f"{name.upper()}_ROLE")
    txs = [pipe.sign(regulator, "admitMember", [a.address, role("pharmacy"), until]) for a in pharmacies[2:]]
    txs += [pipe.sign(regulator, "admitMember", [couriers[1].address, role("courier"), start + (days + 12) * DAY])]
    txs += [pipe.sign(regulator, "admitMember", [a.address, role("courier"), until]) for a in couriers[2:]]
    txs += [pipe.sign(regulator, "admitMember", [lapsing.address, role("pharmacy"), start + DAY // 2])]
    txs += [pipe.sign(regulator, "admitMember", [revoked.address, role("courier"), until])]
    runner.phase(txs)
    # A doctor's licence may not outlive its hospital's credential.
    until1 = min(until, client.member(hospital1.address).valid_until)
    until2 = min(until, client.member(hospital2.address).valid_until)
    runner.phase(
        [pipe.sign(hospital1, "admitMember", [d.address, role("doctor"), until1]) for d in doctors1[1:]]
        + [pipe.sign(hospital2, "admitMember", [d.address, role("doctor"), until2]) for d in doctors2[1:]]
    )

    hospital_of = {d.address: hospital1 for d in doctors1} | {d.address: hospital2 for d in doctors2}
    signer = {a.address: a for a in [*doctors1, *doctors2, *pharmacies, *couriers, regulator, hospital1, hospital2]}
    fate_names, weights = list(FATES), list(FATES.values())
    single_fates = fate_names
    batch_fates = [f for f in fate_names if f not in MULTI_FILL]
    planned: list[Planned] = []
    batches: dict[bytes, dict] = {}
    voided_one_batch = False

    for day in range(days):
        t0 = client.latest_block_time()
        deadline = t0 + 7 * DAY
        today: list[Planned] = []
        for k in range(per_day):
            i = len(planned)
            batched = k % 2 == 1
            doctor = rng.choice(doctors1 if rng.random() < 0.6 else doctors2)
            # every fate at least once (the first of each kind cycle through them), then by weight
            kinds = single_fates if not batched else batch_fates
            seen = sum(1 for q in planned if (q.root is not None) == batched)
            fate = kinds[seen] if seen < len(kinds) else rng.choices(fate_names, weights)[0]
            if batched and fate in MULTI_FILL:
                fate = "courier"
            designated = None if batched or rng.random() < 0.8 else pharmacies[1].address
            fills = MULTI_FILL.get(fate, 1)
            expires = t0 + (2 * 3600 if fate == "untouched" and not batched else DAY)
            doc_hash = keccak(text=f"{seed}:doc:{i}")
            claim_key = keccak(text=f"{seed}:claim:{i}")
            claim_address = _address(claim_key)
            terms = terms_hash(doctor.address, doc_hash, designated)
            p = Planned(
                i,
                prescription_id(claim_address, terms),
                doctor.address,
                hospital_of[doctor.address].address,
                doc_hash,
                claim_key,
                claim_address,
                terms,
                designated,
                fills,
                expires,
                fate,
                day,
            )
            p.root = b"batch" if batched else None
            planned.append(p)
            today.append(p)

        # 1. issue: one by one by the doctors, and in batches by each hospital for its doctors
        phase: list[tuple[SignedTx, Callable[[int], None]]] = []
        for p in today:
            if p.root is None:
                tx = pipe.sign(
                    signer[p.doctor],
                    "issue",
                    [p.doc_hash, p.claim_address, p.designated or ZERO_ADDRESS, p.expires_at, p.fills],
                )
                phase.append((tx, lambda t, p=p: setattr(p, "issued_at", t)))
        day_batches = []
        for hospital in (hospital1, hospital2):
            mine = [p for p in today if p.root is not None and p.hospital == hospital.address]
            for s in range(0, len(mine), batch_size):
                group = mine[s : s + batch_size]
                leaves = [p.rx_id for p in group]
                root = merkle_root(leaves)
                for n, p in enumerate(group):
                    p.root, p.proof, p.expires_at = root, merkle_proof(leaves, n), t0 + DAY
                batches[root] = {
                    "hospital": hospital.address,
                    "members": group,
                    "cancelled": False,
                    "expires_at": t0 + DAY,
                }
                day_batches.append(root)
                tx = pipe.sign(hospital, "issueBatch", [leaves, t0 + DAY, 1])
                phase.append((tx, lambda t, group=group: [setattr(p, "issued_at", t) for p in group]))
        runner.phase(phase)
        log(
            f"day {day + 1}: issued {len(today)}"
            f" ({sum(1 for p in today if p.root is None)} singly, {len(day_batches)} batches)"
        )

        # 2. first fills
        to_fill = [p for p in today if p.fate not in ("cancelled", "untouched")]
        # one batch a run is withdrawn whole after one of its prescriptions was filled: the rest are void
        void_root = None
        if not voided_one_batch and day_batches:
            void_root = day_batches[-1]
            members = batches[void_root]["members"]
            for p in members[1:]:
                if p in to_fill:
                    to_fill.remove(p)
                p.fate = "batch_void"
            if members[0] not in to_fill:
                members[0].fate = "courier"
                to_fill.append(members[0])
            voided_one_batch = True
        phase = []
        for p in to_fill:
            pharmacy = signer[p.designated] if p.designated else rng.choice(pharmacies)
            fill = Fill(pharmacy.address)
            p.taken.append(fill)
            phase.append(
                (_redeem(pipe, client, pharmacy, p, 0, deadline), lambda t, f=fill: setattr(f, "redeemed_at", t))
            )
        runner.phase(phase)

        # 3. cancellations
        phase = []
        for p in today:
            if p.fate == "cancelled":
                if p.root is None:
                    tx = pipe.sign(signer[p.doctor], "cancel", [p.rx_id])
                else:
                    tx = pipe.sign(
                        signer[p.hospital],
                        "cancelBatched",
                        [p.doctor, p.doc_hash, p.designated or ZERO_ADDRESS, p.claim_address, p.root, p.proof],
                    )
                p.cancelled = "prescription"
                phase.append((tx, lambda t, p=p: setattr(p, "cancelled_at", t)))
        if void_root is not None:
            batches[void_root]["cancelled"] = True
            void = batches[void_root]["members"][1:]
            for p in void:
                p.cancelled = "batch"
            hospital = signer[batches[void_root]["hospital"]]
            tx = pipe.sign(hospital, "cancelBatch", [hospital.address, void_root])
            phase.append((tx, lambda t, void=void: [setattr(p, "cancelled_at", t) for p in void]))
        runner.phase(phase)

        # 4. dispatch to couriers, or hand over in store
        door = [p for p in to_fill if p.fate in ("courier", "door_receipt", "dispatched", "delivered")]
        store = [p for p in to_fill if p.fate in ("in_store", "refill", "refillable", "refill_cancelled")]
        phase = []
        for p in door:
            courier = rng.choice(couriers)
            fill = p.taken[-1]
            fill.courier = courier.address
            phase.append(
                (
                    pipe.sign(signer[fill.pharmacy], "dispatch", [p.rx_id, courier.address]),
                    lambda t, f=fill: setattr(f, "dispatched_at", t),
                )
            )
        for p in store:
            fill = p.taken[-1]
            fill.in_store = fill.delivered = True
            phase.append(
                (
                    pipe.sign(signer[fill.pharmacy], "deliver", [p.rx_id]),
                    lambda t, f=fill: setattr(f, "delivered_at", t),
                )
            )
        runner.phase(phase)
        runner.phase([_receipt(pipe, client, signer[p.taken[-1].pharmacy], p, deadline) for p in store])

        # 5. couriers deliver in groups, chain time moving between them
        on_the_road = [p for p in door if p.fate != "dispatched"]
        rng.shuffle(on_the_road)
        groups = [on_the_road[g :: len(DELIVERY_STEPS)] for g in range(len(DELIVERY_STEPS))]
        for step, group in zip(DELIVERY_STEPS, groups):
            runner.advance(step)
            phase, confirm = [], []
            for p in group:
                courier = signer[p.taken[-1].courier]
                if p.fate == "door_receipt":
                    phase.append(_receipt(pipe, client, courier, p, deadline, with_delivery=True))
                else:
                    fill = p.taken[-1]
                    fill.delivered = True
                    phase.append(
                        (pipe.sign(courier, "deliver", [p.rx_id]), lambda t, f=fill: setattr(f, "delivered_at", t))
                    )
                    if p.fate == "courier":
                        confirm.append(p)
            runner.phase(phase)
            runner.phase([_receipt(pipe, client, signer[p.taken[-1].courier], p, deadline) for p in confirm])

        # 6. second fills (in store), and a regulator's cancellation of a refillable prescription
        again = [p for p in store if p.fate == "refill"]
        phase = []
        for p in again:
            pharmacy = signer[p.designated] if p.designated else rng.choice(pharmacies)
            fill = Fill(pharmacy.address, in_store=True)
            phase.append(
                (_redeem(pipe, client, pharmacy, p, 1, deadline), lambda t, f=fill: setattr(f, "redeemed_at", t))
            )
            p.taken.append(fill)
        runner.phase(phase)
        phase = []
        for p in again:
            p.taken[-1].delivered = True
            phase.append(
                (
                    pipe.sign(signer[p.taken[-1].pharmacy], "deliver", [p.rx_id]),
                    lambda t, f=p.taken[-1]: setattr(f, "delivered_at", t),
                )
            )
        runner.phase(phase)
        runner.phase([_receipt(pipe, client, signer[p.taken[-1].pharmacy], p, deadline) for p in again])
        phase = []
        for p in store:
            if p.fate == "refill_cancelled":
                p.cancelled = "prescription"
                phase.append((pipe.sign(regulator, "cancel", [p.rx_id]), lambda t, p=p: setattr(p, "cancelled_at", t)))
        runner.phase(phase)
        log(f"day {day + 1}: {len(to_fill)} filled, {sum(1 for p in today if p.cancelled)} cancelled")

        if day < days - 1:  # on to the next morning
            runner.advance(max(60, t0 + DAY + 300 - client.latest_block_time()))

    # the membership stories, and a pause
    notes = {
        couriers[1].address: "credential ends soon",
        lapsing.address: "credential expired",
        revoked.address: "revoked",
        pharmacies[1].address: "renewed",
    }
    runner.phase(
        [
            pipe.sign(regulator, "renewMember", [pharmacies[1].address, client.latest_block_time() + 400 * DAY]),
            pipe.sign(regulator, "revokeRole", [role("courier"), revoked.address]),
        ]
    )
    runner.phase([pipe.sign(regulator, "pause", [])])
    runner.phase([pipe.sign(regulator, "unpause", [])])
    names = {a.address: n for n, a in ids.items()}
    label = lambda accounts, kind: {a.address: names.get(a.address, f"{kind} {i + 1}") for i, a in enumerate(accounts)}
    return WorkloadResult(
        planned,
        batches,
        {hospital1.address: "hospital", hospital2.address: "hospital2"},
        label(pharmacies, "pharmacy"),
        label(couriers, "courier"),
        runner.transactions,
        start,
        client.latest_block_time(),
        notes,
    )


class _Runner:
    """Sends one phase of independent transactions and waits for all of them; fails on a revert."""

    def __init__(self, client: RegistryClient, pipe: Pipeline):
        self.client = client
        self.pipe = pipe
        self.transactions = 0

    def phase(self, items: list) -> None:
        """Mines one phase: signed transactions, or (transaction, callback) pairs whose callback gets
        the transaction's block time."""
        pairs = [item if isinstance(item, tuple) else (item, None) for item in items]
        times = self.run([tx for tx, _ in pairs])
        for tx, callback in pairs:
            if callback is not None:
                callback(times[tx.tx_hash])

    def run(self, txs: list[SignedTx]) -> dict[str, int]:
        """Mines ``txs``; returns tx hash -> block time."""
        if not txs:
            return {}
        result = self.pipe.run(txs)
        if result.failed:
            first = result.failed[0]
            raise WorkloadFailed(
                f"{len(result.failed)} of {len(txs)} transactions reverted"
                f" (first: {first.function} from {first.sender})"
            )
        self.transactions += len(txs)
        blocks = {h: _number(r["blockNumber"]) for h, r in result.receipts.items()}
        times = {n: self.client.block_time(n) for n in set(blocks.values())}
        return {h: times[n] for h, n in blocks.items()}

    def advance(self, seconds: int) -> None:
        """Moves chain time forward (a development chain's evm_increaseTime) and mines a block."""
        provider = self.client.w3.provider
        for method, params in (("evm_increaseTime", [int(seconds)]), ("evm_mine", [])):
            reply = provider.make_request(method, params)
            if "error" in reply:
                raise WorkloadFailed(
                    f"{method} refused ({reply['error'].get('message')}): the workload needs a development chain"
                )


def _number(value: int | str) -> int:
    """A receipt's block number, hex (as the node sends it) or int (as the pipeline may keep it)."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _redeem(
    pipe: Pipeline, client: RegistryClient, pharmacy: LocalAccount, p: Planned, taken: int, deadline: int
) -> SignedTx:
    fills_left = p.fills - taken
    signature = sign_digest(p.claim_key, redeem_digest(client.domain, p.rx_id, pharmacy.address, fills_left, deadline))
    args = [p.doctor, p.doc_hash, p.designated or ZERO_ADDRESS, p.claim_address, deadline, signature]
    if p.root is not None and taken == 0:
        return pipe.sign(pharmacy, "redeemBatched", args + [p.root, p.proof])
    return pipe.sign(pharmacy, "redeem", args)


def _receipt(
    pipe: Pipeline,
    client: RegistryClient,
    sender: LocalAccount,
    p: Planned,
    deadline: int,
    *,
    with_delivery: bool = False,
) -> tuple[SignedTx, Callable[[int], None]]:
    """The patient's receipt of the current fill (with the delivery when ``with_delivery``)."""
    fill = p.taken[-1]
    fills_left = p.fills - len(p.taken)
    # the receipt names who hands the drugs over: the sender for a delivery with receipt, else the
    # courier who delivered (or the pharmacy at the counter)
    deliverer = sender.address if with_delivery else (fill.courier or fill.pharmacy)
    signature = sign_digest(p.claim_key, receipt_digest(client.domain, p.rx_id, deliverer, fills_left, deadline))
    tx = pipe.sign(
        sender, "deliverWithReceipt" if with_delivery else "confirmReceipt", [p.rx_id, p.terms, deadline, signature]
    )
    fill.received = True
    if with_delivery:
        fill.delivered = True

    def stamp(t: int) -> None:
        fill.received_at = t
        if with_delivery:
            fill.delivered_at = t

    return tx, stamp


def _address(private_key: bytes) -> str:
    public = coincurve.PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return to_checksum_address(keccak(public)[-20:])


def expected_figures(result: WorkloadResult, now: int) -> dict:
    """The headline counts the index must show for this workload at chain time ``now``."""
    ps = result.prescriptions
    fills = [f for p in ps for f in p.taken]
    return {
        "issued": len(ps),
        "issuedBatched": sum(1 for p in ps if p.root is not None),
        "redeemed": sum(1 for p in ps if p.taken),
        "fills": len(fills),
        "cancelled": sum(1 for p in ps if p.cancelled),
        "expiredUnfilled": sum(1 for p in ps if p.expired_unfilled(now)),
        "activeUnfilled": sum(1 for p in ps if not p.cancelled and not p.taken and p.expires_at >= now),
        "dispatched": sum(1 for f in fills if f.courier),
        "handedOverInStore": sum(1 for f in fills if f.in_store),
        "received": sum(1 for f in fills if f.received),
        "batches": len(result.batches),
        "batchesCancelled": sum(1 for b in result.batches.values() if b["cancelled"]),
    }


__all__ = ["FATES", "Fill", "Planned", "WorkloadFailed", "WorkloadResult", "expected_figures", "run_workload"]
