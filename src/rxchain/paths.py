"""Where the project keeps things: the checkout, its build output, the devnet and deployments."""

from __future__ import annotations

import os
from pathlib import Path

import yaml


def project_root() -> Path:
    """The checkout's root (the folder holding ape-config.yaml); $RXCHAIN_ROOT overrides."""
    env = os.environ.get("RXCHAIN_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "ape-config.yaml").is_file():
            return parent
    return Path.cwd()


def build_manifest() -> Path:
    """The compiled contracts (ape's manifest, with every ABI)."""
    return project_root() / ".build" / "__local__.json"


def deployments_dir() -> Path:
    """Deployment records, one JSON file per network (read by scripts, the CLI and the dApp);
    $RXCHAIN_DEPLOYMENTS overrides (tests keep theirs apart)."""
    env = os.environ.get("RXCHAIN_DEPLOYMENTS")
    return Path(env) if env else project_root() / "deployments"


def devnet_dir() -> Path:
    """The devnet's state, pid and log files."""
    return project_root() / ".devnet"


#: The EVM version when ape-config.yaml names none: one that every current Besu network runs.
DEFAULT_EVM_VERSION = "london"


def evm_version(root: Path | None = None) -> str:
    """The project's EVM version: the one setting ``solidity.evm_version`` in ``ape-config.yaml`` (of
    ``root``, default the checkout), lower case; :data:`DEFAULT_EVM_VERSION` when absent. A file that
    is not valid YAML raises :class:`yaml.YAMLError`."""
    path = Path(root or project_root()) / "ape-config.yaml"
    if not path.is_file():
        return DEFAULT_EVM_VERSION
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    solidity = config.get("solidity") if isinstance(config, dict) else None
    value = solidity.get("evm_version") if isinstance(solidity, dict) else None
    return str(value).strip().lower() if value is not None and str(value).strip() else DEFAULT_EVM_VERSION


def tool_env() -> dict[str, str]:
    """The environment ape, py-solc-x and anvil need in child processes."""
    root = project_root()
    env = dict(os.environ)
    env.setdefault("SOLCX_BINARY_PATH", str(root / ".solcx"))
    env.setdefault("APE_DATA_FOLDER", str(root / ".ape"))
    env["PATH"] = os.pathsep.join(
        [str(root / ".venv" / "bin"), str(root / "node_modules" / ".bin"), env.get("PATH", "")]
    )
    return env


def network_chain_id(name: str) -> int | None:
    """The chain id ape-config.yaml gives custom network ``name`` (e.g. ``besu``), if any."""
    config = yaml.safe_load((project_root() / "ape-config.yaml").read_text())
    for network in (config.get("networks") or {}).get("custom") or []:
        if network.get("name") == name:
            return int(network["chain_id"])
    return None
