"""Deploy the registry: ``ape run deploy --network ethereum:devnet:node`` (or ``ethereum:besu:node``).

Free-gas transaction; the address is recorded in deployments/<network>.json for the other scripts,
the ``rx`` command and the dApp. The signer is $RXCHAIN_DEPLOYER (a keystore path or env:VAR); on the
devnet it defaults to the development regulator.
"""

from ape import networks
from rich.console import Console

from rxchain.chain.deploy import deploy_registry, deployer_account


def main():
    provider = networks.provider
    network = provider.network.name
    ephemeral = network == "local"
    deployment = deploy_registry(
        provider.web3,
        deployer_account(network),
        network=network,
        rpc_url=None if ephemeral else getattr(provider, "uri", None),
        record=not ephemeral,
    )
    Console().print(
        f"[green]PrescriptionRegistry[/] deployed at [bold]{deployment.registry}[/] on {network} "
        f"(chain {deployment.chain_id}, block {deployment.deploy_block}, evm {deployment.evm_version}); "
        f"[green]DrugBoxes[/] at [bold]{deployment.boxes}[/]"
    )
    return deployment
