"""The consortium network kit: everything needed to run rxchain's Hyperledger Besu QBFT network.

:func:`init_network` writes, into one directory, a QBFT genesis (validators in ``extraData``,
free gas, milestones matching the project's EVM version), one secp256k1 node key per node, and
per node a Besu ``config.toml``, ``static-nodes.json``, a local-permissioning file and a start
script, plus ``start-all.sh`` / ``stop-all.sh``, a ``README.txt`` and a ``kit.json`` manifest.

Layout of a generated kit (``<kit>`` is the directory given to :func:`init_network`)::

    <kit>/kit.json                         manifest (no secrets), read back by load_kit()
    <kit>/genesis.json                     QBFT genesis shared by every node
    <kit>/README.txt                       nodes, ports, how to start and stop them
    <kit>/start-all.sh, <kit>/stop-all.sh  start every node in the background / stop them
    <kit>/nodes/<node>/config.toml         Besu options for the node (paths relative to the node dir)
    <kit>/nodes/<node>/start.sh            cd to the node dir, exec besu --config-file=config.toml
    <kit>/nodes/<node>/data/key            node private key (0x-hex, mode 0600): the node's identity
    <kit>/nodes/<node>/data/key.pub        node public key (0x + 128 hex)
    <kit>/nodes/<node>/data/static-nodes.json      enode URLs of every other node
    <kit>/nodes/<node>/data/permissions_config.toml accounts-allowlist and nodes-allowlist

Nodes are named ``validator-1..N`` (they seal blocks; their addresses are in the genesis
``extraData``) and ``member-1..M`` (full nodes for consortium members, not validators).

Nothing here runs Besu: the kit is generated and checked offline. See docs/besu-network-kit.md.

This module stages and writes the kit; what goes into it comes from :mod:`rxchain.network.genesis`
(genesis, milestones, ``extraData``), :mod:`rxchain.network.keys` (node keys and enode URLs) and
:mod:`rxchain.network.templates` (config.toml, scripts, README); its errors are in
:mod:`rxchain.network.errors`. Every name stays importable from here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from eth_utils import is_address
from pydantic import BaseModel, ConfigDict

from rxchain.network.permissions import write_permissions_config
from rxchain.paths import DEFAULT_EVM_VERSION
from rxchain.paths import evm_version as project_evm_version
from rxchain.network.errors import (
    InvalidExtraDataError,
    InvalidKitParameterError,
    KitDirectoryNotEmptyError,
    KitError,
    KitExistsError,
    KitNotFoundError,
    KitRunningError,
    KitWarning,
    PortConflictError,
    UnsupportedEvmVersionError,
)
from rxchain.network.genesis import (
    DEFAULT_CHAIN_ID,
    QBFT_MIX_HASH,
    SUPPORTED_EVM_VERSIONS,
    _build_alloc,
    _normalise_evm_version,
    build_genesis,
    decode_extra_data,
    encode_extra_data,
    milestones_for,
)
from rxchain.network.keys import _generate_private_key, _url_host, enode_url, node_address, node_public_key
from rxchain.network.templates import (
    RPC_APIS,
    _render_node_config,
    _render_readme,
    _render_start_all,
    _render_start_script,
    _render_stop_all,
)

__all__ = [
    "DEFAULT_CHAIN_ID",
    "DEFAULT_EVM_VERSION",
    "SUPPORTED_EVM_VERSIONS",
    "RPC_APIS",
    "QBFT_MIX_HASH",
    "KitError",
    "KitExistsError",
    "KitDirectoryNotEmptyError",
    "KitRunningError",
    "InvalidKitParameterError",
    "PortConflictError",
    "UnsupportedEvmVersionError",
    "InvalidExtraDataError",
    "KitNotFoundError",
    "KitWarning",
    "NodeInfo",
    "NodePaths",
    "NetworkKit",
    "init_network",
    "load_kit",
    "build_genesis",
    "milestones_for",
    "encode_extra_data",
    "decode_extra_data",
    "node_public_key",
    "node_address",
    "enode_url",
    "read_project_evm_version",
]

# ----------------------------------------------------------------------------------------------
# Constants
# ----------------------------------------------------------------------------------------------

_MIN_BFT_VALIDATORS = 4
_KIT_MANIFEST = "kit.json"
_KIT_FORMAT = 1
_GENERATED_ROOT_ENTRIES = ("kit.json", "genesis.json", "README.txt", "start-all.sh", "stop-all.sh", "nodes")

# Chain ids of public networks: reusing one lets a transaction be replayed there.
_PUBLIC_CHAIN_IDS = {1: "Ethereum mainnet", 11155111: "Sepolia", 17000: "Holesky", 560048: "Hoodi"}


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


class NodeInfo(BaseModel):
    """One node of the kit: its identity and where it listens."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Literal["validator", "member"]
    address: str
    """Node address (checksummed): keccak256 of the node public key, last 20 bytes. For a
    validator this is the validator address in the genesis extraData."""
    public_key: str
    """Node public key: 0x + 128 hex characters (uncompressed point without the 04 prefix)."""
    enode: str
    host: str
    p2p_port: int
    rpc_port: int
    metrics_port: int

    @property
    def rpc_url(self) -> str:
        """The node's HTTP JSON-RPC URL."""
        return f"http://{_url_host(self.host)}:{self.rpc_port}"


@dataclass(frozen=True)
class NodePaths:
    """Absolute paths of one node's generated files (and of the files start-all.sh writes)."""

    dir: Path
    config: Path
    start_script: Path
    data: Path
    key: Path
    key_pub: Path
    static_nodes: Path
    permissions: Path
    log: Path
    pid: Path


class NetworkKit(BaseModel):
    """What :func:`init_network` wrote: network parameters, nodes and where their files are."""

    model_config = ConfigDict(frozen=True)

    root: Path
    chain_id: int
    evm_version: str
    block_period_seconds: int
    epoch_length: int
    request_timeout_seconds: int
    nodes: list[NodeInfo]
    warnings: list[str] = []

    @property
    def validators(self) -> list[NodeInfo]:
        """The validator nodes, in extraData order."""
        return [n for n in self.nodes if n.role == "validator"]

    @property
    def members(self) -> list[NodeInfo]:
        """The non-validator member nodes."""
        return [n for n in self.nodes if n.role == "member"]

    @property
    def validator_addresses(self) -> list[str]:
        """Validator addresses, in the order written to the genesis extraData."""
        return [n.address for n in self.validators]

    @property
    def enodes(self) -> list[str]:
        """Enode URLs of every node (the nodes allowlist)."""
        return [n.enode for n in self.nodes]

    @property
    def rpc_urls(self) -> list[str]:
        """HTTP JSON-RPC URLs of every node."""
        return [n.rpc_url for n in self.nodes]

    @property
    def genesis_path(self) -> Path:
        """Path of the shared genesis file."""
        return self.root / "genesis.json"

    @property
    def manifest_path(self) -> Path:
        """Path of the kit manifest (kit.json)."""
        return self.root / _KIT_MANIFEST

    def node(self, name: str) -> NodeInfo:
        """The node called ``name``; raises :class:`KitError` when there is none."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KitError(f"the kit at {self.root} has no node {name!r}; nodes: {', '.join(n.name for n in self.nodes)}")

    def paths(self, node: NodeInfo | str) -> NodePaths:
        """Absolute paths of ``node``'s files."""
        name = node if isinstance(node, str) else node.name
        node_dir = self.root / "nodes" / name
        data = node_dir / "data"
        return NodePaths(
            dir=node_dir,
            config=node_dir / "config.toml",
            start_script=node_dir / "start.sh",
            data=data,
            key=data / "key",
            key_pub=data / "key.pub",
            static_nodes=data / "static-nodes.json",
            permissions=data / "permissions_config.toml",
            log=node_dir / "besu.log",
            pid=node_dir / "besu.pid",
        )


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def init_network(
    out_dir: Path,
    *,
    validators: int = 4,
    members: int = 0,
    chain_id: int = DEFAULT_CHAIN_ID,
    evm_version: str = DEFAULT_EVM_VERSION,
    block_period_seconds: int = 2,
    epoch_length: int = 30000,
    request_timeout_seconds: int = 4,
    p2p_base_port: int = 30303,
    rpc_base_port: int = 8545,
    metrics_base_port: int = 9545,
    host: str = "127.0.0.1",
    hosts: Mapping[str, str] | None = None,
    prefunded: Mapping[str, int] | None = None,
    allowed_accounts: Sequence[str] = (),
    overwrite: bool = False,
) -> NetworkKit:
    """Generate a complete Besu QBFT network kit in ``out_dir`` and describe it.

    Node ``i`` (validators first, then members, counting from 0) listens on ``p2p_base_port + i``
    (P2P), ``rpc_base_port + i`` (HTTP JSON-RPC) and ``metrics_base_port + i`` (Prometheus), all
    on ``host``, which must be an IP address (Besu refuses host names in enode URLs unless its DNS
    early-access option is on). ``hosts`` gives nodes their own IP address by name (``validator-1``,
    ``member-2``: one host per node on a real network); the others keep ``host``. The addresses are
    kept in ``kit.json`` and written into every node's enode, static nodes and nodes allowlist, so no
    file needs editing by hand after generation (see docs/besu-network-kit.md).

    ``allowed_accounts`` seeds every node's accounts allowlist (for example the deployer and the
    regulator); with an empty list no account can send a transaction until the allowlist is synced
    (see :mod:`rxchain.network.permissions`). ``prefunded`` maps addresses to balances in wei;
    the network is free-gas, so balances are optional.

    The kit is written to a temporary sibling directory and moved into place, so a failure leaves
    no half-written kit. Raises :class:`KitExistsError` when ``out_dir`` already holds a kit and
    ``overwrite`` is false, :class:`KitRunningError` when overwriting a kit whose nodes still run,
    :class:`KitDirectoryNotEmptyError` when ``out_dir`` holds unrelated files,
    :class:`UnsupportedEvmVersionError` for an unknown ``evm_version`` and
    :class:`InvalidKitParameterError` (or :class:`PortConflictError`) for bad arguments.
    Settings that work but deserve a second look (fewer than 4 validators, ...) are emitted as
    :class:`KitWarning` and recorded in :attr:`NetworkKit.warnings`.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    evm_version = _normalise_evm_version(evm_version)
    kit_warnings = _validate_parameters(
        validators=validators,
        members=members,
        chain_id=chain_id,
        evm_version=evm_version,
        block_period_seconds=block_period_seconds,
        epoch_length=epoch_length,
        request_timeout_seconds=request_timeout_seconds,
        host=host,
    )
    node_count = validators + members
    _check_ports(
        node_count, p2p_base_port=p2p_base_port, rpc_base_port=rpc_base_port, metrics_base_port=metrics_base_port
    )
    alloc = _build_alloc(prefunded or {})
    accounts = _normalise_accounts(allowed_accounts)
    if not accounts:
        kit_warnings.append(
            "the accounts allowlist is empty: every node refuses all transactions until accounts are "
            "added (perm_addAccountsToAllowlist, or sync the allowlist from the role registry)"
        )
    _check_output_directory(out_dir, overwrite=overwrite)

    names = [f"validator-{i + 1}" for i in range(validators)] + [f"member-{i + 1}" for i in range(members)]
    node_hosts = _node_hosts(names, host, hosts or {})
    roles: list[Literal["validator", "member"]] = ["validator"] * validators + ["member"] * members
    keys = [_generate_private_key() for _ in names]
    nodes: list[NodeInfo] = []
    for i, (name, role, key) in enumerate(zip(names, roles, keys, strict=True)):
        pub = node_public_key(key)
        nodes.append(
            NodeInfo(
                name=name,
                role=role,
                address=node_address(pub),
                public_key="0x" + pub.hex(),
                enode=enode_url(pub, node_hosts[name], p2p_base_port + i),
                host=node_hosts[name],
                p2p_port=p2p_base_port + i,
                rpc_port=rpc_base_port + i,
                metrics_port=metrics_base_port + i,
            )
        )

    for message in kit_warnings:
        warnings.warn(message, KitWarning, stacklevel=2)

    kit = NetworkKit(
        root=out_dir,
        chain_id=chain_id,
        evm_version=evm_version,
        block_period_seconds=block_period_seconds,
        epoch_length=epoch_length,
        request_timeout_seconds=request_timeout_seconds,
        nodes=nodes,
        warnings=kit_warnings,
    )
    genesis = build_genesis(
        [n.address for n in kit.validators],
        chain_id=chain_id,
        evm_version=evm_version,
        block_period_seconds=block_period_seconds,
        epoch_length=epoch_length,
        request_timeout_seconds=request_timeout_seconds,
        alloc=alloc,
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; the secrets inside are 0600 files
        staged = kit.model_copy(update={"root": staging})
        _write_kit(staged, genesis, dict(zip(names, keys, strict=True)), accounts)
        _replace_directory(staging, out_dir, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return kit


def load_kit(kit_dir: Path) -> NetworkKit:
    """Read the manifest (kit.json) of the kit in ``kit_dir``.

    Raises :class:`KitNotFoundError` when there is no manifest and :class:`KitError` when it
    cannot be read.
    """
    root = Path(kit_dir).expanduser().resolve()
    manifest = root / _KIT_MANIFEST
    if not manifest.is_file():
        raise KitNotFoundError(f"no network kit in {root}: {_KIT_MANIFEST} is missing (create one with init_network)")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("format") != _KIT_FORMAT:
            raise KitError(f"{manifest}: unsupported kit format {data.get('format')!r} (expected {_KIT_FORMAT})")
        data.pop("format", None)
        return NetworkKit.model_validate({**data, "root": root})
    except KitError:
        raise
    except Exception as exc:  # malformed JSON or fields
        raise KitError(f"{manifest} is not a readable kit manifest: {exc}") from exc


def read_project_evm_version(project_root: Path) -> str:
    """The project's EVM version (:func:`rxchain.paths.evm_version`); :class:`KitError` when
    ``ape-config.yaml`` is not valid YAML."""
    try:
        return project_evm_version(project_root)
    except yaml.YAMLError as exc:
        raise KitError(f"{Path(project_root) / 'ape-config.yaml'} is not valid YAML: {exc}") from exc


def _validate_parameters(
    *,
    validators: int,
    members: int,
    chain_id: int,
    evm_version: str,
    block_period_seconds: int,
    epoch_length: int,
    request_timeout_seconds: int,
    host: str,
) -> list[str]:
    """Raise on invalid arguments; return the warnings worth recording."""
    for name, value in (
        ("validators", validators),
        ("members", members),
        ("chain_id", chain_id),
        ("block_period_seconds", block_period_seconds),
        ("epoch_length", epoch_length),
        ("request_timeout_seconds", request_timeout_seconds),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidKitParameterError(f"{name} must be an integer, got {value!r}")
    if validators < 1:
        raise InvalidKitParameterError(
            f"validators must be at least 1 (4 or more tolerate a faulty validator), got {validators}"
        )
    if members < 0:
        raise InvalidKitParameterError(f"members must be 0 or more, got {members}")
    if chain_id < 1 or chain_id > 2**53 - 1:
        raise InvalidKitParameterError(f"chain_id must be between 1 and 2**53-1, got {chain_id}")
    if chain_id in _PUBLIC_CHAIN_IDS:
        raise InvalidKitParameterError(
            f"chain_id {chain_id} is {_PUBLIC_CHAIN_IDS[chain_id]}'s: a private network needs its own chain id"
        )
    if block_period_seconds < 1:
        raise InvalidKitParameterError(f"block_period_seconds must be at least 1, got {block_period_seconds}")
    if epoch_length < 1:
        raise InvalidKitParameterError(f"epoch_length must be at least 1, got {epoch_length}")
    if request_timeout_seconds < 1:
        raise InvalidKitParameterError(f"request_timeout_seconds must be at least 1, got {request_timeout_seconds}")
    _check_ip("host", host)

    notes: list[str] = []
    tolerated = (validators - 1) // 3
    if validators < _MIN_BFT_VALIDATORS:
        notes.append(
            f"{validators} validator(s) tolerate {tolerated} faulty validator(s): QBFT needs 3f+1 validators "
            "to survive f faults, so use 4 or more for a consortium network"
        )
    if request_timeout_seconds <= block_period_seconds:
        notes.append(
            f"request_timeout_seconds ({request_timeout_seconds}) is not longer than block_period_seconds "
            f"({block_period_seconds}): rounds may time out before a block is proposed; about twice the "
            "block period is usual"
        )
    if evm_version != "london":
        notes.append(
            f"evm_version {evm_version}: timestamp milestones under QBFT need a recent Besu release; "
            "check the release notes of the Besu version you run (see docs/besu-network-kit.md)"
        )
    if evm_version == "prague":
        notes.append(
            "evm_version prague: Besu's Prague rules call system contracts (EIP-2935, EIP-7002, EIP-7251) "
            "that this kit does not place in the genesis alloc; verify block production before relying on it"
        )
    return notes


def _check_ip(what: str, host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise InvalidKitParameterError(
            f"{what} must be an IP address (enode URLs in Besu's allowlists must use IP addresses), got {host!r}"
        ) from exc


def _node_hosts(names: Sequence[str], default: str, hosts: Mapping[str, str]) -> dict[str, str]:
    """Each node's IP address: its own from ``hosts`` (by node name), else ``default``."""
    unknown = sorted(set(hosts) - set(names))
    if unknown:
        raise InvalidKitParameterError(
            f"hosts names no node called {', '.join(unknown)}; the kit's nodes are {', '.join(names)}"
        )
    for name, address in hosts.items():
        _check_ip(f"the host of {name}", address)
    return {name: hosts.get(name, default) for name in names}


def _check_ports(node_count: int, *, p2p_base_port: int, rpc_base_port: int, metrics_base_port: int) -> None:
    used: dict[int, str] = {}
    for service, base in (("p2p", p2p_base_port), ("rpc", rpc_base_port), ("metrics", metrics_base_port)):
        if isinstance(base, bool) or not isinstance(base, int):
            raise PortConflictError(f"{service}_base_port must be an integer, got {base!r}")
        for i in range(node_count):
            port = base + i
            if not 1 <= port <= 65535:
                raise PortConflictError(
                    f"{service} port {port} of node {i + 1} is outside 1-65535; lower {service}_base_port"
                )
            if port in used:
                raise PortConflictError(
                    f"port {port} would serve both {used[port]} and {service} of node {i + 1}; "
                    "space the base ports at least the number of nodes apart"
                )
            used[port] = f"{service} of node {i + 1}"


def _normalise_accounts(accounts: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for account in accounts:
        if not isinstance(account, str) or not is_address(account) or not account.lower().startswith("0x"):
            raise InvalidKitParameterError(f"allowed account {account!r} is not a 0x-prefixed address")
        seen.setdefault(account.lower(), None)
    return list(seen)


# ----------------------------------------------------------------------------------------------
# Helpers: output directory
# ----------------------------------------------------------------------------------------------


def _check_output_directory(out_dir: Path, *, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise KitDirectoryNotEmptyError(f"{out_dir} exists and is not a directory")
    if not out_dir.exists():
        return
    entries = {p.name for p in out_dir.iterdir()}
    if not entries:
        return
    if _KIT_MANIFEST not in entries:
        raise KitDirectoryNotEmptyError(
            f"{out_dir} is not empty and holds no network kit ({_KIT_MANIFEST} missing)"
            "; choose an empty or new directory"
        )
    if not overwrite:
        raise KitExistsError(
            f"a network kit already exists in {out_dir}; pass overwrite=True to replace it "
            "(its keys and chain data are deleted: the new kit is a new network)"
        )
    unknown = entries - set(_GENERATED_ROOT_ENTRIES)
    if unknown:
        raise KitDirectoryNotEmptyError(
            f"{out_dir} holds files the kit did not write ({', '.join(sorted(unknown))})"
            "; move them away before overwriting"
        )
    running = _running_nodes(out_dir)
    if running:
        raise KitRunningError(
            f"cannot overwrite {out_dir}: node(s) still running ({', '.join(running)})"
            f"; run {out_dir / 'stop-all.sh'} first"
        )


def _running_nodes(kit_dir: Path) -> list[str]:
    running = []
    for pid_file in sorted((kit_dir / "nodes").glob("*/besu.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except PermissionError:
            pass  # alive, owned by another user
        except OSError:
            continue  # no such process: a stale pid file
        running.append(f"{pid_file.parent.name} pid {pid}")
    return running


def _replace_directory(staging: Path, out_dir: Path, *, overwrite: bool) -> None:
    if out_dir.exists():
        if overwrite and (out_dir / _KIT_MANIFEST).exists():
            for name in _GENERATED_ROOT_ENTRIES:
                target = out_dir / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
        out_dir.rmdir()
    staging.rename(out_dir)


# ----------------------------------------------------------------------------------------------
# Helpers: keys
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# Helpers: writing the kit
# ----------------------------------------------------------------------------------------------


def _write_kit(kit: NetworkKit, genesis: dict[str, Any], keys: Mapping[str, bytes], accounts: Sequence[str]) -> None:
    root = kit.root
    _write_text(root / "genesis.json", json.dumps(genesis, indent=2) + "\n")
    manifest = {"format": _KIT_FORMAT, **kit.model_dump(mode="json", exclude={"root"})}
    _write_text(root / _KIT_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    for node in kit.nodes:
        paths = kit.paths(node)
        paths.data.mkdir(parents=True, exist_ok=True)
        # Besu reads exactly one line of hex (0x optional) and writes its own keys as 0x-hex.
        _write_text(paths.key, "0x" + keys[node.name].hex(), mode=0o600)
        _write_text(paths.key_pub, node.public_key)
        peers = [other.enode for other in kit.nodes if other.name != node.name]
        _write_text(paths.static_nodes, json.dumps(peers, indent=2) + "\n")
        write_permissions_config(paths.permissions, accounts, kit.enodes)
        _write_text(paths.config, _render_node_config(kit, node))
        _write_text(paths.start_script, _render_start_script(node), mode=0o755)
    _write_text(root / "start-all.sh", _render_start_all(kit), mode=0o755)
    _write_text(root / "stop-all.sh", _render_stop_all(kit), mode=0o755)
    _write_text(root / "README.txt", _render_readme(kit))


def _write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.chmod(path, mode)
