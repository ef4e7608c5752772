"""Invariants under random use: random sequences of every operation, by every kind of actor, against
the registry on the ephemeral anvil, each step checked against an executable model of the rules.

After every step:

- the registry's view of every prescription, batch and member, its limits and pause flag equal the
  model's (so a prescription is redeemed at most its allowed fills, and nothing else moved);
- a refused call is refused with the RIGHT named error (the model predicts name and arguments),
  and changed nothing: no state, no block, no nonce, nothing in the client's outbox;
- a successful call emitted exactly the events the model predicts;
- independently of the model, every status change is a forward step of the state machine made by
  a party whose role (in good standing, from the chain's own member records) may make it, and every
  membership, batch or pause change was made by the regulator or the right hospital.

At the end of every example: each prescription's trail (rxchain.audit) has the model's steps, its
block times never go backwards, and it holds no more redemptions than the fills it was issued with.

Each example starts from the same onboarded registry (evm_snapshot / evm_revert). The default run is
30 examples of 40 steps ($RXCHAIN_RANDOM_EXAMPLES / $RXCHAIN_RANDOM_STEPS change it); ``-m slow`` runs
150 of 60. The summary at the end of the session says how many steps ran and how many of each kind
succeeded or were refused. A failure prints the shrunk sequence of steps that shows it.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from rxchain import errors
from rxchain.audit import trail
from rxchain.core.batch import merkle_proof, merkle_root
from rxchain.core.claims import RegistryDomain, sign_digest
from rxchain.chain.client import RegistryClient, TxResult
from rxchain.core.ids import prescription_id, terms_hash
from rxchain.chain.outbox import Outbox
from rxchain.core.status import Status

from .chainkit import read_registry
from .conftest import report
from .model import (
    ADMIN_ROLE,
    BITS,
    ROLE_IDS,
    ZERO,
    Member,
    Refused,
    Registry,
    Rx,
    address_of,
    receipt_message_digest,
    redeem_message_digest,
)

ACTORS = [
    "regulator",
    "hospital",
    "hospital2",
    "doctor",
    "doctor2",
    "pharmacy",
    "pharmacy2",
    "courier",
    "courier2",
    "auditor",
    "stranger",
]
UNKNOWN_ROLE = keccak(text="NURSE_ROLE")
HOUR, DAY = 3600, 86400
S = Status

#: Status changes the state machine allows, and who may make each (a role in good standing; "anyone"
#: for the patient's receipt, which any account may relay). Written from IPrescriptionRegistry's
#: rules, independently of the model.
ALLOWED = {
    (S.NONE, S.ACTIVE): {"doctor"},
    (S.NONE, S.DISPENSED): {"pharmacy"},  # a batched prescription opened by its first fill
    (S.NONE, S.CANCELLED): {"hospital", "regulator"},  # a batched prescription withdrawn
    (S.ACTIVE, S.DISPENSED): {"pharmacy"},
    (S.REFILLABLE, S.DISPENSED): {"pharmacy"},
    (S.ACTIVE, S.CANCELLED): {"doctor", "regulator"},
    (S.REFILLABLE, S.CANCELLED): {"regulator"},
    (S.DISPENSED, S.DISPATCHED): {"pharmacy"},
    (S.DISPENSED, S.DELIVERED): {"pharmacy"},
    (S.DISPENSED, S.COMPLETED): {"pharmacy"},
    (S.DISPENSED, S.REFILLABLE): {"pharmacy"},
    (S.DISPATCHED, S.DELIVERED): {"courier"},
    (S.DISPATCHED, S.COMPLETED): {"courier"},
    (S.DISPATCHED, S.REFILLABLE): {"courier"},
    (S.DELIVERED, S.COMPLETED): {"anyone"},
    (S.DELIVERED, S.REFILLABLE): {"anyone"},
}
#: Steps that need the caller to hold the prescription (its custodian before the step).
NEEDS_CUSTODY = {
    (S.DISPENSED, S.DISPATCHED),
    (S.DISPENSED, S.DELIVERED),
    (S.DISPENSED, S.COMPLETED),
    (S.DISPENSED, S.REFILLABLE),
    (S.DISPATCHED, S.DELIVERED),
    (S.DISPATCHED, S.COMPLETED),
    (S.DISPATCHED, S.REFILLABLE),
}

STATS = {"examples": 0, "steps": 0, "refused": 0, "succeeded": 0, "seconds": 0.0}
OUTCOMES: Counter = Counter()  # events emitted and errors predicted, for the report


class RandomUse(RuleBasedStateMachine):
    """Random use of the registry by random actors; see the module docstring for what is checked."""

    env: dict = {}

    def __init__(self):
        super().__init__()
        env = self.env
        self.rpc = env["rpc"]
        self.accounts = env["ids"]
        self.names = {a.address: name for name, a in self.accounts.items()}
        self.snapshot_id = self.rpc.snapshot()
        self.client = RegistryClient(
            env["w3"],
            env["deployment"].registry,
            deploy_block=env["deployment"].deploy_block,
            outbox=Outbox(":memory:"),
        )
        self.rxs: list[Rx] = []
        self.roots: list[bytes] = []
        self.batch_ids: dict[bytes, list[bytes]] = {}
        self.client_issued: dict[bytes, str] = {}  # id/root -> tx hash of the client call that made it
        self.serial = 0
        STATS["examples"] += 1

        chain = read_registry(self.rpc, self.client, accounts=[a.address for a in self.accounts.values()])
        max_validity, max_fills, paused = chain.limits
        self.model = Registry(
            now=self.rpc.latest_time(),
            regulator=self.accounts["regulator"].address,
            domain=self.client.domain,
            max_validity=max_validity,
            max_fills=max_fills,
            paused=paused,
            members={a: Member(*m) for a, m in chain.members.items() if m[0] or m[1]},
        )
        self.last = chain
        self.check_views(chain)

    def teardown(self):
        try:
            self.check_trails()
        finally:
            self.rpc.revert(self.snapshot_id)

    # ------------------------------------------------------------------------------ choices

    def actor(self, data, *intended: str | None, label: str = "actor") -> str:
        options = [self.names.get(i, i) for i in intended if i and self.names.get(i, i) in self.accounts]
        if options and data.draw(st.integers(0, 3), label=f"{label} is someone else") != 3:
            return data.draw(st.sampled_from(options), label=label)
        return data.draw(st.sampled_from(ACTORS), label=label)

    def ghost(self) -> Rx:
        """A prescription nobody issued."""
        return self.new_rx(self.accounts["doctor"].address, ZERO, tag="ghost")

    def new_rx(
        self, doctor: str, pharmacy: str, *, tag: str = "", zero_hash: bool = False, zero_key: bool = False
    ) -> Rx:
        self.serial += 1
        doc_hash = bytes(32) if zero_hash else keccak(text=f"document {tag} {self.serial}")
        claim_key = keccak(text=f"claim key {tag} {self.serial}")
        claim_address = ZERO if zero_key else address_of(claim_key)
        terms = terms_hash(doctor, doc_hash, pharmacy)
        return Rx(prescription_id(claim_address, terms), terms, doctor, doc_hash, pharmacy, claim_key, claim_address)

    def pharmacy_choice(self, data) -> str:
        name = mostly(
            data,
            st.sampled_from([None, None, None, "pharmacy", "pharmacy2"]),
            st.sampled_from(["courier", "stranger"]),
            "designated pharmacy",
        )
        return self.accounts[name].address if name else ZERO

    def expiry(self, data) -> int:
        offset = mostly(
            data,
            st.integers(1, self.model.max_validity),
            st.sampled_from([0, -1, self.model.max_validity + 1]),
            "expires in",
        )
        return self.model.now + offset

    def fills(self, data) -> int:
        return mostly(
            data, st.integers(1, self.model.max_fills), st.sampled_from([0, self.model.max_fills + 1]), "fills"
        )

    # -------------------------------------------------------------------------------- rules

    def live(self) -> list[Rx]:
        return [rx for rx in self.rxs if self.status(rx) not in (S.COMPLETED, S.CANCELLED)]

    @precondition(lambda self: len(self.live()) < 6)
    @rule(data=st.data())
    def doctor_issues(self, data):
        sender = self.actor(data, "doctor", "doctor2")
        address = self.accounts[sender].address
        variant = mostly(
            data, st.just("new"), st.sampled_from(["again", "again", "zero hash", "zero claim key"]), "variant"
        )
        issued = [rx for rx in self.rxs if rx.root is None and rx.rx_id in self.model.records] + [
            rx for rx in self.rxs if rx.root is not None
        ]
        if variant == "again" and issued:
            old = data.draw(st.sampled_from(issued), label="again")
            rx = Rx(
                prescription_id(old.claim_address, terms_hash(address, old.doc_hash, old.pharmacy)),
                terms_hash(address, old.doc_hash, old.pharmacy),
                address,
                old.doc_hash,
                old.pharmacy,
                old.claim_key,
                old.claim_address,
            )
        else:
            rx = self.new_rx(
                address,
                self.pharmacy_choice(data),
                zero_hash=variant == "zero hash",
                zero_key=variant == "zero claim key",
            )
        expires_at, fills = self.expiry(data), self.fills(data)
        through_client = data.draw(st.booleans(), label="through client.issue")
        if through_client and rx.rx_id in self.client_issued:
            # the client's outbox knows this issue succeeded: it returns that transaction, sends nothing
            result = self.execute(
                sender,
                lambda m: [],
                lambda: self.client.issue(
                    self.accounts[sender],
                    rx.doc_hash,
                    rx.claim_address,
                    expires_at,
                    designated_pharmacy=_none(rx.pharmacy),
                    fills=fills,
                ),
                idempotent=self.client_issued[rx.rx_id],
            )
            return
        if through_client:
            act = lambda: self.client.issue(
                self.accounts[sender],
                rx.doc_hash,
                rx.claim_address,
                expires_at,
                designated_pharmacy=_none(rx.pharmacy),
                fills=fills,
            )
        else:
            act = lambda: self.client.transact(
                self.accounts[sender],
                "issue",
                rx.doc_hash,
                rx.claim_address,
                rx.pharmacy,
                expires_at,
                fills,
            )
        result = self.execute(sender, lambda m: m.issue(address, rx, expires_at, fills), act)
        if result is not None:
            if through_client:
                self.client_issued[rx.rx_id] = result.tx_hash
            self.track([rx])

    @precondition(lambda self: len(self.live()) < 6)
    @rule(data=st.data())
    def hospital_issues_batch(self, data):
        sender = self.actor(data, "hospital", "hospital2")
        address = self.accounts[sender].address
        if self.roots and data.draw(st.integers(0, 5), label="same batch again") == 0:
            root = data.draw(st.sampled_from(self.roots), label="batch")
            ids, items = self.batch_ids[root], []
        else:
            own = {"hospital": "doctor", "hospital2": "doctor2"}.get(sender, "doctor")
            size = mostly(data, st.integers(1, 5), st.just(0), "size")
            doctors = [
                data.draw(
                    st.sampled_from([own, own, own, "doctor", "doctor2", "pharmacy", "stranger"]), label="named doctor"
                )
                for _ in range(size)
            ]
            loose = [self.new_rx(self.accounts[d].address, self.pharmacy_choice(data), tag="batched") for d in doctors]
            ids = [rx.rx_id for rx in loose]
            root = merkle_root(ids) if ids else bytes(32)
            items = [
                Rx(
                    rx.rx_id,
                    rx.terms,
                    rx.doctor,
                    rx.doc_hash,
                    rx.pharmacy,
                    rx.claim_key,
                    rx.claim_address,
                    root,
                    tuple(merkle_proof(ids, k)),
                )
                for k, rx in enumerate(loose)
            ]
        expires_at, fills = self.expiry(data), self.fills(data)
        result = self.execute(
            sender,
            lambda m: m.issue_batch(address, ids, root, expires_at, fills),
            lambda: self.client.transact(self.accounts[sender], "issueBatch", ids, expires_at, fills),
        )
        if result is not None:
            self.batch_ids[root] = ids
            self.track(items, root)

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def act_on_a_prescription(self, data):
        """A prescription (mostly a live one), and mostly the step that fits where it stands: redeem,
        dispatch, deliver (with or without the receipt), relay the receipt, or cancel."""
        steps = {
            "redeem": self.pharmacy_redeems,
            "dispatch": self.pharmacy_dispatches,
            "deliver": self.holder_delivers,
            "deliver with receipt": self.holder_delivers_with_receipt,
            "relay receipt": self.patient_receipt_is_relayed,
            "cancel": self.someone_cancels,
        }
        fitting = {
            S.NONE: ["redeem", "redeem", "redeem", "cancel"],
            S.ACTIVE: ["redeem", "redeem", "redeem", "cancel"],
            S.REFILLABLE: ["redeem", "redeem", "redeem", "cancel"],
            S.DISPENSED: ["dispatch", "dispatch", "deliver", "deliver with receipt"],
            S.DISPATCHED: ["deliver", "deliver with receipt"],
            S.DELIVERED: ["relay receipt"],
        }
        live = self.live()
        if data.draw(st.integers(0, 7), label="prescription is a dead or unknown one") != 7:
            rx = data.draw(st.sampled_from(live), label="prescription")
        else:
            rx = data.draw(st.sampled_from(self.rxs + [self.ghost()]), label="prescription")
        step = mostly(
            data, st.sampled_from(fitting.get(self.status(rx), ["redeem"])), st.sampled_from(sorted(steps)), "step"
        )
        steps[step](data, rx)

    def status(self, rx: Rx) -> Status:
        record = self.model.records.get(rx.rx_id)
        return record.status if record else S.NONE

    def pharmacy_redeems(self, data, rx: Rx):
        sender = self.actor(data, _none(rx.pharmacy) or "pharmacy", "pharmacy2")
        address = self.accounts[sender].address
        variant = mostly(
            data,
            st.sampled_from(["client", "good"]),
            st.sampled_from(
                [
                    "claim key signed for another pharmacy",
                    "stale fill",
                    "another key",
                    "past deadline",
                    "malformed",
                    "another chain",
                    "another registry",
                    "paper slip",
                ]
            ),
            "signature",
        )
        record = self.model.records.get(rx.rx_id)
        batch = self.batch_of(rx)
        if variant == "client":
            batched = record is None and batch is not None
            fills_left = record.fills_left if record else (batch.fills if batched else 0)
            deadline = self.model.now + 15 * 60  # the client's default: latest block time + 15 minutes
            signed = (self.model.domain, rx.rx_id, address, fills_left, deadline)
            self.execute(
                sender,
                lambda m: m.redeem(
                    address, rx, deadline, rx.claim_key, signed, batched=batched, root=rx.root, proof=rx.proof
                ),
                lambda: self.client.redeem(
                    self.accounts[sender],
                    doctor=rx.doctor,
                    doc_hash=rx.doc_hash,
                    designated_pharmacy=_none(rx.pharmacy),
                    claim_private_key=rx.claim_key,
                ),
            )
            return
        fills_left = record.fills_left if record else (batch.fills if batch else 1)
        deadline = self.model.now + data.draw(st.integers(0, HOUR), label="deadline in")
        domain, signer, pharmacy = self.model.domain, rx.claim_key, address
        if variant == "claim key signed for another pharmacy":
            pharmacy = self.accounts[
                data.draw(st.sampled_from([n for n in ("pharmacy", "pharmacy2", "courier") if n != sender]))
            ].address
        elif variant == "stale fill":
            fills_left += data.draw(st.sampled_from([1, -1]), label="fill off by")
        elif variant == "another key":
            signer = keccak(text=f"not the claim key {self.serial}")
        elif variant == "past deadline":
            deadline = self.model.now - data.draw(st.integers(1, DAY), label="deadline passed by")
        elif variant == "another chain":
            domain = RegistryDomain(domain.chain_id + 1, domain.registry)
        elif variant == "another registry":
            domain = RegistryDomain(domain.chain_id, self.accounts["stranger"].address)
        elif variant == "paper slip":
            pharmacy = ZERO
        message = (domain, rx.rx_id, pharmacy, max(fills_left, 0), deadline)
        if variant == "malformed":
            signature, signer = sign_digest(signer, redeem_message_digest(message))[:64], None
        else:
            signature = sign_digest(signer, redeem_message_digest(message))
        use_batched = rx.root is not None and data.draw(st.integers(0, 4), label="redeemBatched") != 0
        root, proof = rx.root, list(rx.proof)
        if use_batched and data.draw(st.integers(0, 5), label="bad proof") == 0:
            proof = data.draw(st.sampled_from([[], [keccak(text="not a sibling")], proof + [bytes(32)]]), label="proof")
        args = [rx.doctor, rx.doc_hash, rx.pharmacy, rx.claim_address, deadline, signature]
        if use_batched:
            self.execute(
                sender,
                lambda m: m.redeem(address, rx, deadline, signer, message, batched=True, root=root, proof=tuple(proof)),
                lambda: self.client.transact(self.accounts[sender], "redeemBatched", *args, root, proof),
            )
        else:
            self.execute(
                sender,
                lambda m: m.redeem(address, rx, deadline, signer, message, batched=False),
                lambda: self.client.transact(self.accounts[sender], "redeem", *args),
            )

    def pharmacy_dispatches(self, data, rx: Rx):
        record = self.model.records.get(rx.rx_id)
        sender = self.actor(data, record.custodian if record else None)
        courier = data.draw(
            st.sampled_from(["courier", "courier", "courier2", "pharmacy", "stranger", None]), label="courier"
        )
        courier = self.accounts[courier].address if courier else ZERO
        address = self.accounts[sender].address
        self.execute(
            sender,
            lambda m: m.dispatch(address, rx.rx_id, courier),
            lambda: self.client.dispatch(self.accounts[sender], rx.rx_id, courier),
        )

    def holder_delivers(self, data, rx: Rx):
        record = self.model.records.get(rx.rx_id)
        sender = self.actor(data, record.custodian if record else None)
        address = self.accounts[sender].address
        self.execute(
            sender, lambda m: m.deliver(address, rx.rx_id), lambda: self.client.deliver(self.accounts[sender], rx.rx_id)
        )

    def receipt(self, data, rx: Rx) -> tuple:
        """A receipt signature by the claim key (or a bad one): (terms, deadline, signature, signer, message,
        variant)."""
        record = self.model.records.get(rx.rx_id)
        variant = mostly(
            data,
            st.sampled_from(["client", "good"]),
            st.sampled_from(
                [
                    "stale fill",
                    "another key",
                    "past deadline",
                    "another prescription's terms",
                    "another chain",
                    "malformed",
                    "another deliverer",
                    "paper slip",
                ]
            ),
            "receipt",
        )
        fills_left = record.fills_left if record else 0
        deliverer = record.custodian if record else ZERO
        deadline = self.model.now + data.draw(st.integers(0, HOUR), label="deadline in")
        terms, signer, domain = rx.terms, rx.claim_key, self.model.domain
        if variant == "client":
            deadline = self.model.now + 15 * 60
        elif variant == "stale fill":
            fills_left += 1
        elif variant == "another key":
            signer = keccak(text=f"not the claim key {self.serial}")
        elif variant == "past deadline":
            deadline = self.model.now - data.draw(st.integers(1, DAY), label="deadline passed by")
        elif variant == "another prescription's terms":
            terms = self.ghost().terms
        elif variant == "another chain":
            domain = RegistryDomain(domain.chain_id + 1, domain.registry)
        elif variant == "another deliverer":
            deliverer = self.accounts[
                data.draw(st.sampled_from(["courier", "courier2", "pharmacy", "stranger"]))
            ].address
        elif variant == "paper slip":
            deliverer = ZERO
        message = (domain, rx.rx_id, deliverer, fills_left, deadline)
        signature = sign_digest(signer, receipt_message_digest(message))
        if variant == "malformed":
            signature, signer = signature[:64], None
        return terms, deadline, signature, signer, message, variant

    def holder_delivers_with_receipt(self, data, rx: Rx):
        record = self.model.records.get(rx.rx_id)
        sender = self.actor(data, record.custodian if record else None)
        address = self.accounts[sender].address
        terms, deadline, signature, signer, message, variant = self.receipt(data, rx)
        if variant == "client":
            act = lambda: self.client.deliver_with_receipt(self.accounts[sender], rx.rx_id, rx.terms, rx.claim_key)
        else:
            act = lambda: self.client.transact(
                self.accounts[sender], "deliverWithReceipt", rx.rx_id, terms, deadline, signature
            )
        self.execute(sender, lambda m: m.deliver_with_receipt(address, rx.rx_id, terms, deadline, signer, message), act)

    def patient_receipt_is_relayed(self, data, rx: Rx):
        sender = self.actor(data, "courier", "pharmacy")
        address = self.accounts[sender].address
        terms, deadline, signature, signer, message, variant = self.receipt(data, rx)
        if variant == "client":
            act = lambda: self.client.confirm_receipt(self.accounts[sender], rx.rx_id, rx.terms, rx.claim_key)
        else:
            act = lambda: self.client.transact(
                self.accounts[sender], "confirmReceipt", rx.rx_id, terms, deadline, signature
            )
        self.execute(sender, lambda m: m.confirm_receipt(address, rx.rx_id, terms, deadline, signer, message), act)

    def someone_cancels(self, data, rx: Rx):
        sender = self.actor(data, rx.doctor, "regulator")
        address = self.accounts[sender].address
        self.execute(
            sender, lambda m: m.cancel(address, rx.rx_id), lambda: self.client.cancel(self.accounts[sender], rx.rx_id)
        )

    @precondition(lambda self: self.roots)
    @rule(data=st.data())
    def someone_withdraws_batched(self, data):
        """One batched prescription, or the whole batch, withdrawn (its hospital or the regulator)."""
        data.draw(
            st.sampled_from([self.someone_cancels_batched, self.someone_cancels_whole_batch]), label="withdrawal"
        )(data)

    def someone_cancels_batched(self, data):
        batched = [rx for rx in self.rxs if rx.root is not None]
        rx = data.draw(st.sampled_from(batched), label="batched") if batched else self.ghost()
        batch = self.batch_of(rx)
        sender = self.actor(data, batch.hospital if batch else None, "regulator")
        address = self.accounts[sender].address
        root = rx.root or keccak(text="no such batch")
        proof = list(rx.proof)
        if data.draw(st.integers(0, 5), label="bad proof") == 0:
            proof = [keccak(text="not a sibling")]
        self.execute(
            sender,
            lambda m: m.cancel_batched(address, rx, root, proof),
            lambda: self.client.transact(
                self.accounts[sender],
                "cancelBatched",
                rx.doctor,
                rx.doc_hash,
                rx.pharmacy,
                rx.claim_address,
                root,
                proof,
            ),
        )

    def someone_cancels_whole_batch(self, data):
        root = data.draw(st.sampled_from(self.roots + [keccak(text="no such batch")]), label="batch")
        hospital = self.accounts[
            data.draw(st.sampled_from(["hospital", "hospital2"]), label="batch's hospital")
        ].address
        batch = self.model.batches.get((hospital, root))
        sender = self.actor(data, batch.hospital if batch else None, "regulator")
        address = self.accounts[sender].address
        self.execute(
            sender,
            lambda m: m.cancel_batch(address, hospital, root),
            lambda: self.client.transact(self.accounts[sender], "cancelBatch", hospital, root),
        )

    def valid_until(self, data) -> int:
        offset = data.draw(
            st.sampled_from([-HOUR, 0, 1, HOUR, 6 * HOUR, DAY, 2 * DAY, 30 * DAY]), label="credential for"
        )
        return self.model.now + offset

    @rule(data=st.data())
    def membership_changes(self, data):
        """Admit, renew or revoke: the regulator for every role, a hospital for its own doctors."""
        action = data.draw(
            st.sampled_from([self.someone_admits_member, self.someone_renews_member, self.someone_revokes_role]),
            label="membership action",
        )
        action(data)

    @rule(data=st.data())
    def pause_switch(self, data):
        """Pause or resume (the regulator): mostly what changes the state, and pauses short-lived,
        so that a paused registry does not hide every other refusal."""
        if self.model.paused:
            action = mostly(data, st.just(self.someone_unpauses), st.just(self.someone_pauses), "pause action")
        else:
            action = data.draw(
                st.sampled_from([self.someone_unpauses, self.someone_unpauses, self.someone_pauses]),
                label="pause action",
            )
        action(data)

    def someone_admits_member(self, data):
        role_name = data.draw(
            st.sampled_from(["doctor", "doctor", "pharmacy", "courier", "auditor", "hospital", "unknown", "regulator"]),
            label="role",
        )
        role = {"unknown": UNKNOWN_ROLE, "regulator": ADMIN_ROLE}.get(role_name) or ROLE_IDS[role_name]
        sender = self.actor(data, "hospital" if role_name == "doctor" else "regulator", "hospital2")
        account = data.draw(st.sampled_from(ACTORS + ["zero"]), label="account")
        account = ZERO if account == "zero" else self.accounts[account].address
        valid_until = self.valid_until(data)
        address = self.accounts[sender].address
        self.execute(
            sender,
            lambda m: m.admit(address, account, role, valid_until),
            lambda: self.client.transact(self.accounts[sender], "admitMember", account, role, valid_until),
        )

    def someone_renews_member(self, data):
        account = data.draw(st.sampled_from(ACTORS), label="account")
        m = self.model.member(self.accounts[account].address)
        sender = self.actor(data, "regulator", self.names.get(m.hospital))
        address, account = self.accounts[sender].address, self.accounts[account].address
        valid_until = self.valid_until(data)
        self.execute(
            sender,
            lambda m: m.renew(address, account, valid_until),
            lambda: self.client.renew(self.accounts[sender], account, valid_until),
        )

    def someone_revokes_role(self, data):
        account = data.draw(st.sampled_from(ACTORS), label="account")
        role_name = data.draw(
            st.sampled_from(["doctor", "doctor", "pharmacy", "courier", "hospital", "auditor", "unknown", "regulator"]),
            label="role",
        )
        role = {"unknown": UNKNOWN_ROLE, "regulator": ADMIN_ROLE}.get(role_name) or ROLE_IDS[role_name]
        m = self.model.member(self.accounts[account].address)
        sender = self.actor(data, "regulator", self.names.get(m.hospital))
        address, account = self.accounts[sender].address, self.accounts[account].address
        self.execute(
            sender,
            lambda m: m.revoke(address, role, account),
            lambda: self.client.transact(self.accounts[sender], "revokeRole", role, account),
        )

    def someone_pauses(self, data):
        sender = self.actor(data, "regulator")
        address = self.accounts[sender].address
        self.execute(sender, lambda m: m.pause(address), lambda: self.client.pause(self.accounts[sender]))

    def someone_unpauses(self, data):
        sender = self.actor(data, "regulator")
        address = self.accounts[sender].address
        self.execute(sender, lambda m: m.unpause(address), lambda: self.client.unpause(self.accounts[sender]))

    @rule(seconds=st.sampled_from([1, 1, 59, 59, HOUR, HOUR, 5 * HOUR, DAY, 3 * DAY + 7]))
    def time_passes(self, seconds):
        STATS["steps"] += 1
        self.model.now += seconds
        self.rpc.mine(self.model.now)
        self.last = self.read()
        self.check_views(self.last)

    # ---------------------------------------------------------------------------- checking

    def execute(self, sender: str, predict, act, *, idempotent: str | None = None):
        """Runs one call, checks it against the model and the invariants; returns its TxResult or None."""
        STATS["steps"] += 1
        trial = self.model.copy()
        try:
            expected = predict(trial)
            refusal = None
        except Refused as exc:
            expected, refusal = None, exc
        before = self.last
        outbox_before = self.client.outbox.counts()
        self.rpc.next_block_at(self.model.now)
        try:
            outcome = act()
        except errors.RxError as exc:
            outcome = exc
        if isinstance(outcome, tuple):
            outcome = outcome[1]
        after = self.read()

        if idempotent is not None:
            assert isinstance(outcome, TxResult) and outcome.tx_hash == idempotent, (
                f"re-issuing through the same client should return its first transaction {idempotent}, got {outcome!r}"
            )
            self.assert_unchanged(before, after, sender, outbox_before, f"{sender}: re-issue")
            return None

        if refusal is not None:
            STATS["refused"] += 1
            OUTCOMES[refusal.name] += 1
            assert isinstance(outcome, errors.ContractRevert), (
                f"{sender}: expected refusal {refusal}, but the call returned {outcome!r}"
            )
            got = (outcome.name, _normal(outcome.error_args))
            assert got == (refusal.name, _normal(refusal.args_)), (
                f"{sender}: expected {refusal}, the client raised {outcome!r}"
            )
            if refusal.name in errors.BY_NAME:
                assert isinstance(outcome, errors.BY_NAME[refusal.name])
            self.assert_unchanged(before, after, sender, outbox_before, f"{sender}: {refusal}")
            return None

        STATS["succeeded"] += 1
        for event in expected:
            OUTCOMES[event.name] += 1
        assert isinstance(outcome, TxResult), f"{sender}: expected success with {expected}, got {outcome!r}"
        got_events = [(e["event"], _normal(e["args"])) for e in outcome.events]
        want_events = [(e.name, _normal(e.args)) for e in expected]
        assert got_events == want_events, f"{sender}: events differ:\n got  {got_events}\n want {want_events}"
        assert outcome.block_time == self.model.now, "the transaction was not mined at the time the model expects"
        self.check_allowed(sender, before, after)
        self.model = trial
        self.check_views(after)
        self.last = after
        return outcome

    def track(self, rxs: list[Rx], root: bytes | None = None) -> None:
        """Follows new prescriptions (and a new batch) from now on."""
        self.rxs.extend(rx for rx in rxs if rx not in self.rxs)
        if root is not None and root not in self.roots:
            self.roots.append(root)
        self.last = self.read()
        self.check_views(self.last)

    def read(self):
        return read_registry(
            self.rpc,
            self.client,
            [rx.rx_id for rx in self.rxs],
            self.batch_keys(),
            [a.address for a in self.accounts.values()],
        )

    def batch_keys(self) -> list[tuple[str, bytes]]:
        """Every (hospital, root) a batch could be kept under: each known root for each hospital."""
        hospitals = [self.accounts[name].address for name in ("hospital", "hospital2")]
        return [(h, r) for r in self.roots for h in hospitals]

    def batch_of(self, rx: Rx):
        """The batch the registry would open ``rx`` from: its doctor's own hospital's."""
        return self.model.batches.get((self.model.member(rx.doctor).hospital, rx.root)) if rx.root else None

    def assert_unchanged(self, before, after, sender: str, outbox_before: dict, what: str) -> None:
        sender_address = self.accounts[sender].address
        assert after.block_number == before.block_number, f"a refused call mined a block ({what})"
        assert after.nonces[sender_address] == before.nonces[sender_address], (
            f"a refused call used the sender's nonce ({what})"
        )
        assert {k: after.prescriptions[k] for k in before.prescriptions} == before.prescriptions, (
            f"a refused call changed a prescription ({what})"
        )
        assert {k: after.batches[k] for k in before.batches} == before.batches, (
            f"a refused call changed a batch ({what})"
        )
        self.check_views(after)
        assert after.members == before.members and after.limits == before.limits, (
            f"a refused call changed members or limits ({what})"
        )
        assert self.client.outbox.counts() == outbox_before, (
            f"a refused call left something in the client's outbox ({what})"
        )
        self.last = after

    def check_views(self, chain) -> None:
        m = self.model
        for rx_id, view in chain.prescriptions.items():
            assert view == m.view(rx_id), f"prescription 0x{rx_id.hex()[:12]}: chain {view}, model {m.view(rx_id)}"
            issued = m.issued_fills.get(rx_id)
            assert issued is None or view[4] <= issued
        for key, view in chain.batches.items():
            want = m.batches[key].view() if key in m.batches else (ZERO, 0, 0, 0, False)
            assert view == want, f"batch 0x{key[1].hex()[:12]} of {key[0]}: chain {view}, model {want}"
        for account, view in chain.members.items():
            assert view == m.member_view(account), (
                f"member {self.names[account]}: chain {view}, model {m.member_view(account)}"
            )
        assert chain.limits == (m.max_validity, m.max_fills, m.paused)

    def check_allowed(self, sender: str, before, after) -> None:
        """Independently of the model: every change is a forward step by a party allowed to make it."""
        address = self.accounts[sender].address
        t = self.model.now
        roles_before = before.members.get(address, (0, 0, ZERO))

        def in_good_standing(role: str) -> bool:
            return bool(roles_before[0] & BITS[role]) and t <= roles_before[1]

        regulator = address == self.model.regulator
        for rx_id, new in after.prescriptions.items():
            old = before.prescriptions.get(rx_id, (ZERO, 0, 0, S.NONE, 0))
            if new == old:
                continue
            step = (old[3], new[3])
            assert step in ALLOWED, f"0x{rx_id.hex()[:12]} moved {old[3].name} -> {new[3].name}: not a forward step"
            who = ALLOWED[step]
            assert (
                "anyone" in who
                or (regulator and "regulator" in who)
                or any(in_good_standing(r) for r in who - {"regulator"})
            ), f"{sender} moved 0x{rx_id.hex()[:12]} {old[3].name} -> {new[3].name}, which only {who} may"
            if step in NEEDS_CUSTODY:
                assert old[0] == address, f"{sender} moved 0x{rx_id.hex()[:12]} without holding it"
            if step == (S.ACTIVE, S.CANCELLED) and not regulator:
                assert old[0] == address, f"{sender} cancelled 0x{rx_id.hex()[:12]}, which another doctor issued"
            if new[3] is S.DISPENSED:
                assert new[4] == (old[4] - 1 if old[3] is not S.NONE else new[4]), (
                    "a redemption took other than one fill"
                )
            if old[3] is not S.NONE:
                assert new[1:3] == old[1:3], "issue or expiry time changed"
        for (_, root), new in after.batches.items():
            old = before.batches.get((_, root), (ZERO, 0, 0, 0, False))
            if new == old:
                continue
            if old[0] == ZERO:
                assert in_good_standing("hospital") and new[0] == address, f"{sender} issued a batch"
            else:
                assert new[:4] == old[:4] and new[4] and (regulator or address == old[0]), (
                    f"{sender} changed batch {root.hex()[:12]}"
                )
        for account, new in after.members.items():
            old = before.members[account]
            if new == old:
                continue
            hospital_for_doctor = (
                in_good_standing("hospital") and new[2] == address and new[0] | BITS["doctor"] == BITS["doctor"]
            )
            revoked_by_hospital = (
                in_good_standing("hospital")
                and old[2] == address
                and old[0] & BITS["doctor"]
                and new == (old[0] & ~BITS["doctor"], old[1], old[2])
            )
            assert regulator or hospital_for_doctor or revoked_by_hospital, (
                f"{sender} changed the member record of {self.names[account]}"
            )
        if after.limits != before.limits:
            assert regulator, f"{sender} paused or unpaused the registry"

    def check_trails(self) -> None:
        """Each prescription's trail: the model's steps, block times never backwards, redemptions <= fills."""
        checked = set()
        for rx in self.rxs:
            if rx.rx_id in checked:
                continue
            checked.add(rx.rx_id)
            steps = trail(self.client, rx.rx_id)
            want = self.model.trails.get(rx.rx_id, [])
            got = [(s.step, self.names.get(s.actor, s.actor)) for s in steps]
            assert got == [(label, self.names[a]) for label, a in want], (
                f"trail of 0x{rx.rx_id.hex()[:12]}: {got} != {want}"
            )
            times = [s.block_time for s in steps]
            assert times == sorted(times), f"trail of 0x{rx.rx_id.hex()[:12]} goes back in time: {times}"
            order = [(s.block_number, s.log_index) for s in steps]
            assert order == sorted(order)
            fills = [s.details.get("fills") for s in steps if s.step == "issued"]
            fills += [
                self.client.batch(s.actor, bytes.fromhex(s.details["root"][2:]))["fills"]
                for s in steps
                if s.step == "issued in batch"
            ]
            redeemed = sum(s.step == "redeemed" for s in steps)
            assert not redeemed or redeemed <= max(fills), (
                f"0x{rx.rx_id.hex()[:12]} redeemed {redeemed} times, fills {fills}"
            )


def mostly(data, good, bad, label: str):
    """A draw from ``good`` five times in six, else from ``bad``."""
    return data.draw(bad if data.draw(st.integers(0, 5), label=f"{label} is odd") == 5 else good, label=label)


def _none(address: str) -> str | None:
    return None if address == ZERO else address


def _normal(args: dict) -> dict:
    out = {}
    for key, value in args.items():
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value)
        elif isinstance(value, Status):
            value = int(value)
        out[key] = value
    return out


def run_random_use(env: dict, examples: int, steps: int) -> None:
    RandomUse.env = env
    before = dict(STATS)
    OUTCOMES.clear()
    started = time.perf_counter()
    run_state_machine_as_test(
        RandomUse,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    seconds = time.perf_counter() - started
    ran = {k: STATS[k] - before[k] for k in ("examples", "steps", "refused", "succeeded")}
    report(
        f"random use: {ran['examples']} examples, {ran['steps']} steps ({ran['succeeded']} succeeded, "
        f"{ran['refused']} refused with the predicted error) in {seconds:.1f} s"
    )
    steps = [
        "PrescriptionIssued",
        "BatchIssued",
        "PrescriptionRedeemed",
        "PrescriptionDispatched",
        "PrescriptionDelivered",
        "ReceiptConfirmed",
        "PrescriptionCancelled",
        "BatchCancelled",
    ]
    report("  successful steps: " + ", ".join(f"{OUTCOMES[name]} {name}" for name in steps))
    refusals = sorted(
        (name, n)
        for name, n in OUTCOMES.items()
        if name[0].isupper()
        and name not in steps
        and n
        and name
        not in (
            "RoleGranted",
            "RoleRevoked",
            "MemberAdmitted",
            "CredentialRenewed",
            "Paused",
            "Unpaused",
            "PrescriptionBatched",
            "PrescriptionOpened",
            "MemberBarred",
        )
    )
    report(f"  {len(refusals)} kinds of refusal: " + ", ".join(f"{name} {n}" for name, n in refusals))
    assert ran["examples"] >= examples and ran["succeeded"] > 0 and ran["refused"] > 0


@pytest.fixture
def env(w3, rpc, ids, deployment):
    return {"w3": w3, "rpc": rpc, "ids": ids, "deployment": deployment}


def test_random_use_keeps_every_invariant(env):
    run_random_use(
        env,
        examples=int(os.environ.get("RXCHAIN_RANDOM_EXAMPLES", 30)),
        steps=int(os.environ.get("RXCHAIN_RANDOM_STEPS", 40)),
    )


@pytest.mark.slow
def test_random_use_keeps_every_invariant_long_soak(env):
    run_random_use(env, examples=150, steps=60)
