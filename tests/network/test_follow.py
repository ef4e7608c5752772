"""`rx network follow`: the nodes' allowlists follow the registry block by block, end to end on the
suite's anvil, with a PERM stand-in that keeps Besu's rules (tests/network/test_permissions.py)."""

from __future__ import annotations

import json

import pytest

from rxchain.cli import main as cli
from rxchain.chain.deployment import save_deployment
from rxchain.network.follow import Follower, load_state
from rxchain.network.registry import registry_allowlist

from .test_permissions import BesuPermStandIn, _serve


@pytest.fixture
def perm_node():
    state = BesuPermStandIn(accounts=[])
    server, url = _serve(state)
    yield state, url
    server.shutdown()
    server.server_close()


def mine(client, seconds: int = 1) -> None:
    client.w3.provider.make_request("evm_increaseTime", [seconds])
    client.w3.provider.make_request("evm_mine", [])


def test_an_admission_and_a_revocation_reach_the_node_at_the_next_block(client, ids, perm_node, tmp_path):
    node, url = perm_node
    follower = Follower(client, [url], tmp_path / "follow.json")

    assert follower.step() is True
    assert sorted(node.accounts) == sorted(a.lower() for a in registry_allowlist(client))
    newcomer = ids["courier2"].address
    assert newcomer.lower() not in node.accounts

    client.admit(ids["regulator"], newcomer, "courier", client.latest_block_time() + 86400)
    assert follower.step() is True
    assert newcomer.lower() in node.accounts

    client.revoke(ids["regulator"], newcomer, "courier")
    assert follower.step() is True
    assert newcomer.lower() not in node.accounts
    assert follower.state.in_step() and sorted(node.file_accounts) == sorted(node.accounts)


def test_a_credential_that_lapses_leaves_the_allowlist_with_no_event(client, ids, perm_node, tmp_path):
    node, url = perm_node
    newcomer = ids["courier2"].address
    client.admit(ids["regulator"], newcomer, "courier", client.latest_block_time() + 60)
    follower = Follower(client, [url], tmp_path / "follow.json")
    follower.step()
    assert newcomer.lower() in node.accounts

    mine(client, 120)
    follower.step()

    assert newcomer.lower() not in node.accounts


def test_a_regulator_handover_completes_through_the_nodes_allowlist_files(client, ids, perm_node, tmp_path):
    """Issue 11, finding 5, on a chain whose nodes keep local allowlists: the pending regulator reaches
    the nodes' files when the handover begins, can then send its acceptance, and the old regulator
    leaves the files once it is accepted."""
    node, url = perm_node
    old, successor = ids["regulator"], ids["courier2"]  # courier2: no member here
    follower = Follower(client, [url], tmp_path / "follow.json")
    follower.step()
    assert successor.address.lower() not in node.file_accounts

    client.transact(old, "beginDefaultAdminTransfer", successor.address)
    follower.step()
    assert successor.address.lower() in node.file_accounts and old.address.lower() in node.file_accounts

    mine(client, client.contract.functions.defaultAdminDelay().call() + 1)
    client.transact(successor, "acceptDefaultAdminTransfer")
    follower.step()

    assert client.contract.functions.defaultAdmin().call() == successor.address
    assert successor.address.lower() in node.file_accounts
    assert old.address.lower() not in node.file_accounts
    assert follower.state.in_step() and sorted(node.file_accounts) == sorted(node.accounts)


def test_the_follower_resumes_where_it_stopped_and_retries_a_node_that_was_down(client, ids, perm_node, tmp_path):
    node, url = perm_node
    state_file = tmp_path / "follow.json"
    Follower(client, [url], state_file).step()
    acted_on = load_state(state_file).last_block

    again = Follower(client, [url], state_file)
    assert again.state.last_block == acted_on and again.step() is False  # no new block: nothing to do

    node.perm_enabled = False  # the node stops answering PERM (as when its API is off or it restarts)
    client.admit(ids["regulator"], ids["courier2"].address, "courier", client.latest_block_time() + 86400)
    again.step()
    assert not again.state.in_step() and "not in step" in again.state.node_status[url]
    node.perm_enabled = True
    mine(client)
    again.step()
    assert again.state.in_step() and ids["courier2"].address.lower() in node.accounts


def test_each_step_reads_only_the_new_blocks_on_a_range_limited_node(client, ids, perm_node, rpc_url, tmp_path):
    """A long chain costs the follower nothing more per block: the first step reads the admissions
    from the deploy block (in windows the node answers), every later step the new blocks only, also
    after a restart (the accounts ever admitted are in the state file)."""
    from web3 import Web3

    from rxchain.chain.client import RegistryClient
    from client.fronts import NodeFront  # tests/ is on the path: pytest imports tests/client as "client"

    node, url = perm_node
    for _ in range(20):
        mine(client)
    front = NodeFront(rpc_url, max_logs_range=5)
    try:
        via = RegistryClient(
            Web3(Web3.HTTPProvider(front.url)), client.address, deploy_block=client.deploy_block, max_logs_range=5
        )
        Follower(via, [url], tmp_path / "follow.json").step()
        first = load_state(tmp_path / "follow.json").last_block
        assert min(start for start, _ in front.log_queries) == client.deploy_block and front.refused == 0
        front.log_queries.clear()
        newcomer = ids["courier2"].address
        client.admit(ids["regulator"], newcomer, "courier", client.latest_block_time() + 86400)

        again = Follower(via, [url], tmp_path / "follow.json")
        assert again.step() is True

        assert newcomer.lower() in node.accounts
        assert front.log_queries and all(start > first for start, _ in front.log_queries)
        assert again.state.admitted_to_block == again.state.last_block > first
    finally:
        front.stop()


def test_rx_network_follow_once_and_status(client, deployment, perm_node, tmp_path, monkeypatch, capsys):
    node, url = perm_node
    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    save_deployment(deployment)
    state_file = str(tmp_path / "follow.json")
    base = [
        "--network",
        "local",
        "--outbox",
        str(tmp_path / "o.sqlite"),
        "--json",
        "network",
        "follow",
        "--node",
        url,
        "--state",
        state_file,
    ]

    cli.main(base + ["--once"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        cli.main(base + ["--status"])
    status = json.loads(capsys.readouterr().out)

    assert done.value.code == 0 and status["inStep"] is True and status["nodeStatus"] == {url: "in step"}
    assert sorted(node.accounts) == sorted(status["allowlist"])


def test_rx_network_allowlist_keeps_the_nodes_the_operator_wrote(client, deployment, tmp_path, monkeypatch, capsys):
    """Operators put each host's real address into static-nodes and nodes-allowlist; a later
    `rx network allowlist` (accounts from the registry) must not put the generation host's back."""
    from rxchain.network.permissions import read_permissions_config

    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    save_deployment(deployment)
    base = ["--network", "local", "--outbox", str(tmp_path / "o.sqlite")]
    kit_dir = tmp_path / "kit"
    cli.main(base + ["network", "init", str(kit_dir), "--validators", "1"])
    (permissions,) = kit_dir.glob("nodes/*/data/permissions_config.toml")
    edited = permissions.read_text().replace("@127.0.0.1:", "@192.0.2.10:")  # a documentation address, never contacted
    permissions.write_text(edited)
    capsys.readouterr()

    cli.main(base + ["network", "allowlist", "--kit", str(kit_dir)])

    after = read_permissions_config(permissions)
    assert after.nodes and all("@192.0.2.10:" in enode for enode in after.nodes)
    assert sorted(after.accounts) == sorted(a.lower() for a in registry_allowlist(client))


def test_rx_network_init_takes_each_nodes_host_and_a_later_allowlist_keeps_it(
    client, deployment, tmp_path, monkeypatch, capsys
):
    """Node addresses are inputs (--node-host): kit.json keeps them, and `rx network allowlist`
    writes the registry's accounts without touching them."""
    from rxchain.network import load_kit
    from rxchain.network.permissions import read_permissions_config

    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    save_deployment(deployment)
    base = ["--network", "local", "--outbox", str(tmp_path / "o.sqlite")]
    kit_dir = tmp_path / "kit"
    cli.main(base + ["network", "init", str(kit_dir), "--validators", "2", "--node-host", "validator-2=192.0.2.12"])
    kit = load_kit(kit_dir)
    assert [n.host for n in kit.nodes] == ["127.0.0.1", "192.0.2.12"]
    capsys.readouterr()

    cli.main(base + ["network", "allowlist", "--kit", str(kit_dir)])

    for node in kit.nodes:
        after = read_permissions_config(kit.paths(node).permissions)
        assert after.nodes == kit.enodes and any("@192.0.2.12:" in enode for enode in after.nodes)
        assert sorted(after.accounts) == sorted(a.lower() for a in registry_allowlist(client))
    assert load_kit(kit_dir).rpc_urls == [
        f"http://127.0.0.1:{kit.nodes[0].rpc_port}",
        f"http://192.0.2.12:{kit.nodes[1].rpc_port}",
    ]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("validator-2", "is not NAME=IP"),
        ("=192.0.2.12", "is not NAME=IP"),
        ("validator-9=192.0.2.19", "no node called validator-9"),
        ("validator-2=host.example.org", "the host of validator-2 must be an IP address"),
    ],
)
def test_rx_network_init_refuses_a_bad_node_host_and_writes_nothing(given, said, tmp_path, capsys):
    kit_dir = tmp_path / "kit"
    with pytest.raises(SystemExit) as refused:
        cli.main(["network", "init", str(kit_dir), "--validators", "2", "--node-host", given])

    assert refused.value.code != 0 and not kit_dir.exists()
    assert said in " ".join(capsys.readouterr().err.split())
