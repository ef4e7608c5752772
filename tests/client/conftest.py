"""Fixtures for the Python side against an ephemeral anvil (ape test's own, never the devnet).

One registry per test module, onboarded with the development identities (regulator, hospital,
doctor, pharmacy, pharmacy2, courier, auditor); ape's isolation reverts the chain after each test,
so every test starts from that state. Each test gets a fresh client (its nonce cache and outbox are
per test, matching the reverted chain).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from ape import networks

from rxchain.client import RegistryClient
from rxchain.deploy import deploy_registry
from rxchain.deployment import Deployment
from rxchain.identities import dev_accounts
from rxchain.lifecycle import demo_document, onboard
from rxchain.outbox import Outbox


@pytest.fixture(scope="session")
def ids():
    """The development identities by role name."""
    return dev_accounts()


@pytest.fixture(scope="session")
def regulator(ids):
    return ids["regulator"]


@pytest.fixture(scope="session")
def doctor(ids):
    return ids["doctor"]


@pytest.fixture(scope="session")
def pharmacy(ids):
    return ids["pharmacy"]


@pytest.fixture(scope="session")
def other_pharmacy(ids):
    return ids["pharmacy2"]


@pytest.fixture(scope="session")
def courier(ids):
    return ids["courier"]


@pytest.fixture(scope="session")
def w3():
    """web3 on ape's ephemeral anvil."""
    return networks.provider.web3


@pytest.fixture(scope="session")
def rpc_url():
    return networks.provider.uri


@pytest.fixture(scope="module")
def deployment(w3, ids, rpc_url) -> Deployment:
    """A registry deployed and onboarded for this module."""
    deployed = deploy_registry(w3, ids["regulator"], network="local", rpc_url=rpc_url, record=False)
    onboard(RegistryClient(w3, deployed.registry, deploy_block=deployed.deploy_block), ids)
    return deployed


@pytest.fixture
def client(w3, deployment, tmp_path) -> RegistryClient:
    """A fresh client of the module's registry with its own outbox file."""
    return RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=Outbox(tmp_path / "outbox.sqlite"))


@pytest.fixture
def document(client, doctor):
    """A valid one-drug prescription document by ``doctor``, valid from chain-now for a day."""
    return demo_document(doctor.address, client.latest_block_time())


@pytest.fixture
def chain_now(client):
    return datetime.fromtimestamp(client.latest_block_time(), timezone.utc)
