"""Named errors: the registry's custom Solidity errors as Python exceptions, and the client's own.

Every revert the client sees is decoded into the contract's error name and arguments and raised as
the matching class below, with a message a person can act on. All derive from :class:`RxError`.
"""

from __future__ import annotations


class RxError(Exception):
    """Base of every error rxchain raises on purpose."""


class ContractRevert(RxError):
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
    template = "prescription {id} was already redeemed: it cannot be filled again"


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
    template = "prescription {id} is {current}: this step does not apply now"


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


class BatchIsCancelled(ContractRevert):
    template = "batch {root} was cancelled by its hospital or the regulator"


class NotInBatch(ContractRevert):
    template = "the proof does not show prescription {id} in batch {root}"


class NotBatchDoctor(ContractRevert):
    template = ("prescription {id} names {doctor}, who is not a doctor of {hospital} whose batch it opens from, or whose "
                "licence was not live when the batch was issued")


class CustodianInGoodStanding(ContractRevert):
    template = ("prescription {id} is held by {custodian}, in good standing: it keeps it (the regulator reassigns or voids "
                "only what a revoked or lapsed member holds)")


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
    template = ("{hospital}, the hospital of doctor {doctor}, is revoked or its credential ended: its doctors and batches "
                "are refused until the regulator restores it")


class CredentialOutlivesHospital(ContractRevert):
    template = ("{account}'s licence would end at {validUntil}, after its hospital {hospital}'s credential "
                "({hospitalValidUntil}): a doctor's licence cannot outlive its hospital's")


class BarredByRegulator(ContractRevert):
    template = "the regulator revoked {account}: only the regulator can let it back (allowReadmission)"


class NotBarred(ContractRevert):
    template = "{account} is not barred by the regulator: there is nothing to allow"


class AccessControlUnauthorizedAccount(ContractRevert):
    template = "{account} does not hold the role {neededRole} this call needs (or was revoked)"


class AccessControlEnforcedDefaultAdminRules(ContractRevert):
    template = "the regulator role changes only through the two-step delayed transfer"


#: Error name -> class, for the decoder.
BY_NAME: dict[str, type[ContractRevert]] = {
    cls.__name__: cls for cls in ContractRevert.__subclasses__() if cls is not UnknownContractError
}


# --- the client's own errors --------------------------------------------------------------------


class NodeUnavailable(RxError):
    """The chain's node does not answer."""


class WrongChain(RxError):
    """The node serves another chain than the deployment record names."""


class DeploymentNotFound(RxError):
    """No deployment record for the network: deploy first."""


class BuildNotFound(RxError):
    """The compiled contracts are missing: compile first."""


class TransactionFailed(RxError):
    """A transaction was mined but failed, or was never mined."""


class OutboxConflict(RxError):
    """A newly signed transaction uses a sender's nonce that the outbox already holds for another
    transaction: the node lost blocks it had mined, or another process signs with the same key."""



def _readable(args: dict) -> dict:
    """Arguments formatted for people: bytes as 0x-hex, role ids by name, statuses by name."""
    from rxchain.roles import role_name  # local: roles imports nothing of ours, but keep errors leaf-like
    from rxchain.status import Status

    out = {}
    for key, value in args.items():
        if isinstance(value, (bytes, bytearray)):
            value = "0x" + bytes(value).hex()
            if key in ("role", "neededRole"):
                value = role_name(value)
        elif key == "current" and isinstance(value, int):
            value = Status(value).name
        out[key] = value
    return out
