"""The consortium's membership as Besu permissioning: read from the on-chain role registry.

The registry is the source of truth; the allowlist files and the nodes' in-memory allowlists follow it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rxchain.chain.client import RegistryClient
from rxchain.network.permissions import Member, allowed_accounts


def registry_members(client: RegistryClient, admitted: Sequence[str] | None = None) -> list[Member]:
    """Every account ever admitted, with its roles now (no roles left: revoked). A doctor whose hospital is
    revoked or lapsed counts as revoked too, as ConsortiumPermissioning.transactionAllowed answers.

    ``admitted``: the accounts ever admitted when the caller already knows them (the follower keeps
    them from the blocks it read); by default they are read from every MemberAdmitted event."""
    records = client.members() if admitted is None else [client.member(account) for account in admitted]
    now = client.latest_block_time()
    live_hospitals = {m.account for m in records if "hospital" in m.roles and m.valid_until >= now}
    return [
        Member(
            m.account,
            frozenset(m.roles),
            m.valid_until,
            revoked=not m.roles or (set(m.roles) == {"doctor"} and m.hospital not in live_hospitals),
        )
        for m in records
    ]


def registry_allowlist(
    client: RegistryClient, *, extra: tuple[str, ...] = (), admitted: Sequence[str] | None = None
) -> list[str]:
    """The accounts that may transact now: members in good standing, the regulator, and ``extra``
    (``admitted`` as for :func:`registry_members`)."""
    deployment_regulators = tuple(a for a in _regulators(client))
    return allowed_accounts(
        registry_members(client, admitted), client.latest_block_time(), extra=deployment_regulators + extra
    )


def _regulators(client: RegistryClient) -> list[str]:
    """The regulator, and the pending regulator of a two-step handover (it must be able to send its
    acceptDefaultAdminTransfer; the permissioning contract lets it send nothing else)."""
    owner = client.contract.functions.defaultAdmin().call()
    pending, _ = client.contract.functions.pendingDefaultAdmin().call()
    return [a for a in (owner, pending) if int(a, 16)]
