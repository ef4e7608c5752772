"""Deploying the registry: one way, used by ``ape run deploy`` and ``rx deploy`` alike."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3 import Web3

from rxchain.chain.deployment import REGISTRY_CONTRACT, Deployment, bytecode_hash, load_abi, load_bytecode, save_deployment
from rxchain.errors import TransactionFailed
from rxchain.paths import evm_version

#: China's rule: a prescription is valid the day it is issued, extendable to at most 3 days.
DEFAULT_MAX_VALIDITY_SECONDS = 3 * 24 * 3600
DEFAULT_MAX_FILLS = 3
#: A regulator handover waits this long before it can be accepted.
DEFAULT_ADMIN_TRANSFER_DELAY = 2 * 24 * 3600


def deploy_registry(
    w3: Web3,
    deployer: LocalAccount,
    *,
    network: str,
    regulator: str | None = None,
    admin_transfer_delay: int = DEFAULT_ADMIN_TRANSFER_DELAY,
    max_validity_seconds: int = DEFAULT_MAX_VALIDITY_SECONDS,
    max_fills: int = DEFAULT_MAX_FILLS,
    rpc_url: str | None = None,
    record: bool = True,
) -> Deployment:
    """Deploys a PrescriptionRegistry with a free-gas transaction and records it for ``network``."""
    factory = w3.eth.contract(abi=load_abi(REGISTRY_CONTRACT), bytecode=load_bytecode(REGISTRY_CONTRACT))
    regulator = regulator or deployer.address
    constructor = factory.constructor(regulator, admin_transfer_delay, max_validity_seconds, max_fills)
    gas = constructor.estimate_gas({"from": deployer.address, "gasPrice": 0})
    tx = constructor.build_transaction(
        {
            "from": deployer.address,
            "nonce": w3.eth.get_transaction_count(deployer.address, "pending"),
            "gas": int(gas * 1.2),
            "gasPrice": 0,
            "chainId": w3.eth.chain_id,
        }
    )
    tx.pop("maxFeePerGas", None)
    tx.pop("maxPriorityFeePerGas", None)
    signed = deployer.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.1)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise TransactionFailed(f"deploying {REGISTRY_CONTRACT} failed in transaction {tx_hash.hex()}")
    deployment = Deployment(
        network=network,
        chain_id=w3.eth.chain_id,
        registry=receipt["contractAddress"],
        deploy_block=receipt["blockNumber"],
        deploy_tx="0x" + bytes(receipt["transactionHash"]).hex(),
        regulator=regulator,
        evm_version=evm_version(),
        rpc_url=rpc_url,
        bytecode_hash=bytecode_hash(REGISTRY_CONTRACT),
    )
    if record:
        save_deployment(deployment)
    return deployment
