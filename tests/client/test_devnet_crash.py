"""The devnet killed mid-run: SIGTERM keeps everything (its state is written on the way out); SIGKILL
loses the blocks since the last periodic state dump (at most DEVNET_STATE_INTERVAL seconds), and the
client's outbox re-sends what those blocks held, so nothing intended is lost or doubled."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest
from web3 import Web3

from rxchain.audit import trail
from rxchain.chain.client import RegistryClient
from rxchain.chain.deploy import deploy_registry
from rxchain.chain.deployment import Deployment, save_deployment
from rxchain.dev.devnet import Devnet
from rxchain.chain.signers import dev_accounts
from rxchain.dev.demo import demo_document, onboard
from rxchain.core.status import Status
from rxchain.workflow import issue_prescription


@pytest.fixture
def devnet(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    # No periodic dump within the test: what a SIGKILL loses is then exactly what came after the last
    # clean stop, whatever the machine's speed.
    net = Devnet(port=port, folder=tmp_path / "devnet", state_interval=3600)
    net.up()
    yield net
    net.down()


def deployed(devnet: Devnet) -> Deployment:
    ids = dev_accounts()
    record = deploy_registry(
        Web3(Web3.HTTPProvider(devnet.url)), ids["regulator"], network="devnet", rpc_url=devnet.url, record=False
    )
    record = record.model_copy(update={"network": "crashnet"})
    save_deployment(record)
    onboard(RegistryClient(Web3(Web3.HTTPProvider(devnet.url)), record.registry, deploy_block=record.deploy_block), ids)
    return record


def issue_three(devnet: Devnet, outbox: str) -> list[bytes]:
    client = RegistryClient.connect("crashnet", outbox_path=outbox)
    doctor = dev_accounts()["doctor"]
    return [
        issue_prescription(client, doctor, demo_document(doctor.address, client.latest_block_time())).rx_id
        for _ in range(3)
    ]


def test_sigterm_keeps_every_block(devnet, tmp_path):
    deployed(devnet)
    ids = issue_three(devnet, str(tmp_path / "outbox.sqlite"))

    devnet.down()
    devnet.up()

    client = RegistryClient.connect("crashnet")
    assert [client.prescription(i).status for i in ids] == [Status.ACTIVE] * 3


def test_sigkill_loses_recent_blocks_and_the_outbox_resends_them(devnet, tmp_path):
    deployed(devnet)
    devnet.down()  # the deployment and members are on disk
    devnet.up()
    outbox = str(tmp_path / "outbox.sqlite")
    ids = issue_three(devnet, outbox)
    os.kill(devnet.status().pid, signal.SIGKILL)  # before the next periodic dump
    time.sleep(0.5)
    devnet.up()

    plain = RegistryClient.connect("crashnet")  # no outbox: sees what the node kept
    lost = [i for i in ids if plain.prescription(i).status is Status.NONE]
    assert lost, "the node kept every block: the crash did not exercise recovery"

    recovered = RegistryClient.connect("crashnet", outbox_path=outbox)  # reconciles and re-sends
    assert [recovered.prescription(i).status for i in ids] == [Status.ACTIVE] * 3
    assert all([s.step for s in trail(recovered, i)] == ["issued"] for i in ids)  # once each
    assert recovered.outbox.counts().get("pending", 0) == 0
