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


ACCEPT = bytes.fromhex("cefc1429")  # acceptDefaultAdminTransfer()


def test_pending_regulator_cannot_send_anything_but_its_acceptance_when_the_handover_is_begun(
    permissioning, registry, parties, chain
):
    successor, regulator = parties["successor"], parties["regulator"]
    assert registry.acceptDefaultAdminTransfer.encode_input() == ACCEPT
    assert not allowed(permissioning, successor, registry.address, ACCEPT)  # nothing begun yet

    registry.beginDefaultAdminTransfer(successor, sender=regulator)

    assert allowed(permissioning, successor, registry.address, ACCEPT)
    assert not allowed(permissioning, successor, registry.address, registry.pause.encode_input())
    assert not allowed(permissioning, successor, permissioning.address, ACCEPT)
    assert not allowed(permissioning, parties["stranger"], registry.address, ACCEPT)
    chain.mine(timestamp=chain.pending_timestamp + DAY + 1)
    registry.acceptDefaultAdminTransfer(sender=successor)
    assert allowed(permissioning, successor, "0x" + "00" * 20)  # the regulator now: it may even deploy
    assert not allowed(permissioning, regulator, registry.address, registry.pause.encode_input())


def test_allowlist_cannot_leave_out_the_pending_regulator_when_the_handover_is_begun(registry, parties, chain):
    from rxchain.chain.client import RegistryClient
    from rxchain.network.registry import registry_allowlist

    client = RegistryClient(chain.provider.web3, registry.address)
    successor = parties["successor"].address.lower()
    assert successor not in registry_allowlist(client)

    registry.beginDefaultAdminTransfer(parties["successor"], sender=parties["regulator"])

    assert successor in registry_allowlist(client)


def test_allowlist_cannot_keep_a_doctor_when_its_hospital_is_revoked(registry, parties, chain):
    from rxchain.chain.client import RegistryClient
    from rxchain.network.registry import registry_allowlist

    client = RegistryClient(chain.provider.web3, registry.address)
    doctor = parties["doctor"].address.lower()
    assert doctor in registry_allowlist(client)

    registry.revokeRole(HOSPITAL_ROLE, parties["hospital"], sender=parties["regulator"])

    assert doctor not in registry_allowlist(client)
