"""The build output (ABIs) and deployment records that every other part reads.

``.build/__local__.json`` is ape's compiled manifest; the ABIs come from there, never copied by hand.
``deployments/<network>.json`` records a deployed registry: its address, chain id, the block it was
deployed in (where log scans start), the regulator, and the DrugBoxes contract beside it. The dApp reads the same files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from rxchain.errors import BuildNotFound, DeploymentNotFound
from rxchain.paths import build_manifest, deployments_dir

REGISTRY_CONTRACT = "PrescriptionRegistry"
BOXES_CONTRACT = "DrugBoxes"


class Deployment(BaseModel):
    """A deployed registry on one network."""

    model_config = ConfigDict(frozen=True)

    network: str
    chain_id: int
    registry: str
    deploy_block: int
    deploy_tx: str
    regulator: str
    evm_version: str
    rpc_url: str | None = None
    #: keccak256 of the deployment bytecode: tells whether the build has changed since.
    bytecode_hash: str | None = None
    #: DrugBoxes (boxes and insurance claims) beside the registry, and its bytecode's hash.
    boxes: str | None = None
    boxes_bytecode_hash: str | None = None


def load_abi(contract: str = REGISTRY_CONTRACT, manifest: Path | None = None) -> list[dict]:
    """The ABI of a compiled contract, from the build manifest."""
    return _contract_type(contract, manifest)["abi"]


def load_bytecode(contract: str = REGISTRY_CONTRACT, manifest: Path | None = None) -> str:
    """The deployment bytecode of a compiled contract, 0x-hex."""
    return _contract_type(contract, manifest)["deploymentBytecode"]["bytecode"]


def bytecode_hash(contract: str = REGISTRY_CONTRACT) -> str:
    """keccak256 of the built deployment bytecode, 0x-hex."""
    from eth_utils import keccak

    return "0x" + keccak(hexstr=load_bytecode(contract)).hex()


def deployment_path(network: str) -> Path:
    """Where the record for ``network`` lives."""
    return deployments_dir() / f"{network}.json"


def load_deployment(network: str = "devnet") -> Deployment:
    """The deployment record for ``network``."""
    path = deployment_path(network)
    if not path.is_file():
        raise DeploymentNotFound(
            f"no deployment recorded for network {network!r} ({path}): run `rx deploy` (or `ape run deploy`) first"
        )
    return Deployment.model_validate_json(path.read_text())


def save_deployment(deployment: Deployment) -> Path:
    """Writes the record atomically (a reader never sees half a file)."""
    path = deployment_path(deployment.network)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".deploy-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        out.write(deployment.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _contract_type(contract: str, manifest: Path | None) -> dict:
    path = manifest or build_manifest()
    if not path.is_file():
        raise BuildNotFound(f"compiled contracts not found ({path}): run `ape compile` (or tools/setup.sh) first")
    types = json.loads(path.read_text()).get("contractTypes", {})
    if contract not in types:
        raise BuildNotFound(f"{contract} is not in {path}: run `ape compile`")
    return types[contract]
