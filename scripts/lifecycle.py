"""Onboard a regulator, hospital, doctor, pharmacy and courier, then take one prescription through
issue -> redeem -> dispatch -> delivered -> receipt confirmed, and print its timestamped trail.

``ape run lifecycle --network ethereum:devnet:node`` (after ``ape run deploy``). Development
identities sign; on another network use the ``rx`` command with real keys.
"""

from ape import networks
from rich.console import Console

from rxchain.chain.client import RegistryClient
from rxchain.chain.deployment import load_deployment
from rxchain.chain.signers import dev_accounts
from rxchain.dev.demo import run_lifecycle


def main():
    provider = networks.provider
    deployment = load_deployment(provider.network.name)
    client = RegistryClient(provider.web3, deployment.registry, deploy_block=deployment.deploy_block)
    client.check_deployment(deployment)
    console = Console()
    console.rule(f"rxchain lifecycle on {provider.network.name} (chain {client.chain_id})")
    return run_lifecycle(client, dev_accounts(), console)
