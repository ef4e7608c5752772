"""ConsortiumPermissioning.transactionAllowed, as the view a Besu node calls, for every role and state,
on an ephemeral chain with the real registry behind it."""

from __future__ import annotations

import pytest
from ape.exceptions import ContractLogicError
from eth_utils import keccak

from rxchain.core.ids import ZERO_ADDRESS as ZERO

DAY = 86_400
ROLES = {
    "hospital": keccak(text="HOSPITAL_ROLE"),
    "pharmacy": keccak(text="PHARMACY_ROLE"),
    "courier": keccak(text="COURIER_ROLE"),
    "auditor": keccak(text="AUDITOR_ROLE"),
}
DOCTOR_ROLE = keccak(text="DOCTOR_ROLE")


@pytest.fixture(scope="module")
def parties(accounts):
    names = ["regulator", "hospital", "doctor", "pharmacy", "courier", "auditor", "stranger", "lapsed", "revoked"]
    return dict(zip(names, accounts))


@pytest.fixture(scope="module")
def registry(project, parties, chain):
    regulator = parties["regulator"]
    registry = project.PrescriptionRegistry.deploy(regulator, DAY, 3 * DAY, 3, sender=regulator)
    until = chain.pending_timestamp + 365 * DAY
    for name, role in ROLES.items():
        registry.admitMember(parties[name], role, until, sender=regulator)
    registry.admitMember(parties["doctor"], DOCTOR_ROLE, until, sender=parties["hospital"])
    registry.admitMember(parties["lapsed"], ROLES["pharmacy"], chain.pending_timestamp + DAY, sender=regulator)
    registry.admitMember(parties["revoked"], ROLES["courier"], until, sender=regulator)
    registry.revokeRole(ROLES["courier"], parties["revoked"], sender=regulator)
    return registry


@pytest.fixture(scope="module")
def permissioning(project, registry, parties):
    return project.ConsortiumPermissioning.deploy(registry, sender=parties["regulator"])


def allowed(permissioning, sender, target) -> bool:
    return permissioning.transactionAllowed(sender, target, 0, 0, 100_000, b"")


@pytest.mark.parametrize("who", ["regulator", "hospital", "doctor", "pharmacy", "courier", "auditor"])
def test_member_in_good_standing_may_call_the_registry(permissioning, registry, parties, who):
    assert allowed(permissioning, parties[who], registry.address)


@pytest.mark.parametrize("who", ["stranger", "revoked"])
def test_stranger_and_revoked_member_may_not_transact(permissioning, registry, parties, who):
    assert not allowed(permissioning, parties[who], registry.address)


def test_member_whose_credential_ended_may_not_transact(permissioning, registry, parties, chain):
    assert allowed(permissioning, parties["lapsed"], registry.address)
    chain.mine(timestamp=registry.member(parties["lapsed"]).validUntil + 1)

    assert not allowed(permissioning, parties["lapsed"], registry.address)


def test_member_may_transact_through_the_last_second_of_its_credential(permissioning, registry, parties, chain):
    """validUntil is the credential's last live second, for the chain as for the registry's own checks."""
    until = registry.member(parties["lapsed"]).validUntil
    chain.mine(timestamp=until)
    assert chain.blocks.head.timestamp == until

    assert allowed(permissioning, parties["lapsed"], registry.address)
    assert registry.isMemberInGoodStanding(parties["lapsed"], ROLES["pharmacy"])


def test_only_the_regulator_may_deploy(permissioning, parties):
    assert allowed(permissioning, parties["regulator"], ZERO)
    for who in ("hospital", "doctor", "pharmacy", "courier", "auditor", "stranger"):
        assert not allowed(permissioning, parties[who], ZERO), who


def test_revocation_takes_effect_in_the_next_call(permissioning, registry, parties):
    registry.revokeRole(ROLES["auditor"], parties["auditor"], sender=parties["regulator"])

    assert not allowed(permissioning, parties["auditor"], registry.address)


def test_renewal_restores_a_lapsed_member(permissioning, registry, parties, chain):
    chain.mine(timestamp=registry.member(parties["lapsed"]).validUntil + 1)
    registry.renewMember(parties["lapsed"], chain.pending_timestamp + DAY, sender=parties["regulator"])

    assert allowed(permissioning, parties["lapsed"], registry.address)


def test_it_answers_from_the_registry_it_was_deployed_with(permissioning, registry):
    """The node operators check which registry a permissioning contract reads before they point Besu at it."""
    assert permissioning.registry() == registry.address


def test_it_cannot_be_deployed_without_a_registry(project, parties):
    with pytest.raises(ContractLogicError) as refused:
        project.ConsortiumPermissioning.deploy(ZERO, sender=parties["regulator"])

    # ape leaves a failed deployment's custom error undecoded: the revert data is ZeroRegistry()'s selector.
    assert refused.value.revert_message == "0x" + keccak(text="ZeroRegistry()")[:4].hex()
