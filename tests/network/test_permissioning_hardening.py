"""transactionAllowed after the outside review (issue 11): a revoked or lapsed hospital's doctors stop at
once (finding 3), and the pending regulator of a two-step handover can accept it (finding 5)."""

from __future__ import annotations

import pytest
from eth_utils import keccak

DAY = 86_400
HOSPITAL_ROLE = keccak(text="HOSPITAL_ROLE")
DOCTOR_ROLE = keccak(text="DOCTOR_ROLE")


@pytest.fixture(scope="module")
def parties(accounts):
    return dict(zip(["regulator", "hospital", "doctor", "successor", "stranger"], accounts))


@pytest.fixture(scope="module")
def registry(project, parties, chain):
    regulator = parties["regulator"]
    registry = project.PrescriptionRegistry.deploy(regulator, DAY, 3 * DAY, 3, sender=regulator)
    until = chain.pending_timestamp + 365 * DAY
    registry.admitMember(parties["hospital"], HOSPITAL_ROLE, until, sender=regulator)
    registry.admitMember(parties["doctor"], DOCTOR_ROLE, until, sender=parties["hospital"])
    return registry


@pytest.fixture(scope="module")
def permissioning(project, registry, parties):
    return project.ConsortiumPermissioning.deploy(registry, sender=parties["regulator"])


def allowed(permissioning, sender, target, data=b"") -> bool:
    return permissioning.transactionAllowed(sender, target, 0, 0, 100_000, data)


@pytest.mark.parametrize("how", ["revoked", "lapsed"])
def test_doctor_cannot_transact_when_its_hospital_is_gone(permissioning, registry, parties, chain, how):
    assert allowed(permissioning, parties["doctor"], registry.address)
    if how == "revoked":
        registry.revokeRole(HOSPITAL_ROLE, parties["hospital"], sender=parties["regulator"])
    else:
        # The regulator cuts the hospital's credential short; the doctor's licence runs on.
        end = chain.pending_timestamp + 60
        registry.renewMember(parties["hospital"], end, sender=parties["regulator"])
        chain.mine(timestamp=end + 1)

    assert registry.member(parties["doctor"]).validUntil >= chain.pending_timestamp  # its own licence is live
    assert not allowed(permissioning, parties["doctor"], registry.address)
