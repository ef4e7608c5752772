"""Tests of the Besu QBFT network kit (rxchain.network.kit).

Besu itself cannot run on the build machines, so these tests check the generated files offline:
the genesis extraData decodes to exactly the validators derived from the written node keys (keys
are re-derived with eth_keys, a second secp256k1 implementation), the QBFT extraData encoding
matches the example in Besu's QBFT documentation byte for byte, milestones follow the EVM
version, every node's config.toml parses (tomllib) with the settings the network depends on, and
the scripts are valid bash that fails cleanly when besu is not installed.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import tomllib
import warnings
from pathlib import Path

import pytest
import rlp
from eth_keys import keys as eth_keys
from eth_utils import to_checksum_address

from rxchain.chain.client import RegistryClient
from rxchain.chain.pipeline import DEFAULT_MAX_IN_FLIGHT
from rxchain.network import kit as kit_module
from rxchain.network.kit import (
    InvalidExtraDataError,
    InvalidKitParameterError,
    KitDirectoryNotEmptyError,
    KitExistsError,
    KitNotFoundError,
    KitRunningError,
    KitWarning,
    NetworkKit,
    PortConflictError,
    UnsupportedEvmVersionError,
    build_genesis,
    decode_extra_data,
    encode_extra_data,
    init_network,
    load_kit,
    milestones_for,
    read_project_evm_version,
)
from rxchain.network.permissions import read_permissions_config

# The "Block header validator selection" genesis example of Besu's QBFT configuration page
# (besu.hyperledger.org, private-networks/how-to/configure/consensus/qbft): four validators.
BESU_DOCS_EXTRA_DATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e6263b7297"
    "a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f433e5b6b212"
    "a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0"
)
BESU_DOCS_VALIDATORS = [
    "0x64a702e6263b7297a96638cac6ae65e6541f4169",
    "0x3923390ad55e90c237593b3b0e401f3b08a03185",
    "0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692",
    "0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78",
]
DEPLOYER = "0x1111111111111111111111111111111111111111"
REGULATOR = "0x52908400098527886E0F7030069857D2E4169EE7"  # checksummed (mixed case)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> NetworkKit:
    """A 4-validator, 2-member kit shared by the read-only tests."""
    out = tmp_path_factory.mktemp("kits") / "consortium"
    return init_network(out, validators=4, members=2, allowed_accounts=[DEPLOYER, REGULATOR])


def _genesis(kit: NetworkKit) -> dict:
    return json.loads(kit.genesis_path.read_text())


def _node_config(kit: NetworkKit, name: str) -> dict:
    with kit.paths(name).config.open("rb") as handle:
        return tomllib.load(handle)


# ---------------------------------------------------------------- keys, addresses, extraData


def test_extra_data_decodes_to_the_validators_in_order(kit: NetworkKit) -> None:
    validators = decode_extra_data(_genesis(kit)["extraData"])
    assert validators == kit.validator_addresses
    assert len(validators) == 4
    assert not set(validators) & {m.address for m in kit.members}


def test_validator_addresses_derive_from_the_written_node_keys(kit: NetworkKit) -> None:
    extra_validators = decode_extra_data(_genesis(kit)["extraData"])
    for node, expected in zip(kit.validators, extra_validators, strict=True):
        key_text = kit.paths(node).key.read_text()
        private_key = eth_keys.PrivateKey(bytes.fromhex(key_text.removeprefix("0x")))
        assert private_key.public_key.to_checksum_address() == expected == node.address
        assert kit.paths(node).key_pub.read_text() == private_key.public_key.to_hex() == node.public_key


def test_enode_urls_match_the_keys_and_ports(kit: NetworkKit) -> None:
    for node in kit.nodes:
        private_key = eth_keys.PrivateKey(bytes.fromhex(kit.paths(node).key.read_text().removeprefix("0x")))
        node_id = private_key.public_key.to_bytes().hex()
        assert len(node_id) == 128
        assert node.enode == f"enode://{node_id}@127.0.0.1:{node.p2p_port}"


def test_key_file_is_one_line_of_hex_readable_only_by_its_owner(kit: NetworkKit) -> None:
    for node in kit.nodes:
        path = kit.paths(node).key
        text = path.read_text()
        assert text.startswith("0x") and len(text) == 66 and "\n" not in text
        int(text, 16)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_extra_data_encoding_matches_the_besu_documentation_example() -> None:
    assert decode_extra_data(BESU_DOCS_EXTRA_DATA) == [to_checksum_address(a) for a in BESU_DOCS_VALIDATORS]
    assert encode_extra_data(BESU_DOCS_VALIDATORS) == BESU_DOCS_EXTRA_DATA


def test_extra_data_layout_is_vanity_validators_empty_vote_round_zero_no_seals() -> None:
    addresses = ["0x" + "11" * 20, "0x" + "22" * 20]
    raw = bytes.fromhex(encode_extra_data(addresses)[2:])
    vanity, validators, vote, round_number, seals = rlp.decode(raw)
    assert vanity == b"\x00" * 32
    assert validators == [b"\x11" * 20, b"\x22" * 20]
    assert vote == [] and round_number == b"" and seals == []
    assert raw.endswith(bytes.fromhex("c080c0"))  # empty vote list, round 0, empty seal list


def test_decode_accepts_a_sealed_block_extra_data() -> None:
    validators = [b"\x33" * 20, b"\x44" * 20]
    sealed = rlp.encode([b"\x00" * 32, validators, [b"\x55" * 20, b"\x01"], b"\x02", [b"\x66" * 65, b"\x77" * 65]])
    assert decode_extra_data(sealed.hex()) == [to_checksum_address(v) for v in validators]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0xzz",
        "0x" + rlp.encode(b"not a list").hex(),
        "0x" + rlp.encode([b"\x00" * 32, [b"\x11" * 20]]).hex(),
        "0x" + rlp.encode([b"\x00" * 31, [b"\x11" * 20], [], b"", []]).hex(),
        "0x" + rlp.encode([b"\x00" * 32, [b"\x11" * 19], [], b"", []]).hex(),
        "0xf8",
    ],
)
def test_decode_rejects_malformed_extra_data(value: str) -> None:
    with pytest.raises(InvalidExtraDataError):
        decode_extra_data(value)


def test_encode_rejects_duplicates_and_empty_lists() -> None:
    with pytest.raises(InvalidKitParameterError):
        encode_extra_data([])
    with pytest.raises(InvalidKitParameterError):
        encode_extra_data(["0x" + "11" * 20, "0x" + "11" * 20])
    with pytest.raises(InvalidKitParameterError):
        encode_extra_data(["not-an-address"])


# ---------------------------------------------------------------- genesis


@pytest.mark.parametrize(
    ("evm_version", "time_milestones"),
    [
        ("london", set()),
        ("shanghai", {"shanghaiTime"}),
        ("cancun", {"shanghaiTime", "cancunTime"}),
        ("prague", {"shanghaiTime", "cancunTime", "pragueTime"}),
    ],
)
def test_genesis_milestones_follow_the_evm_version(evm_version: str, time_milestones: set[str]) -> None:
    config = build_genesis(["0x" + "11" * 20], evm_version=evm_version)["config"]
    assert config["berlinBlock"] == 0 and config["londonBlock"] == 0
    present = {k for k in ("shanghaiTime", "cancunTime", "pragueTime", "osakaTime") if k in config}
    assert present == time_milestones
    assert all(config[k] == 0 for k in present)
    assert milestones_for(evm_version.upper()) == {k: v for k, v in config.items() if k.endswith(("Block", "Time"))}


@pytest.mark.parametrize("evm_version", ["paris", "berlin", "osaka", "istanbul", "", "London2"])
def test_unknown_evm_version_is_refused(evm_version: str, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedEvmVersionError, match="supported: london, shanghai, cancun, prague"):
        milestones_for(evm_version)
    with pytest.raises(UnsupportedEvmVersionError):
        init_network(tmp_path / "kit", evm_version=evm_version)
    assert not (tmp_path / "kit").exists()


def test_genesis_is_free_gas_qbft_with_the_requested_parameters(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KitWarning)
        kit = init_network(
            tmp_path / "kit",
            chain_id=424242,
            evm_version="shanghai",
            block_period_seconds=3,
            epoch_length=1000,
            request_timeout_seconds=7,
            prefunded={DEPLOYER: 10**18},
        )
    genesis = _genesis(kit)
    config = genesis["config"]
    assert config["chainId"] == 424242
    assert config["zeroBaseFee"] is True and genesis["baseFeePerGas"] == "0x0"  # block 0 too, not 1 gwei
    assert config["contractSizeLimit"] == 2147483647
    assert config["qbft"] == {"blockperiodseconds": 3, "epochlength": 1000, "requesttimeoutseconds": 7}
    assert config["shanghaiTime"] == 0 and "cancunTime" not in config
    assert int(genesis["gasLimit"], 16) >= 2**52
    assert genesis["difficulty"] == "0x1"
    assert genesis["mixHash"] == "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
    assert genesis["alloc"] == {DEPLOYER[2:]: {"balance": hex(10**18)}}
    assert kit.evm_version == "shanghai" and kit.chain_id == 424242


def test_default_kit_genesis(kit: NetworkKit) -> None:
    config = _genesis(kit)["config"]
    assert config["chainId"] == kit.chain_id == 272461
    assert config["qbft"] == {"blockperiodseconds": 2, "epochlength": 30000, "requesttimeoutseconds": 4}
    assert "shanghaiTime" not in config and config["londonBlock"] == 0
    assert _genesis(kit)["alloc"] == {}


# ---------------------------------------------------------------- node configurations


def test_every_node_config_has_free_gas_permissioning_and_perm_api(kit: NetworkKit) -> None:
    for node in kit.nodes:
        paths = kit.paths(node)
        config = _node_config(kit, node.name)
        assert config["min-gas-price"] == 0
        assert config["tx-pool-min-gas-price"] == 0
        assert config["permissions-accounts-config-file-enabled"] is True
        assert config["permissions-nodes-config-file-enabled"] is True
        for key in ("permissions-accounts-config-file", "permissions-nodes-config-file"):
            assert (paths.dir / config[key]).resolve() == paths.permissions.resolve()
            assert paths.permissions.is_file()
        assert (paths.dir / config["genesis-file"]).resolve() == kit.genesis_path
        assert (paths.dir / config["data-path"]).resolve() == paths.data.resolve()
        assert (paths.dir / config["static-nodes-file"]).resolve() == paths.static_nodes.resolve()
        assert config["rpc-http-enabled"] is True
        assert {"ETH", "NET", "WEB3", "QBFT", "PERM", "TXPOOL"} <= set(config["rpc-http-api"])
        assert config["rpc-max-logs-range"] == RegistryClient.__init__.__kwdefaults__["max_logs_range"] == 5000
        assert config["rpc-http-host"] == config["p2p-host"] == node.host
        assert config["p2p-port"] == node.p2p_port and config["rpc-http-port"] == node.rpc_port
        assert config["metrics-enabled"] is True and config["metrics-port"] == node.metrics_port
        assert config["discovery-enabled"] is False
        assert config["sync-mode"] == "FULL"
        # Besu 25.6.0 removed contract account permissioning and refuses to start with its options
        assert not [key for key in config if key.startswith("permissions-accounts-contract")]
        # the bulk paths' per-sender cap stays under what this pool keeps per sender (Besu's default
        # tx-pool-max-size 4,096)
        assert config["tx-pool"] == "SEQUENCED" and "tx-pool-max-size" not in config
        assert DEFAULT_MAX_IN_FLIGHT < math.ceil(config["tx-pool-limit-by-account-percentage"] * 4096) == 615


def test_ports_are_distinct_across_nodes_and_services(kit: NetworkKit) -> None:
    ports = []
    for node in kit.nodes:
        config = _node_config(kit, node.name)
        ports += [config["p2p-port"], config["rpc-http-port"], config["metrics-port"]]
    assert len(ports) == len(set(ports)) == 3 * len(kit.nodes)


def test_static_nodes_list_every_other_node(kit: NetworkKit) -> None:
    for node in kit.nodes:
        peers = json.loads(kit.paths(node).static_nodes.read_text())
        assert node.enode not in peers
        assert sorted(peers) == sorted(e for e in kit.enodes if e != node.enode)


def test_permission_files_allow_every_node_and_the_seed_accounts(kit: NetworkKit) -> None:
    for node in kit.nodes:
        permissions = read_permissions_config(kit.paths(node).permissions)
        assert permissions.nodes == kit.enodes
        assert permissions.accounts == [DEPLOYER, REGULATOR.lower()]


def test_manifest_round_trips(kit: NetworkKit) -> None:
    loaded = load_kit(kit.root)
    assert loaded == kit
    assert loaded.node("member-2").role == "member"
    assert [n.name for n in loaded.validators] == ["validator-1", "validator-2", "validator-3", "validator-4"]
    assert loaded.rpc_urls[0] == "http://127.0.0.1:8545"
    manifest = kit.manifest_path.read_text()
    for node in kit.nodes:
        assert kit.paths(node).key.read_text().removeprefix("0x") not in manifest


def test_load_kit_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(KitNotFoundError):
        load_kit(tmp_path)


# ---------------------------------------------------------------- scripts


def test_start_scripts_exist_are_executable_and_valid_bash(kit: NetworkKit) -> None:
    scripts = [kit.paths(n).start_script for n in kit.nodes] + [kit.root / "start-all.sh", kit.root / "stop-all.sh"]
    for script in scripts:
        assert script.is_file()
        assert os.access(script, os.X_OK)
        assert script.read_text().startswith("#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n", str(script)], check=True)
    start = kit.paths("validator-1").start_script.read_text()
    assert 'exec "$BESU" --config-file=config.toml' in start


@pytest.mark.parametrize("script", ["nodes/validator-1/start.sh", "start-all.sh"])
def test_start_scripts_fail_cleanly_without_besu(kit: NetworkKit, script: str) -> None:
    env = {**os.environ, "BESU": "/nonexistent/bin/besu"}
    done = subprocess.run([str(kit.root / script)], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 127
    assert "besu not found" in done.stderr
    assert not list(kit.root.glob("nodes/*/besu.pid"))


def test_stop_all_without_running_nodes_is_a_no_op(kit: NetworkKit) -> None:
    done = subprocess.run([str(kit.root / "stop-all.sh")], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0 and done.stdout == ""


# ---------------------------------------------------------------- re-running and validation


def test_rerun_without_overwrite_is_refused_and_overwrite_makes_a_new_network(tmp_path: Path) -> None:
    out = tmp_path / "kit"
    first = init_network(out, validators=4, allowed_accounts=[DEPLOYER])
    (first.paths("validator-1").data / "database").mkdir()  # chain data of the old network
    with pytest.raises(KitExistsError, match="overwrite=True"):
        init_network(out, validators=4, allowed_accounts=[DEPLOYER])
    assert load_kit(out) == first
    second = init_network(out, validators=4, allowed_accounts=[DEPLOYER], overwrite=True)
    assert set(second.validator_addresses).isdisjoint(first.validator_addresses)
    assert decode_extra_data(_genesis(second)["extraData"]) == second.validator_addresses
    assert not (second.paths("validator-1").data / "database").exists()
    assert not list(tmp_path.glob(".kit.*"))  # no staging directory left behind


def test_overwrite_is_refused_while_a_node_runs(tmp_path: Path) -> None:
    out = tmp_path / "kit"
    kit = init_network(out, validators=4, allowed_accounts=[DEPLOYER])
    kit.paths("validator-2").pid.write_text(str(os.getpid()))  # a live process id
    with pytest.raises(KitRunningError, match="validator-2"):
        init_network(out, validators=4, allowed_accounts=[DEPLOYER], overwrite=True)
    assert load_kit(out) == kit


def test_a_stale_pid_file_does_not_block_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "kit"
    kit = init_network(out, validators=4, allowed_accounts=[DEPLOYER])
    child = subprocess.Popen(["true"])
    child.wait()
    kit.paths("validator-1").pid.write_text(str(child.pid))  # that process has exited
    second = init_network(out, validators=4, allowed_accounts=[DEPLOYER], overwrite=True)
    assert second.validator_addresses != kit.validator_addresses


def test_a_non_empty_directory_that_is_not_a_kit_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(KitDirectoryNotEmptyError):
        init_network(tmp_path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_existing_empty_directory_is_used(tmp_path: Path) -> None:
    out = tmp_path / "kit"
    out.mkdir()
    kit = init_network(out, validators=4, allowed_accounts=[DEPLOYER])
    assert kit.root == out.resolve() and kit.genesis_path.is_file()


def test_fewer_than_four_validators_is_warned_and_recorded(tmp_path: Path) -> None:
    with pytest.warns(KitWarning, match="tolerate 0 faulty"):
        kit = init_network(tmp_path / "kit", validators=1, allowed_accounts=[DEPLOYER])
    assert any("tolerate 0 faulty" in w for w in kit.warnings)
    assert any("tolerate 0 faulty" in w for w in load_kit(kit.root).warnings)
    assert "tolerate 0 faulty" in (kit.root / "README.txt").read_text()
    assert decode_extra_data(_genesis(kit)["extraData"]) == kit.validator_addresses


def test_an_empty_accounts_allowlist_is_warned(tmp_path: Path) -> None:
    with pytest.warns(KitWarning, match="accounts allowlist is empty"):
        init_network(tmp_path / "kit")


def test_four_validators_with_seed_accounts_raise_no_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kit = init_network(tmp_path / "kit", allowed_accounts=[DEPLOYER])
    assert kit.warnings == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"validators": 0}, InvalidKitParameterError),
        ({"validators": -1}, InvalidKitParameterError),
        ({"members": -1}, InvalidKitParameterError),
        ({"chain_id": 0}, InvalidKitParameterError),
        ({"chain_id": 1}, InvalidKitParameterError),
        ({"block_period_seconds": 0}, InvalidKitParameterError),
        ({"epoch_length": 0}, InvalidKitParameterError),
        ({"request_timeout_seconds": 0}, InvalidKitParameterError),
        ({"host": "node1.example.org"}, InvalidKitParameterError),
        ({"hosts": {"validator-9": "10.0.0.9"}}, InvalidKitParameterError),
        ({"hosts": {"validator-2": "node2.example.org"}}, InvalidKitParameterError),
        ({"validators": 2.5}, InvalidKitParameterError),
        ({"rpc_base_port": 30304}, PortConflictError),
        ({"metrics_base_port": 8546}, PortConflictError),
        ({"p2p_base_port": 65534}, PortConflictError),
        ({"prefunded": {"0x1234": 1}}, InvalidKitParameterError),
        ({"prefunded": {DEPLOYER: -1}}, InvalidKitParameterError),
        ({"allowed_accounts": ["1111111111111111111111111111111111111111"]}, InvalidKitParameterError),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    kwargs: dict, error: type[Exception], tmp_path: Path
) -> None:
    with pytest.raises(error):
        init_network(tmp_path / "kit", **kwargs)
    assert not (tmp_path / "kit").exists()
    assert list(tmp_path.iterdir()) == []


def test_ipv6_host_is_bracketed_in_urls(tmp_path: Path) -> None:
    kit = init_network(tmp_path / "kit", host="::1", allowed_accounts=[DEPLOYER])
    node = kit.validators[0]
    assert node.enode.endswith(f"@[::1]:{node.p2p_port}")
    assert node.rpc_url == f"http://[::1]:{node.rpc_port}"
    assert read_permissions_config(kit.paths(node).permissions).nodes == kit.enodes


def test_each_node_gets_its_own_host_in_every_file_that_names_it(tmp_path: Path) -> None:
    """A multi-host network: the addresses are inputs kept in kit.json, and every enode, static node,
    nodes-allowlist entry and listen address of a node is its own host (nothing to edit by hand)."""
    hosts = {
        "validator-1": "10.0.0.11",
        "validator-2": "10.0.0.12",
        "validator-3": "10.0.0.13",
        "validator-4": "10.0.0.14",
    }
    kit = init_network(tmp_path / "kit", hosts=hosts, members=1, allowed_accounts=[DEPLOYER])

    assert {n.name: n.host for n in kit.nodes} == {**hosts, "member-1": "127.0.0.1"}  # the rest keep --host
    assert load_kit(kit.root).nodes == kit.nodes
    for node in kit.nodes:
        assert (
            node.enode.endswith(f"@{node.host}:{node.p2p_port}")
            and node.rpc_url == f"http://{node.host}:{node.rpc_port}"
        )
        config = _node_config(kit, node.name)
        assert config["p2p-host"] == config["rpc-http-host"] == node.host and node.host in config["host-allowlist"]
        assert json.loads(kit.paths(node).static_nodes.read_text()) == [o.enode for o in kit.nodes if o is not node]
        assert read_permissions_config(kit.paths(node).permissions).nodes == kit.enodes


def test_a_failed_write_leaves_no_partial_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(kit_module, "_render_readme", broken)
    with pytest.raises(OSError, match="disk full"):
        init_network(tmp_path / "kit", allowed_accounts=[DEPLOYER])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- project EVM version


def test_read_project_evm_version_follows_the_ape_config_anchor(tmp_path: Path) -> None:
    (tmp_path / "ape-config.yaml").write_text(
        "solidity:\n  version: 0.8.30\n  evm_version: &evm_version Shanghai\nfoundry:\n  evm_version: *evm_version\n"
    )
    assert read_project_evm_version(tmp_path) == "shanghai"


def test_read_project_evm_version_defaults_to_london(tmp_path: Path) -> None:
    assert read_project_evm_version(tmp_path) == "london"
    (tmp_path / "ape-config.yaml").write_text("name: x\nsolidity:\n  version: 0.8.30\n")
    assert read_project_evm_version(tmp_path) == "london"
    (tmp_path / "ape-config.yaml").write_text("")
    assert read_project_evm_version(tmp_path) == "london"


def test_the_project_evm_version_is_one_the_kit_supports() -> None:
    project_root = Path(__file__).resolve().parents[2]
    assert (project_root / "ape-config.yaml").is_file()
    assert read_project_evm_version(project_root) in kit_module.SUPPORTED_EVM_VERSIONS
