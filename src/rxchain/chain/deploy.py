"""Deploying the registry: one way, used by ``ape run deploy`` and ``rx deploy`` alike."""

from __future__ import annotations

import os

from eth_account.signers.local import LocalAccount
from web3 import Web3

from rxchain.chain.reverts import RevertDecoder
from rxchain.chain.sender import TransactionSender
from rxchain.chain.signers import load_signer
from rxchain.chain.deployment import (
    BOXES_CONTRACT,
    REGISTRY_CONTRACT,
    Deployment,
    bytecode_hash,
    load_abi,
    load_bytecode,
    save_deployment,
)
from rxchain.errors import TransactionFailed
from rxchain.paths import evm_version

#: China's rule: a prescription is valid the day it is issued, extendable to at most 3 days.
DEFAULT_MAX_VALIDITY_SECONDS = 3 * 24 * 3600
DEFAULT_MAX_FILLS = 3
#: A regulator handover waits this long before it can be accepted.
DEFAULT_ADMIN_TRANSFER_DELAY = 2 * 24 * 3600


def deployer_account(network: str) -> LocalAccount:
    """Who deploys: $RXCHAIN_DEPLOYER (a keystore path or env:VAR); on the devnet and the test chain,
    the development regulator when it is not set."""
    return load_signer(os.environ.get("RXCHAIN_DEPLOYER", "regulator"), allow_dev=network in ("devnet", "local"))


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
    sender: TransactionSender | None = None,
    with_boxes: bool = True,
) -> Deployment:
    """Deploys a PrescriptionRegistry with a free-gas transaction and records it for ``network``;
    with ``with_boxes``, then DrugBoxes reading it (boxes and insurance claims).

    The transaction goes through a :class:`~rxchain.chain.sender.TransactionSender` (``sender``, or
    one of its own with an in-memory outbox): a constructor that would revert is refused, named,
    before anything is sent."""
    abi = load_abi(REGISTRY_CONTRACT)
    factory = w3.eth.contract(abi=abi, bytecode=load_bytecode(REGISTRY_CONTRACT))
    regulator = regulator or deployer.address
    constructor = factory.constructor(regulator, admin_transfer_delay, max_validity_seconds, max_fills)
    engine = sender or TransactionSender(w3, decoder=RevertDecoder(abi))
    result = engine.transact(deployer, constructor, description=f"deploy {REGISTRY_CONTRACT}")
    if not result.contract_address:
        raise TransactionFailed(f"deploying {REGISTRY_CONTRACT} created no contract (transaction {result.tx_hash})")
    boxes = deploy_boxes(w3, deployer, result.contract_address, engine) if with_boxes else None
    deployment = Deployment(
        network=network,
        chain_id=engine.chain_id,
        registry=result.contract_address,
        deploy_block=result.block_number,
        deploy_tx=result.tx_hash,
        regulator=regulator,
        evm_version=evm_version(),
        rpc_url=rpc_url,
        bytecode_hash=bytecode_hash(REGISTRY_CONTRACT),
        boxes=boxes,
        boxes_bytecode_hash=bytecode_hash(BOXES_CONTRACT) if boxes else None,
    )
    if record:
        save_deployment(deployment)
    return deployment


def deploy_boxes(w3: Web3, deployer: LocalAccount, registry: str, sender: TransactionSender | None = None) -> str:
    """Deploys DrugBoxes reading ``registry``; returns its address."""
    abi = load_abi(BOXES_CONTRACT)
    factory = w3.eth.contract(abi=abi, bytecode=load_bytecode(BOXES_CONTRACT))
    engine = sender or TransactionSender(w3, decoder=RevertDecoder(abi))
    result = engine.transact(deployer, factory.constructor(registry), description=f"deploy {BOXES_CONTRACT}")
    if not result.contract_address:
        raise TransactionFailed(f"deploying {BOXES_CONTRACT} created no contract (transaction {result.tx_hash})")
    return result.contract_address
