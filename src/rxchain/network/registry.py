"""The consortium's membership as Besu permissioning: read from the on-chain role registry.

The registry is the source of truth; the allowlist files and the nodes' in-memory allowlists follow it.
"""

from __future__ import annotations

from rxchain.chain.client import RegistryClient
from rxchain.network.permissions import Member, allowed_accounts


def registry_members(client: RegistryClient) -> list[Member]:
    """Every account ever admitted, with its roles now (no roles left: revoked)."""
    return [Member(m.account, frozenset(m.roles), m.valid_until, revoked=not m.roles) for m in client.members()]


def registry_allowlist(client: RegistryClient, *, extra: tuple[str, ...] = ()) -> list[str]:
    """The accounts that may transact now: members in good standing, the regulator, and ``extra``."""
    deployment_regulators = tuple(a for a in _regulators(client))
    return allowed_accounts(registry_members(client), client.latest_block_time(), extra=deployment_regulators + extra)


def _regulators(client: RegistryClient) -> list[str]:
    owner = client.contract.functions.defaultAdmin().call()
    return [owner] if int(owner, 16) else []
