"""Who may call what: every state-changing function x every kind of caller.

Each row is a call prepared so that it succeeds for the intended caller; each column sends it as
another caller. Only the row's ``allowed`` callers pass; every other caller is refused with exactly
the error the row names, and the registry's state is left as it was.

The columns are the named parties plus two that are the row's own ``member`` gone bad:

    expired   the member whose call it is (or, for a regulator's call, the hospital), its credential ended
    revoked   the same member after the regulator revoked its role

so "expired" under ``dispatch`` is the very pharmacy holding the drugs, a minute past its licence.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from .conftest import (
    AUDITOR_ROLE,
    COURIER_ROLE,
    DAY,
    DEFAULT_ADMIN_ROLE,
    DOCTOR_ROLE,
    HOSPITAL_ROLE,
    MINUTE,
    PHARMACY_ROLE,
    fresh_address,
    registry_events,
    travel_to,
)

YEAR = 365 * DAY
ACTORS = ["regulator", "hospital", "doctor", "pharmacy", "courier", "auditor", "stranger", "expired", "revoked"]
EVERYONE = frozenset(ACTORS)


@dataclass
class Context:
    """What a row's call and its expected refusal need to know."""

    registry: object
    chain: object
    clinic: object
    parties: dict
    staged: dict  # prescriptions prepared for the module, by status name
    credential_ended_at: int = 0


# ------------------------------------------------------------------------- the calls, prepared


def admit_a_pharmacy(ctx, sender):
    return ctx.registry.admitMember(fresh_address(), PHARMACY_ROLE, ctx.chain.pending_timestamp + YEAR, sender=sender)


def _hospital_end(ctx):
    """A doctor's licence may not outlive its hospital's credential (a future date even when the hospital's
    credential ended: its refusal is then CredentialExpired)."""
    return max(ctx.registry.member(ctx.parties["hospital"]).validUntil, ctx.chain.pending_timestamp + DAY)


def admit_a_doctor(ctx, sender):
    return ctx.registry.admitMember(fresh_address(), DOCTOR_ROLE, _hospital_end(ctx), sender=sender)


def renew_the_doctor(ctx, sender):
    return ctx.registry.renewMember(ctx.parties["doctor"], _hospital_end(ctx), sender=sender)


def renew_the_pharmacy(ctx, sender):
    return ctx.registry.renewMember(ctx.parties["pharmacy"], ctx.chain.pending_timestamp + YEAR, sender=sender)


def revoke_the_doctor(ctx, sender):
    return ctx.registry.revokeRole(DOCTOR_ROLE, ctx.parties["doctor"], sender=sender)


def revoke_the_pharmacy(ctx, sender):
    return ctx.registry.revokeRole(PHARMACY_ROLE, ctx.parties["pharmacy"], sender=sender)


def barred_by_the_regulator(ctx):
    ctx.registry.revokeRole(AUDITOR_ROLE, ctx.parties["auditor"], sender=ctx.parties["regulator"])


def pharmacy_revoked_while_holding(ctx):
    ctx.registry.revokeRole(PHARMACY_ROLE, ctx.parties["pharmacy"], sender=ctx.parties["regulator"])


def reassign_the_dispensed(ctx, sender):
    return ctx.registry.reassignCustody(ctx.staged["dispensed"].id, ctx.parties["other_pharmacy"], sender=sender)


def void_the_dispensed(ctx, sender):
    return ctx.registry.voidCustody(ctx.staged["dispensed"].id, sender=sender)


def allow_the_auditor_back(ctx, sender):
    return ctx.registry.allowReadmission(ctx.parties["auditor"], sender=sender)


def issue(ctx, sender):
    return ctx.clinic.issue(sender).issue_tx


def issue_a_batch(ctx, sender):
    return ctx.clinic.issue_batch(sender, size=2).issue_tx


def redeem_from_the_batch(ctx, sender):
    return ctx.clinic.redeem(ctx.staged["batch"].rxs[0], sender)


def cancel_one_of_the_batch(ctx, sender):
    made = ctx.staged["batch"]
    return ctx.clinic.cancel_batched(made.rxs[0], sender)


def withdraw_the_batch(ctx, sender):
    made = ctx.staged["batch"]
    return ctx.registry.cancelBatch(made.hospital, made.root, sender=sender)


def cancel_the_active(ctx, sender):
    return ctx.registry.cancel(ctx.staged["active"].id, sender=sender)


def redeem_the_active(ctx, sender):
    return ctx.clinic.redeem(ctx.staged["active"], sender)


def dispatch_the_dispensed(ctx, sender):
    return ctx.clinic.dispatch(ctx.staged["dispensed"], sender, ctx.parties["courier"])


def deliver_the_dispatched(ctx, sender):
    return ctx.clinic.deliver(ctx.staged["dispatched"], sender)


def deliver_the_dispensed_over_the_counter(ctx, sender):
    return ctx.clinic.deliver(ctx.staged["dispensed"], sender)


def deliver_the_dispatched_with_receipt(ctx, sender):
    return ctx.clinic.deliver_with_receipt(ctx.staged["dispatched"], sender)


def confirm_receipt_of_the_delivered(ctx, sender):
    return ctx.clinic.confirm(ctx.staged["delivered"], sender)


def pause(ctx, sender):
    return ctx.registry.pause(sender=sender)


def paused_by_the_regulator(ctx):
    ctx.registry.pause(sender=ctx.parties["regulator"])


def unpause(ctx, sender):
    return ctx.registry.unpause(sender=sender)


def set_limits(ctx, sender):
    return ctx.registry.setLimits(DAY, 2, sender=sender)


def begin_regulator_handover(ctx, sender):
    return ctx.registry.beginDefaultAdminTransfer(fresh_address(), sender=sender)


def handover_begun(ctx):
    ctx.registry.beginDefaultAdminTransfer(fresh_address(), sender=ctx.parties["regulator"])


def cancel_regulator_handover(ctx, sender):
    return ctx.registry.cancelDefaultAdminTransfer(sender=sender)


def change_handover_delay(ctx, sender):
    return ctx.registry.changeDefaultAdminDelay(2 * DAY, sender=sender)


def delay_change_scheduled(ctx):
    ctx.registry.changeDefaultAdminDelay(2 * DAY, sender=ctx.parties["regulator"])


def roll_back_handover_delay(ctx, sender):
    return ctx.registry.rollbackDefaultAdminDelay(sender=sender)


# ----------------------------------------------------------------------- the expected refusals


def needs_regulator(ctx, actor, account):
    return "AccessControlUnauthorizedAccount", {"account": account, "neededRole": DEFAULT_ADMIN_ROLE}


def needs(role):
    """The caller must hold ``role`` with a live credential."""

    def refusal(ctx, actor, account):
        if actor == "expired":
            return "CredentialExpired", {"account": account, "role": role, "validUntil": ctx.credential_ended_at}
        return "AccessControlUnauthorizedAccount", {"account": account, "neededRole": role}

    return refusal


def holder_of(staged, holder, role):
    """The caller must be the prescription's custodian (``holder``), holding ``role`` in good standing."""

    def refusal(ctx, actor, account):
        if actor in ("expired", "revoked"):  # the custodian itself, gone bad
            return needs(role)(ctx, actor, account)
        return "NotCustodian", {"id": ctx.staged[staged].id, "caller": account, "custodian": ctx.parties[holder]}

    return refusal


def issuing_doctor(ctx, actor, account):
    if actor in ("expired", "revoked"):  # the issuing doctor itself, gone bad
        return needs(DOCTOR_ROLE)(ctx, actor, account)
    return "NotIssuer", {"id": ctx.staged["active"].id, "caller": account}


def batch_manager(subject):
    """The caller must be the regulator, or the batch's hospital in good standing."""

    def refusal(ctx, actor, account):
        if actor in ("expired", "revoked"):  # the batch's own hospital, gone bad
            return needs(HOSPITAL_ROLE)(ctx, actor, account)
        made = ctx.staged["batch"]
        return "NotBatchHospital", {"root": made.root, "caller": account}

    return refusal


def hospital_of(target):
    """The caller must be ``target``'s hospital (in good standing)."""

    def refusal(ctx, actor, account):
        if actor in ("expired", "revoked"):  # the doctor's own hospital, gone bad
            return needs(HOSPITAL_ROLE)(ctx, actor, account)
        return "NotDoctorsHospital", {"caller": account, "doctor": ctx.parties[target]}

    return refusal


def not_a_doctor_of(target):
    def refusal(ctx, actor, account):
        return "NotDoctorsHospital", {"caller": account, "doctor": ctx.parties[target]}

    return refusal


# ------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Row:
    call: Callable  # (ctx, sender) -> receipt
    allowed: frozenset
    member: str  # whose credential ends ('expired') or role is revoked ('revoked')
    member_role: bytes
    emits: str  # the event an allowed call emits
    refusal: Callable | None  # (ctx, actor, account) -> (error name, arguments)
    setup: Callable | None  # (ctx) -> None: the state the call needs, made by the regulator


def row(call, allowed, member, member_role, emits, refusal=None, setup=None):
    return Row(call, frozenset(allowed), member, member_role, emits, refusal, setup)


H = ("hospital", HOSPITAL_ROLE)  # the member gone bad for the regulator's own calls

MATRIX = {
    "admitMember(pharmacy)": row(admit_a_pharmacy, {"regulator"}, *H, "MemberAdmitted", needs_regulator),
    "admitMember(doctor)": row(admit_a_doctor, {"hospital"}, *H, "MemberAdmitted", needs(HOSPITAL_ROLE)),
    "renewMember(doctor)": row(
        renew_the_doctor, {"regulator", "hospital"}, *H, "CredentialRenewed", hospital_of("doctor")
    ),
    "renewMember(pharmacy)": row(
        renew_the_pharmacy, {"regulator"}, *H, "CredentialRenewed", not_a_doctor_of("pharmacy")
    ),
    "revokeRole(doctor)": row(revoke_the_doctor, {"regulator", "hospital"}, *H, "RoleRevoked", hospital_of("doctor")),
    "revokeRole(pharmacy)": row(revoke_the_pharmacy, {"regulator"}, *H, "RoleRevoked", needs_regulator),
    "issue": row(issue, {"doctor"}, "doctor", DOCTOR_ROLE, "PrescriptionIssued", needs(DOCTOR_ROLE)),
    "issueBatch": row(issue_a_batch, {"hospital"}, *H, "BatchIssued", needs(HOSPITAL_ROLE)),
    "redeemBatched": row(
        redeem_from_the_batch, {"pharmacy"}, "pharmacy", PHARMACY_ROLE, "PrescriptionRedeemed", needs(PHARMACY_ROLE)
    ),
    "cancelBatched": row(
        cancel_one_of_the_batch, {"regulator", "hospital"}, *H, "PrescriptionCancelled", batch_manager("id")
    ),
    "cancelBatch": row(withdraw_the_batch, {"regulator", "hospital"}, *H, "BatchCancelled", batch_manager("root")),
    "cancel": row(
        cancel_the_active, {"regulator", "doctor"}, "doctor", DOCTOR_ROLE, "PrescriptionCancelled", issuing_doctor
    ),
    "redeem": row(
        redeem_the_active, {"pharmacy"}, "pharmacy", PHARMACY_ROLE, "PrescriptionRedeemed", needs(PHARMACY_ROLE)
    ),
    "dispatch": row(
        dispatch_the_dispensed,
        {"pharmacy"},
        "pharmacy",
        PHARMACY_ROLE,
        "PrescriptionDispatched",
        holder_of("dispensed", "pharmacy", PHARMACY_ROLE),
    ),
    "deliver": row(
        deliver_the_dispatched,
        {"courier"},
        "courier",
        COURIER_ROLE,
        "PrescriptionDelivered",
        holder_of("dispatched", "courier", COURIER_ROLE),
    ),
    "deliver(over-the-counter)": row(
        deliver_the_dispensed_over_the_counter,
        {"pharmacy"},
        "pharmacy",
        PHARMACY_ROLE,
        "PrescriptionDelivered",
        holder_of("dispensed", "pharmacy", PHARMACY_ROLE),
    ),
    "deliverWithReceipt": row(
        deliver_the_dispatched_with_receipt,
        {"courier"},
        "courier",
        COURIER_ROLE,
        "ReceiptConfirmed",
        holder_of("dispatched", "courier", COURIER_ROLE),
    ),
    # Anyone may relay the patient's receipt: the claim key's signature is the authority.
    "confirmReceipt": row(confirm_receipt_of_the_delivered, EVERYONE, "courier", COURIER_ROLE, "ReceiptConfirmed"),
    "reassignCustody": row(
        reassign_the_dispensed,
        {"regulator"},
        *H,
        "CustodyReassigned",
        needs_regulator,
        setup=pharmacy_revoked_while_holding,
    ),
    "voidCustody": row(
        void_the_dispensed, {"regulator"}, *H, "CustodyVoided", needs_regulator, setup=pharmacy_revoked_while_holding
    ),
    "allowReadmission": row(
        allow_the_auditor_back, {"regulator"}, *H, "ReadmissionAllowed", needs_regulator, setup=barred_by_the_regulator
    ),
    "pause": row(pause, {"regulator"}, *H, "Paused", needs_regulator),
    "unpause": row(unpause, {"regulator"}, *H, "Unpaused", needs_regulator, setup=paused_by_the_regulator),
    "setLimits": row(set_limits, {"regulator"}, *H, "LimitsChanged", needs_regulator),
    "beginDefaultAdminTransfer": row(
        begin_regulator_handover, {"regulator"}, *H, "DefaultAdminTransferScheduled", needs_regulator
    ),
    "cancelDefaultAdminTransfer": row(
        cancel_regulator_handover,
        {"regulator"},
        *H,
        "DefaultAdminTransferCanceled",
        needs_regulator,
        setup=handover_begun,
    ),
    "changeDefaultAdminDelay": row(
        change_handover_delay, {"regulator"}, *H, "DefaultAdminDelayChangeScheduled", needs_regulator
    ),
    "rollbackDefaultAdminDelay": row(
        roll_back_handover_delay,
        {"regulator"},
        *H,
        "DefaultAdminDelayChangeCanceled",
        needs_regulator,
        setup=delay_change_scheduled,
    ),
}

CASES = [pytest.param(name, actor, id=f"{name}-by-{actor}") for name in MATRIX for actor in ACTORS]


# -------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def staged(module_clinic):
    """One prescription at each step of the trail, all issued by ``doctor``, filled by ``pharmacy`` and
    carried by ``courier``; and a batch of two that ``hospital`` issued for ``doctor``."""
    c = module_clinic
    return {
        "active": c.issue(),
        "dispensed": c.dispensed(),
        "dispatched": c.dispatched(),
        "delivered": c.delivered(),
        "batch": c.issue_batch(size=2),
    }


@pytest.fixture
def ctx(registry, chain, clinic, parties, staged):
    return Context(registry, chain, clinic, parties, staged)


def gone_bad(ctx, actor, entry):
    """The account that sends the call: a named party, or the row's member with its credential ended
    (``expired``) or its role revoked (``revoked``)."""
    if actor not in ("expired", "revoked"):
        return ctx.parties[actor]
    member = ctx.parties[entry.member]
    regulator = ctx.parties["regulator"]
    if actor == "expired":
        ctx.credential_ended_at = ctx.chain.pending_timestamp + MINUTE
        ctx.registry.renewMember(member, ctx.credential_ended_at, sender=regulator)
        travel_to(ctx.chain, ctx.credential_ended_at + 1)
        assert not ctx.registry.hasRole(entry.member_role, member)
    else:
        ctx.registry.revokeRole(entry.member_role, member, sender=regulator)
        assert not ctx.registry.hasRole(entry.member_role, member)
    return member


# -------------------------------------------------------------------------------------- the test


@pytest.mark.parametrize("name, actor", CASES)
def test_only_the_intended_callers_pass(ctx, reverts, name, actor):
    entry = MATRIX[name]
    if entry.setup:
        entry.setup(ctx)
    account = gone_bad(ctx, actor, entry)

    if actor in entry.allowed:
        tx = entry.call(ctx, account)
        assert entry.emits in [event_name for event_name, _ in registry_events(tx, ctx.registry)]
    else:
        error, arguments = entry.refusal(ctx, actor, account)
        with reverts(error, **arguments):
            entry.call(ctx, account)


def test_the_table_covers_every_state_changing_function(registry):
    """Every non-view function of the registry is a row, but for these, whose callers test_roles checks:
    grantRole (closed to member roles), renounceRole (one's own role), acceptDefaultAdminTransfer (only
    the pending regulator)."""
    covered = {name.split("(")[0] for name in MATRIX}
    elsewhere = {"grantRole", "renounceRole", "acceptDefaultAdminTransfer"}
    state_changing = {abi.name for abi in registry.contract_type.mutable_methods}
    assert state_changing == covered | elsewhere


# Errors in the ABI that no call can raise: OpenZeppelin's EIP712 name/version handling (the name and
# version are constants that fit) and SafeCast of block.timestamp to uint48 (it overflows in nine
# million years).
UNREACHABLE_ERRORS = {"InvalidShortString", "StringTooLong", "SafeCastOverflowedUintDowncast"}


def test_every_custom_error_is_provoked_by_some_test(registry):
    """A new error in the contract needs a test that provokes it (through ``reverts``, or in this table)."""
    sources = "\n".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    in_reverts = re.findall(r"reverts\(\s*registry\.(\w+)", sources)
    in_this_table = re.findall(r'return "(\w+)", \{', sources)
    named = set(in_reverts) | set(in_this_table)
    errors = {abi.name for abi in registry.contract_type.errors}
    assert errors - UNREACHABLE_ERRORS - named == set()
    assert named - errors == set()
