"""An executable model of the registry, written from its published rules (IPrescriptionRegistry,
IConsortiumRoles), for the random-use invariant test.

Every operation checks first and changes state last, as the EVM does: it either raises
:class:`Refused` with the exact custom error (name and arguments) the registry must answer, leaving
the model untouched, or applies its effects and returns the events the transaction must emit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from eth_utils import keccak

from rxchain.core.batch import verify_proof
from rxchain.core.claims import RegistryDomain, receipt_digest, redeem_digest
from rxchain.core.ids import prescription_id
from rxchain.core.status import Status
from rxchain.core.ids import ZERO_ADDRESS as ZERO

ADMIN_ROLE = bytes(32)
ROLE_IDS = {
    "doctor": keccak(text="DOCTOR_ROLE"),
    "pharmacy": keccak(text="PHARMACY_ROLE"),
    "courier": keccak(text="COURIER_ROLE"),
    "auditor": keccak(text="AUDITOR_ROLE"),
    "hospital": keccak(text="HOSPITAL_ROLE"),
}
BITS = {"doctor": 1, "pharmacy": 2, "courier": 4, "auditor": 8, "hospital": 16}
BIT_BY_ROLE_ID = {ROLE_IDS[name]: bit for name, bit in BITS.items()}
MAX_BATCH = 1024


class Refused(Exception):
    """The registry must refuse with custom error ``name(args)``."""

    def __init__(self, name: str, **args):
        self.name = name
        self.args_ = args
        super().__init__(f"{name}({', '.join(f'{k}={_show(v)}' for k, v in args.items())})")


@dataclass
class Member:
    roles: int = 0
    valid_until: int = 0
    hospital: str = ZERO
    since: int = 0  # when the current uninterrupted credential began
    barred: bool = False  # the regulator revoked it: no hospital admits it until the regulator does


@dataclass
class Record:
    custodian: str
    issued_at: int
    expires_at: int
    status: Status
    fills_left: int

    def view(self) -> tuple:
        return (self.custodian, self.issued_at, self.expires_at, self.status, self.fills_left)


@dataclass
class BatchRecord:
    hospital: str
    issued_at: int
    expires_at: int
    fills: int
    cancelled: bool = False

    def view(self) -> tuple:
        return (self.hospital, self.issued_at, self.expires_at, self.fills, self.cancelled)


@dataclass(frozen=True)
class Rx:
    """A prescription as its QR code knows it (the id's openings and the claim key)."""

    rx_id: bytes
    terms: bytes
    doctor: str
    doc_hash: bytes
    pharmacy: str  # designated pharmacy or ZERO
    claim_key: bytes
    claim_address: str
    root: bytes | None = None
    proof: tuple = ()


@dataclass
class Event:
    name: str
    args: dict

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={_show(v)}' for k, v in self.args.items())})"


EMPTY_VIEW = (ZERO, 0, 0, Status.NONE, 0)


@dataclass
class Registry:
    """The model: members, prescriptions, batches, limits, pause flag, and the chain's clock."""

    now: int  # the timestamp of the next block (the next transaction)
    regulator: str
    domain: RegistryDomain
    max_validity: int
    max_fills: int
    paused: bool = False
    members: dict[str, Member] = field(default_factory=dict)
    records: dict[bytes, Record] = field(default_factory=dict)
    batches: dict[tuple[str, bytes], BatchRecord] = field(default_factory=dict)  # by (hospital, root)
    trails: dict[bytes, list[tuple[str, str]]] = field(default_factory=dict)
    issued_fills: dict[bytes, int] = field(default_factory=dict)

    def copy(self) -> "Registry":
        return copy.deepcopy(self)

    # ------------------------------------------------------------------------------ members

    def member(self, account: str) -> Member:
        return self.members.get(account, Member())

    def has_role(self, role: bytes, account: str, t: int | None = None) -> bool:
        t = self.now if t is None else t
        if role == ADMIN_ROLE:
            return account == self.regulator
        bit = BIT_BY_ROLE_ID.get(role, 0)
        m = self.member(account)
        if not (bool(bit) and bool(m.roles & bit) and t <= m.valid_until):
            return False
        return bit != BITS["doctor"] or self.has_role(ROLE_IDS["hospital"], m.hospital, t)

    def require_doctor(self, account: str) -> Member:
        """A doctor with a live licence, of a hospital in good standing."""
        m = self.require_member(account, "doctor")
        if not self.has_role(ROLE_IDS["hospital"], m.hospital):
            raise Refused("HospitalNotInGoodStanding", doctor=account, hospital=m.hospital)
        return m

    def require_member(self, account: str, role: str) -> Member:
        m = self.member(account)
        if not m.roles & BITS[role]:
            raise Refused("AccessControlUnauthorizedAccount", account=account, neededRole=ROLE_IDS[role])
        if self.now > m.valid_until:
            raise Refused("CredentialExpired", account=account, role=ROLE_IDS[role], validUntil=m.valid_until)
        return m

    def require_regulator(self, sender: str) -> None:
        if sender != self.regulator:
            raise Refused("AccessControlUnauthorizedAccount", account=sender, neededRole=ADMIN_ROLE)

    def check_doctors_hospital(self, sender: str, doctor: str, m: Member) -> None:
        if not m.roles & BITS["doctor"] or m.hospital != sender:
            raise Refused("NotDoctorsHospital", caller=sender, doctor=doctor)
        self.require_member(sender, "hospital")

    def admit(self, sender: str, account: str, role: bytes, valid_until: int) -> list[Event]:
        bit = BIT_BY_ROLE_ID.get(role)
        if bit is None:
            raise Refused("UnknownRole", role=role)
        if account == ZERO:
            raise Refused("ZeroAddressMember")
        if valid_until <= self.now:
            raise Refused("InvalidCredentialEnd", validUntil=valid_until, nowTime=self.now)
        m = copy.copy(self.member(account))
        if bit == BITS["doctor"]:
            h = self.require_member(sender, "hospital")
            if m.barred:
                raise Refused("BarredByRegulator", account=account)
            if m.roles & ~BITS["doctor"]:
                raise Refused("HoldsOtherRoles", account=account, roles=m.roles)
            if m.roles & BITS["doctor"] and m.hospital != sender:
                raise Refused("NotDoctorsHospital", caller=sender, doctor=account)
            if valid_until > h.valid_until:
                raise Refused(
                    "CredentialOutlivesHospital",
                    account=account,
                    validUntil=valid_until,
                    hospital=sender,
                    hospitalValidUntil=h.valid_until,
                )
            m.hospital = sender
        else:
            self.require_regulator(sender)
            m.barred = False
        if not m.roles & bit or m.valid_until < self.now:
            m.since = self.now
        m.roles |= bit
        m.valid_until = valid_until
        self.members[account] = m
        return [
            Event("RoleGranted", {"role": role, "account": account, "sender": sender}),
            Event(
                "MemberAdmitted",
                {
                    "account": account,
                    "role": role,
                    "admittedBy": sender,
                    "hospital": m.hospital,
                    "validUntil": valid_until,
                },
            ),
        ]

    def renew(self, sender: str, account: str, valid_until: int) -> list[Event]:
        m = self.member(account)
        if m.roles == 0:
            raise Refused("NotAMember", account=account)
        if valid_until <= self.now:
            raise Refused("InvalidCredentialEnd", validUntil=valid_until, nowTime=self.now)
        if sender != self.regulator:
            self.check_doctors_hospital(sender, account, m)
            if m.roles != BITS["doctor"]:  # one end date covers all roles: a hospital moves it for a doctor alone
                raise Refused("HoldsOtherRoles", account=account, roles=m.roles)
        if m.roles & BITS["doctor"]:
            hospital_end = self.member(m.hospital).valid_until
            if valid_until > hospital_end:
                raise Refused(
                    "CredentialOutlivesHospital",
                    account=account,
                    validUntil=valid_until,
                    hospital=m.hospital,
                    hospitalValidUntil=hospital_end,
                )
        since = self.now if m.valid_until < self.now else m.since
        self.members[account] = Member(m.roles, valid_until, m.hospital, since, m.barred)
        return [Event("CredentialRenewed", {"account": account, "renewedBy": sender, "validUntil": valid_until})]

    def revoke(self, sender: str, role: bytes, account: str) -> list[Event]:
        if role == ROLE_IDS["doctor"] and sender != self.regulator:
            self.check_doctors_hospital(sender, account, self.member(account))
        else:
            if role == ADMIN_ROLE:
                raise Refused("AccessControlEnforcedDefaultAdminRules")
            self.require_regulator(sender)  # onlyRole(getRoleAdmin(role)): the regulator for every role
            if role not in BIT_BY_ROLE_ID:
                raise Refused("UnknownRole", role=role)
        m = self.member(account)
        bit = BIT_BY_ROLE_ID[role]
        by_regulator = not (role == ROLE_IDS["doctor"] and sender != self.regulator)
        if not m.roles & bit:
            if by_regulator and role == ROLE_IDS["doctor"] and m.hospital != ZERO:
                # A former doctor (its hospital removed it first, or it renounced) is barred all the same.
                self.members[account] = Member(m.roles, m.valid_until, m.hospital, m.since, True)
                return [Event("MemberBarred", {"account": account, "by": sender})]
            return []  # nothing to revoke: the call succeeds and changes nothing
        self.members[account] = Member(m.roles & ~bit, m.valid_until, m.hospital, m.since, m.barred or by_regulator)
        events = [Event("RoleRevoked", {"role": role, "account": account, "sender": sender})]
        if by_regulator:
            events.append(Event("MemberBarred", {"account": account, "by": sender}))
        return events

    # ---------------------------------------------------------------------------- regulator

    def pause(self, sender: str) -> list[Event]:
        self.require_regulator(sender)
        if self.paused:
            raise Refused("EnforcedPause")
        self.paused = True
        return [Event("Paused", {"account": sender})]

    def unpause(self, sender: str) -> list[Event]:
        self.require_regulator(sender)
        if not self.paused:
            raise Refused("ExpectedPause")
        self.paused = False
        return [Event("Unpaused", {"account": sender})]

    # -------------------------------------------------------------------------------- issue

    def check_expiry_and_fills(self, expires_at: int, fills: int) -> None:
        latest = self.now + self.max_validity
        if expires_at <= self.now or expires_at > latest:
            raise Refused("InvalidExpiry", expiresAt=expires_at, latestAllowed=latest)
        if fills == 0 or fills > self.max_fills:
            raise Refused("InvalidFills", fills=fills, maxFills=self.max_fills)

    def issue(self, sender: str, rx: Rx, expires_at: int, fills: int) -> list[Event]:
        if self.paused:
            raise Refused("EnforcedPause")
        doctor = self.require_doctor(sender)
        if rx.doc_hash == bytes(32):
            raise Refused("ZeroDocumentHash")
        if rx.claim_address == ZERO:
            raise Refused("ZeroClaimKey")
        self.check_expiry_and_fills(expires_at, fills)
        if rx.pharmacy != ZERO and not self.has_role(ROLE_IDS["pharmacy"], rx.pharmacy):
            raise Refused("NotAPharmacy", pharmacy=rx.pharmacy)
        if rx.rx_id in self.records:
            raise Refused("AlreadyIssued", id=rx.rx_id)
        self.records[rx.rx_id] = Record(sender, self.now, expires_at, Status.ACTIVE, fills)
        self.issued_fills[rx.rx_id] = fills
        self.trails.setdefault(rx.rx_id, []).append(("issued", sender))
        return [
            Event(
                "PrescriptionIssued",
                {
                    "id": rx.rx_id,
                    "doctor": sender,
                    "hospital": doctor.hospital,
                    "docHash": rx.doc_hash,
                    "designatedPharmacy": rx.pharmacy,
                    "expiresAt": expires_at,
                    "fills": fills,
                },
            )
        ]

    def issue_batch(self, sender: str, ids: list[bytes], root: bytes, expires_at: int, fills: int) -> list[Event]:
        if self.paused:
            raise Refused("EnforcedPause")
        self.require_member(sender, "hospital")
        if not ids or len(ids) > MAX_BATCH:
            raise Refused("InvalidBatchSize", count=len(ids), maximum=MAX_BATCH)
        self.check_expiry_and_fills(expires_at, fills)
        if (sender, root) in self.batches:
            raise Refused("BatchAlreadyIssued", hospital=sender, root=root)
        self.batches[(sender, root)] = BatchRecord(sender, self.now, expires_at, fills)
        for rx_id in ids:
            self.trails.setdefault(rx_id, []).append(("issued in batch", sender))
        return [Event("PrescriptionBatched", {"id": i, "root": root}) for i in ids] + [
            Event(
                "BatchIssued",
                {"root": root, "hospital": sender, "expiresAt": expires_at, "fills": fills, "count": len(ids)},
            )
        ]

    # ------------------------------------------------------------------------------- cancel

    def openable_batch(self, rx_id: bytes, hospital: str, root: bytes, proof: list[bytes]) -> BatchRecord:
        b = self.batches.get((hospital, root))
        if b is None:
            raise Refused("UnknownBatch", root=root)
        if b.cancelled:
            raise Refused("BatchIsCancelled", root=root)
        if not verify_proof(list(proof), root, rx_id):
            raise Refused("NotInBatch", id=rx_id, root=root)
        return b

    def check_batch_manager(self, sender: str, b: BatchRecord, subject: bytes) -> None:
        if sender == self.regulator:
            return
        if b.hospital != sender:
            raise Refused("NotBatchHospital", root=subject, caller=sender)
        self.require_member(sender, "hospital")

    def not_redeemable(self, rx_id: bytes, status: Status) -> Refused:
        if status is Status.NONE:
            return Refused("UnknownPrescription", id=rx_id)
        if status is Status.CANCELLED:
            return Refused("PrescriptionIsCancelled", id=rx_id)
        return Refused("AlreadyRedeemed", id=rx_id)

    def cancel(self, sender: str, rx_id: bytes) -> list[Event]:
        r = self.records.get(rx_id)
        status = r.status if r else Status.NONE
        if status is Status.NONE:
            raise Refused("UnknownPrescription", id=rx_id)
        if status is Status.CANCELLED:
            raise Refused("PrescriptionIsCancelled", id=rx_id)
        if status not in (Status.ACTIVE, Status.REFILLABLE):
            raise Refused("AlreadyRedeemed", id=rx_id)
        if status is Status.ACTIVE and r.custodian == sender:
            self.require_doctor(sender)  # its doctor, still licensed, of a hospital in good standing
        elif sender != self.regulator:
            raise Refused("NotIssuer", id=rx_id, caller=sender)
        r.status = Status.CANCELLED
        self.trails[rx_id].append(("cancelled", sender))
        return [Event("PrescriptionCancelled", {"id": rx_id, "by": sender})]

    def cancel_batched(self, sender: str, rx: Rx, root: bytes, proof: list[bytes]) -> list[Event]:
        rx_id = rx.rx_id
        r = self.records.get(rx_id)
        if r is not None:
            if r.status in (Status.ACTIVE, Status.REFILLABLE):
                raise Refused("WrongStatus", id=rx_id, current=int(r.status))  # cancel(id) is the way
            raise self.not_redeemable(rx_id, r.status)
        hospital = self.member(rx.doctor).hospital  # only the doctor's own hospital's batch
        b = self.openable_batch(rx_id, hospital, root, proof)
        self.check_batch_manager(sender, b, root)
        self.records[rx_id] = Record(rx.doctor, b.issued_at, b.expires_at, Status.CANCELLED, 0)
        self.trails.setdefault(rx_id, []).extend([("opened from batch", rx.doctor), ("cancelled", sender)])
        return [
            Event("PrescriptionOpened", {"id": rx_id, "doctor": rx.doctor, "hospital": hospital, "root": root}),
            Event("PrescriptionCancelled", {"id": rx_id, "by": sender}),
        ]

    def cancel_batch(self, sender: str, hospital: str, root: bytes) -> list[Event]:
        b = self.batches.get((hospital, root))
        if b is None:
            raise Refused("UnknownBatch", root=root)
        if b.cancelled:
            raise Refused("BatchIsCancelled", root=root)
        self.check_batch_manager(sender, b, root)
        b.cancelled = True
        return [Event("BatchCancelled", {"root": root, "hospital": hospital, "by": sender})]

    # ------------------------------------------------------------------------------- redeem

    def redeem(
        self,
        sender: str,
        rx: Rx,
        deadline: int,
        signer: bytes | None,
        signed: tuple | None,
        *,
        batched: bool,
        root: bytes | None = None,
        proof: tuple = (),
    ) -> list[Event]:
        """``signed`` = (domain, rxId, pharmacy, fillsLeft, deadline) the claim signature covers, signed
        by private key ``signer`` (None: a malformed signature)."""
        if self.paused:
            raise Refused("EnforcedPause")
        self.require_member(sender, "pharmacy")
        rx_id = rx.rx_id
        r = self.records.get(rx_id)
        opened = None
        if r is None and batched:
            m = self.member(rx.doctor)
            b = self.openable_batch(rx_id, m.hospital, root, list(proof))  # the doctor's own hospital's batch only
            # the named doctor's uninterrupted licence was live when the batch was issued
            if not m.roles & BITS["doctor"] or m.since > b.issued_at or m.valid_until < b.issued_at:
                raise Refused("NotBatchDoctor", id=rx_id, doctor=rx.doctor, hospital=m.hospital)
            if not self.has_role(ROLE_IDS["hospital"], m.hospital):
                raise Refused("HospitalNotInGoodStanding", doctor=rx.doctor, hospital=m.hospital)
            opened = Record(rx.doctor, b.issued_at, b.expires_at, Status.ACTIVE, b.fills)
            r = opened
        # who before when: the designated pharmacy is checked before status and expiry
        if rx.pharmacy != ZERO and rx.pharmacy != sender:
            raise Refused("NotDesignatedPharmacy", id=rx_id, pharmacy=sender)
        status = r.status if r else Status.NONE
        if status not in (Status.ACTIVE, Status.REFILLABLE):
            raise self.not_redeemable(rx_id, status)
        if self.now > r.expires_at:
            raise Refused("Expired", id=rx_id, expiresAt=r.expires_at)
        if self.now > deadline:
            raise Refused("SignatureDeadlinePassed", deadline=deadline)
        # the consent names this pharmacy, or (a paper fill slip) nobody
        expected = {
            (self.domain, rx_id, sender, r.fills_left, deadline),
            (self.domain, rx_id, ZERO, r.fills_left, deadline),
        }
        if signer is None or _address_of(signer) != rx.claim_address or signed not in expected:
            raise Refused("BadClaimSignature", id=rx_id)
        if opened is not None:
            self.records[rx_id] = opened
            self.issued_fills[rx_id] = opened.fills_left
            self.trails[rx_id].append(("opened from batch", rx.doctor))
        fills_left = r.fills_left
        r.fills_left -= 1
        r.custodian = sender
        r.status = Status.DISPENSED
        self.trails[rx_id].append(("redeemed", sender))
        redeemed = [Event("PrescriptionRedeemed", {"id": rx_id, "pharmacy": sender, "fillsLeft": fills_left - 1})]
        if opened is not None:
            opening = {"id": rx_id, "doctor": rx.doctor, "hospital": self.member(rx.doctor).hospital, "root": root}
            return [Event("PrescriptionOpened", opening)] + redeemed
        return redeemed

    # ----------------------------------------------------------------------- delivery trail

    def require_status(self, rx_id: bytes, expected: Status) -> Record:
        r = self.records.get(rx_id)
        status = r.status if r else Status.NONE
        if status is not expected:
            raise self.wrong_status(rx_id, status)
        return r

    def wrong_status(self, rx_id: bytes, status: Status) -> Refused:
        if status is Status.NONE:
            return Refused("UnknownPrescription", id=rx_id)
        return Refused("WrongStatus", id=rx_id, current=int(status))

    def require_custodian(self, sender: str, rx_id: bytes, r: Record) -> None:
        if r.custodian != sender:
            raise Refused("NotCustodian", id=rx_id, caller=sender, custodian=r.custodian)

    def dispatch(self, sender: str, rx_id: bytes, courier: str) -> list[Event]:
        r = self.require_status(rx_id, Status.DISPENSED)
        self.require_custodian(sender, rx_id, r)
        self.require_member(sender, "pharmacy")
        if courier == ZERO:
            raise Refused("ZeroCourier")
        self.require_member(courier, "courier")
        r.custodian = courier
        r.status = Status.DISPATCHED
        self.trails[rx_id].append(("dispatched", sender))
        return [Event("PrescriptionDispatched", {"id": rx_id, "pharmacy": sender, "courier": courier})]

    def check_can_deliver(self, sender: str, rx_id: bytes) -> Record:
        r = self.records.get(rx_id)
        status = r.status if r else Status.NONE
        if status is Status.DISPATCHED:
            self.require_custodian(sender, rx_id, r)
            self.require_member(sender, "courier")
        elif status is Status.DISPENSED:
            self.require_custodian(sender, rx_id, r)
            self.require_member(sender, "pharmacy")
        else:
            if status in (Status.DELIVERED, Status.COMPLETED, Status.REFILLABLE):
                self.require_custodian(sender, rx_id, r)  # who before when: a stranger to it hears NotCustodian
            raise self.wrong_status(rx_id, status)
        return r

    def deliver(self, sender: str, rx_id: bytes) -> list[Event]:
        r = self.check_can_deliver(sender, rx_id)
        r.status = Status.DELIVERED
        self._trail_delivered(rx_id, sender)
        return [Event("PrescriptionDelivered", {"id": rx_id, "by": sender})]

    def check_receipt(
        self, rx_id: bytes, r: Record, terms: bytes, deadline: int, signer: bytes | None, signed: tuple | None
    ) -> None:
        if self.now > deadline:
            raise Refused("SignatureDeadlinePassed", deadline=deadline)
        # the receipt names who hands the drugs over (the custodian), or (a paper receipt slip) nobody
        expected = {
            (self.domain, rx_id, r.custodian, r.fills_left, deadline),
            (self.domain, rx_id, ZERO, r.fills_left, deadline),
        }
        if signer is None or signed not in expected or prescription_id(_address_of(signer), terms) != rx_id:
            raise Refused("BadClaimSignature", id=rx_id)

    def deliver_with_receipt(
        self, sender: str, rx_id: bytes, terms: bytes, deadline: int, signer, signed
    ) -> list[Event]:
        r = self.check_can_deliver(sender, rx_id)
        self.check_receipt(rx_id, r, terms, deadline, signer, signed)
        self._trail_delivered(rx_id, sender)
        return [Event("PrescriptionDelivered", {"id": rx_id, "by": sender})] + self._received(rx_id, r, sender)

    def confirm_receipt(self, sender: str, rx_id: bytes, terms: bytes, deadline: int, signer, signed) -> list[Event]:
        r = self.require_status(rx_id, Status.DELIVERED)
        self.check_receipt(rx_id, r, terms, deadline, signer, signed)
        return self._received(rx_id, r, sender)

    def _received(self, rx_id: bytes, r: Record, relayer: str) -> list[Event]:
        r.status = Status.COMPLETED if r.fills_left == 0 else Status.REFILLABLE
        self.trails[rx_id].append(("received", relayer))
        return [Event("ReceiptConfirmed", {"id": rx_id, "relayer": relayer, "fillsLeft": r.fills_left})]

    def _trail_delivered(self, rx_id: bytes, by: str) -> None:
        trail = self.trails[rx_id]
        trail.append(("handed over in store" if trail and trail[-1][0] == "redeemed" else "delivered", by))

    # --------------------------------------------------------------------------------- views

    def view(self, rx_id: bytes) -> tuple:
        r = self.records.get(rx_id)
        return r.view() if r else EMPTY_VIEW

    def member_view(self, account: str) -> tuple:
        m = self.member(account)
        return (m.roles, m.valid_until, m.hospital)


# ---------------------------------------------------------------------------------- helpers

_ADDRESSES: dict[bytes, str] = {}


def _address_of(private_key: bytes) -> str:
    if private_key not in _ADDRESSES:
        from eth_account import Account

        _ADDRESSES[private_key] = Account.from_key(private_key).address
    return _ADDRESSES[private_key]


def address_of(private_key: bytes) -> str:
    return _address_of(private_key)


def redeem_message_digest(message: tuple) -> bytes:
    return redeem_digest(*message)


def receipt_message_digest(message: tuple) -> bytes:
    return receipt_digest(*message)


def _show(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()[:12] + "…"
    return repr(value)
