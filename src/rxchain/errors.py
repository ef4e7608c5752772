"""Named errors: the registry's custom Solidity errors as Python exceptions, and the client's own.

Every revert the client sees is decoded into the contract's error name and arguments and raised as
the matching class below, with a message a person can act on.

One tree: every error rxchain raises on purpose derives from :class:`RxError` through exactly one
category, and the category carries the exit code ``rx`` ends with (the CLI reads ``exit_code`` and
nothing else):

    Refused       1  the registry (or a rule the client checks first) says no
    Unavailable   3  the node, deployment, build, devnet or a database is not there or not usable
    BadInput      4  a document, QR payload, file, signer, address or parameter is wrong
    SendFailed    5  a transaction failed or was not mined

(2 is click's usage error.)
"""

from __future__ import annotations

from datetime import datetime, timezone


class RxError(Exception):
    """Base of every error rxchain raises on purpose. Raise a category's subclass, never this."""

    #: What ``rx`` exits with when this error ends a command.
    exit_code: int = 1


class Refused(RxError):
    """The registry refused, or the client refused before sending what the registry would refuse."""

    exit_code = 1


class Unavailable(RxError):
    """Something the command needs is not there or not usable: node, deployment, build, devnet, database."""

    exit_code = 3


class BadInput(RxError):
    """What the user gave is wrong: a document, a QR payload, a file, a signer, an address, a parameter."""

    exit_code = 4


class SendFailed(RxError):
    """A transaction was sent and failed, or was never mined."""

    exit_code = 5


#: The categories, in the order the CLI documents them.
CATEGORIES: tuple[type[RxError], ...] = (Refused, Unavailable, BadInput, SendFailed)


class ContractRevert(Refused):
    """The registry refused a call with a custom error. ``name`` and ``args`` are the error's."""

    #: The message template, filled from the error's arguments.
    template = "the registry refused the call"

    def __init__(self, name: str, args: dict, message: str | None = None):
        self.name = name
        self.error_args = args
        super().__init__(message or f"{name}: {self.template.format(**_readable(args))}")


class UnknownContractError(ContractRevert):
    """A revert whose data matches no error in the ABI (or a revert with no data)."""

    template = "the transaction reverted without a known reason"


# --- the registry's errors (contracts/interfaces/IPrescriptionRegistry.sol) ---------------------


class AlreadyIssued(ContractRevert):
    template = "prescription {id} exists already (a retried issue); nothing was changed"


class UnknownPrescription(ContractRevert):
    template = "no prescription has id {id}: check the QR code or the id"


class InvalidExpiry(ContractRevert):
    template = "expiry {expiresAt} must be after now and no later than {latestAllowed}"


class InvalidFills(ContractRevert):
    template = "fills must be between 1 and {maxFills} (got {fills})"


class ZeroDocumentHash(ContractRevert):
    template = "the document hash is empty"


class ZeroClaimKey(ContractRevert):
    template = "the claim key address is empty"


class NotAPharmacy(ContractRevert):
    template = "designated pharmacy {pharmacy} is not a pharmacy in good standing"


class ZeroCourier(ContractRevert):
    template = "no courier given"


class Expired(ContractRevert):
    template = "prescription {id} expired at {expiresAt}: the patient needs a new prescription"


class PrescriptionIsCancelled(ContractRevert):
    template = "prescription {id} was cancelled by its doctor or the regulator"


class AlreadyRedeemed(ContractRevert):
    template = "prescription {id} was already redeemed: it can be neither filled again nor cancelled"


class NotDesignatedPharmacy(ContractRevert):
    template = "prescription {id} names another pharmacy; {pharmacy} may not fill it"


class BadClaimSignature(ContractRevert):
    template = (
        "the patient's claim signature for {id} is not valid here "
        "(wrong QR code, another pharmacy, another fill, chain or registry)"
    )


class SignatureDeadlinePassed(ContractRevert):
    template = "the signed authorization expired at {deadline}: sign again"


class WrongStatus(ContractRevert):
    template = "prescription {id} is {current}: this step does not apply now ({next})"


class NotCustodian(ContractRevert):
    template = "{caller} does not hold prescription {id}; {custodian} does"


class NotIssuer(ContractRevert):
    template = "{caller} may not cancel prescription {id} (only its doctor, or the regulator)"


class InvalidLimits(ContractRevert):
    template = "limits out of range: validity {maxValiditySeconds} s, fills {maxFills}"


class InvalidBatchSize(ContractRevert):
    template = "a batch holds 1 to {maximum} prescriptions ({count} given)"


class UnknownBatch(ContractRevert):
    template = "the hospital in question (the doctor's own, or the one named) has no batch with root {root}"


class BatchAlreadyIssued(ContractRevert):
    template = "hospital {hospital} issued batch {root} already (a retried batch); nothing was changed"


class NotBatchHospital(ContractRevert):
    template = "{caller} may not cancel from batch {root} (only the hospital that issued it, or the regulator)"


class BatchIsCancelled(ContractRevert):
    template = "batch {root} was cancelled by its hospital or the regulator"


class NotInBatch(ContractRevert):
    template = "the proof does not show prescription {id} in batch {root}"


class NotBatchDoctor(ContractRevert):
    template = (
        "prescription {id} names {doctor}, who is not a doctor of {hospital} whose batch it opens from, or whose "
        "licence was not live when the batch was issued"
    )


class CustodianInGoodStanding(ContractRevert):
    template = (
        "prescription {id} is held by {custodian}, in good standing: it keeps it (the regulator reassigns or voids "
        "only what a revoked or lapsed member holds)"
    )


class EnforcedPause(ContractRevert):
    template = "the registry is paused by the regulator: try again when it resumes"


class ExpectedPause(ContractRevert):
    template = "the registry is not paused"


# --- membership (contracts/interfaces/IConsortiumRoles.sol, OpenZeppelin AccessControl) ----------


class UnknownRole(ContractRevert):
    template = "{role} is not a consortium role"


class InvalidCredentialEnd(ContractRevert):
    template = "a credential must end in the future (got {validUntil}, now {nowTime})"


class CredentialExpired(ContractRevert):
    template = "{account}'s credential as {role} ended at {validUntil}: the regulator or hospital must renew it"


class NotAMember(ContractRevert):
    template = "{account} is not a member"


class ZeroAddressMember(ContractRevert):
    template = "the zero address cannot be a member"


class NotDoctorsHospital(ContractRevert):
    template = "{caller} is not the hospital of doctor {doctor}"


class HoldsOtherRoles(ContractRevert):
    template = "{account} holds other roles (mask {roles}): only the regulator may change its credential"


class UseAdmitMember(ContractRevert):
    template = "member roles carry a credential end date: use admitMember for {role}"


class HospitalNotInGoodStanding(ContractRevert):
    template = (
        "{hospital}, the hospital of doctor {doctor}, is revoked or its credential ended: its doctors and batches "
        "are refused until the regulator restores it"
    )


class CredentialOutlivesHospital(ContractRevert):
    template = (
        "{account}'s licence would end at {validUntil}, after its hospital {hospital}'s credential "
        "({hospitalValidUntil}): a doctor's licence cannot outlive its hospital's"
    )


class BarredByRegulator(ContractRevert):
    template = "the regulator revoked {account}: only the regulator can let it back (allowReadmission)"


class NotBarred(ContractRevert):
    template = "{account} is not barred by the regulator: there is nothing to allow"


class AccessControlUnauthorizedAccount(ContractRevert):
    template = "{account} does not hold the role {neededRole} this call needs (or was revoked)"


class AccessControlEnforcedDefaultAdminRules(ContractRevert):
    template = "the regulator role changes only through the two-step delayed transfer"


# --- Besu's permissioning contract (contracts/ConsortiumPermissioning.sol) ------------------------


class ZeroRegistry(ContractRevert):
    template = "the permissioning contract needs the registry's address (the zero address was given)"


# --- drug boxes and insurance claims (contracts/interfaces/IDrugBoxes.sol) -------------------------


class ZeroRegistryAddress(ContractRevert):
    template = "DrugBoxes needs the registry's address (the zero address was given)"


class NotInGoodStanding(ContractRevert):
    template = "{account} is not a {role} in good standing (never admitted, revoked, or its credential ended)"


class ZeroLotRoot(ContractRevert):
    template = "a lot's root must not be zero: build the lot from its boxes (rx box register)"


class InvalidLotSize(ContractRevert):
    template = "a lot holds 1 to {maximum} boxes ({count} given): split the production run into lots"


class InvalidLotExpiry(ContractRevert):
    template = "the lot's expiry {expiresAt} must be after now ({nowTime})"


class LotAlreadyRegistered(ContractRevert):
    template = "lot {lot} is registered already (by {manufacturer}); nothing was changed"


class UnknownLot(ContractRevert):
    template = (
        "no lot {lot} is registered: the box is not from a registered lot (counterfeit?) or the lot file is wrong"
    )


class LotIsRecalled(ContractRevert):
    template = "lot {lot} was recalled: do not dispense its boxes; set them aside for the manufacturer"


class LotExpired(ContractRevert):
    template = "lot {lot} expired at {expiresAt}: its boxes may not be dispensed"


class NotLotManufacturer(ContractRevert):
    template = "{caller} may not recall lot {lot} (only its manufacturer in good standing, or the regulator)"


class NotInLot(ContractRevert):
    template = (
        "the boxes are not in lot {lot}: a code or secret is wrong (re-scan the box and the scratch panel) "
        "or the box is counterfeit"
    )


class BadBoxIndex(ContractRevert):
    template = (
        "box index {index} is not valid in lot {lot} of {count} boxes (indexes strictly increasing, each box once)"
    )


class LengthMismatch(ContractRevert):
    template = "{indexes} box indexes but {nullifiers} nullifiers were given: each box needs both"


class BoxAlreadyDispensed(ContractRevert):
    template = (
        "box {index} of lot {lot} was dispensed already (nullifier {nullifier}): a resold or counterfeit box; "
        "do not hand it over, keep it and report it"
    )


class InvalidBoxCount(ContractRevert):
    template = "a fill records 1 to {maximum} boxes, at least one of each lot it names ({count} given)"


class NotDispensed(ContractRevert):
    template = "prescription {id} is {current}: boxes are recorded while it is Dispensed, before the hand-over ({next})"


class FillAlreadyRecorded(ContractRevert):
    template = "the boxes of prescription {id}'s fill with {fillsLeft} fills left were recorded already"


class NoBoxesRecorded(ContractRevert):
    template = "no boxes were recorded for prescription {id}'s fill with {fillsLeft} fills left: nothing to claim"


class NotFillPharmacy(ContractRevert):
    template = "{caller} did not dispense prescription {id}'s fill with {fillsLeft} fills left; {pharmacy} did"


class BoxesNotOfFill(ContractRevert):
    template = (
        "the boxes given are not those recorded for prescription {id}'s fill with {fillsLeft} fills left "
        "(all of them, in the order recorded)"
    )


class FillNotReceived(ContractRevert):
    template = (
        "the patient's receipt of prescription {id}'s fill with {fillsLeft} fills left is not recorded "
        "(it is {current} with {currentFillsLeft} fills left): claim after the receipt"
    )


class ClaimAlreadyFiled(ContractRevert):
    template = (
        "a claim for prescription {id}'s fill with {fillsLeft} fills left was filed already (it is {claim})"
        ": one claim per fill"
    )


class ZeroCommitment(ContractRevert):
    template = "the claim's commitment (the salted hash of amounts and insurance reference) is empty"


class ClaimNotPending(ContractRevert):
    template = "the claim for prescription {id}'s fill with {fillsLeft} fills left is {claim}, not awaiting a decision"


class NotClaimInsurer(ContractRevert):
    template = (
        "{caller} is not the insurer the claim for prescription {id}'s fill with {fillsLeft} fills left was filed with"
    )


class ZeroReason(ContractRevert):
    template = "a rejection needs a reason code from 1 to 255"


class ZeroPaymentReference(ContractRevert):
    template = "a payment needs its reference (the off-chain transfer's id, up to 32 ASCII characters)"


class ClaimNotApproved(ContractRevert):
    template = (
        "the claim for prescription {id}'s fill with {fillsLeft} fills left is {claim}, not approved: "
        "only an approved claim is paid"
    )


class FillIsVoid(ContractRevert):
    template = (
        "prescription {id}'s fill with {fillsLeft} fills left was voided by the regulator (its pharmacy lost "
        "custody): it is never claimed"
    )


class BoxNotDispensed(ContractRevert):
    template = "box {index} of lot {lot} was never dispensed: there is no duplicate to report"


#: Error name -> class, for the decoder.
BY_NAME: dict[str, type[ContractRevert]] = {
    cls.__name__: cls for cls in ContractRevert.__subclasses__() if cls is not UnknownContractError
}


# --- the client's own errors --------------------------------------------------------------------


class NodeUnavailable(Unavailable):
    """The chain's node does not answer."""


class DeploymentMismatch(Unavailable):
    """The node serves another chain, or other code at the registry's address, than the deployment
    record names (not to be confused with :class:`rxchain.core.payload.WrongChain`, a QR code made
    for another chain)."""


class DeploymentNotFound(Unavailable):
    """No deployment record for the network: deploy first."""


class BuildNotFound(Unavailable):
    """The compiled contracts are missing: compile first."""


class InvalidValue(BadInput, ValueError):
    """A value given by the user (an id, an address, a file, an option) is not what it must be."""


class BuildFailed(Unavailable):
    """Compiling the contracts failed: nothing was deployed."""


class TransactionFailed(SendFailed):
    """A transaction was mined but failed, or was never mined."""


class OutboxConflict(SendFailed):
    """A newly signed transaction uses a sender's nonce that the outbox already holds for another
    transaction: the node lost blocks it had mined, or another process signs with the same key."""


def exit_code_of(exc: BaseException) -> int | None:
    """The exit code a command ends with for ``exc``; None for an unexpected error (a bug: show it).

    Besides the tree above, the operating system's and SQLite's errors reach here when a file or
    database the user named cannot be used: a node that does not answer (an OS or a requests
    connection error or timeout, which requests derives from OSError) is :class:`Unavailable`,
    a file or folder that cannot be read or written is :class:`BadInput`, a database that cannot
    be opened is :class:`Unavailable`.
    """
    import sqlite3

    from requests.exceptions import ConnectionError as NoConnection, Timeout

    if isinstance(exc, RxError):
        return exc.exit_code
    if isinstance(exc, (ConnectionError, TimeoutError, NoConnection, Timeout, sqlite3.Error)):
        return Unavailable.exit_code
    if isinstance(exc, OSError):
        return BadInput.exit_code
    return None


def one_line(exc: BaseException) -> str:
    """``exc`` as one line a person can act on (file errors name the file and what to do)."""
    import sqlite3

    if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError)) and exc.filename:
        what = {
            FileNotFoundError: "no such file or folder",
            IsADirectoryError: "is a folder: give a file",
            NotADirectoryError: "a part of this path is a file, not a folder",
            PermissionError: "permission denied",
        }.get(type(exc), exc.strerror or str(exc))
        return f"{exc.filename}: {what}"
    if isinstance(exc, sqlite3.Error):
        return f"database error: {exc} (is the file a SQLite database this program wrote, and writable?)"
    return str(exc)


def _readable(args: dict) -> dict:
    """Arguments formatted for people: bytes as 0x-hex, role ids by name, statuses by name."""
    from rxchain.core.roles import role_name  # local: roles imports nothing of ours, but keep errors leaf-like
    from rxchain.core.status import Status

    out = {}
    for key, value in args.items():
        if isinstance(value, (bytes, bytearray)):
            value = "0x" + bytes(value).hex()
            if key in ("role", "neededRole"):
                value = role_name(value)
        elif key == "claim" and isinstance(value, int):
            value = _CLAIM_STATUS.get(value, str(value))
        elif key == "current" and isinstance(value, int):
            out["next"] = _NEXT_STEP.get(Status(value).name, "see rx trail")
            value = Status(value).name
        elif key in _TIME_ARGS and isinstance(value, int) and 0 < value < 2**40:
            value = f"{value} ({datetime.fromtimestamp(value, timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"
        out[key] = value
    return out


#: The ClaimStatus enum's names (IDrugBoxes).
_CLAIM_STATUS = {0: "not filed", 1: "filed", 2: "approved", 3: "rejected", 4: "paid", 5: "void"}

#: Arguments that are unix times: shown with their UTC date too.
_TIME_ARGS = frozenset({"expiresAt", "latestAllowed", "deadline", "validUntil", "nowTime"})

#: What can happen next from each status (for WrongStatus), by the Status enum's name.
_NEXT_STEP = {
    "NONE": "it was never issued",
    "ACTIVE": "it has not been redeemed yet: a pharmacy redeems it first",
    "CANCELLED": "it was cancelled: nothing more can happen to it",
    "DISPENSED": "it was filled: the pharmacy hands it over at the counter or dispatches it to a courier",
    "DISPATCHED": "a courier carries it: the courier delivers it next",
    "DELIVERED": "it was delivered: the patient's receipt is what remains",
    "COMPLETED": "every step is done: nothing more can happen to it",
    "REFILLABLE": "this fill is done and fills are left: the next step is a pharmacy redeeming the next fill",
}
