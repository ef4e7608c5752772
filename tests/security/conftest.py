"""Fixtures of the reliability and security suite, on ape's ephemeral anvil (never the devnet).

One registry per test module, with the development consortium onboarded (regulator; hospital with
its doctor; other hospital with its doctor; pharmacy, other pharmacy; courier, other courier;
auditor) and a ``stranger`` that holds no role. ape's isolation reverts the chain after every test,
so every test starts from that state and builds a FRESH client (whose nonce cache must match the
chain). The parties are named by what they are, never numbered.
"""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_utils import keccak

from rxchain.chain.client import RegistryClient
from rxchain.chain.deploy import deploy_registry
from rxchain.chain.deployment import Deployment
from rxchain.chain.signers import dev_accounts
from rxchain.dev.demo import onboard

from .chainkit import Rpc

#: What each test module of this suite ran, for the summary at the end of the session.
REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("rxchain security suite")
        for line in REPORT:
            terminalreporter.write_line(line)


def report(line: str) -> None:
    """Adds a line to the suite's summary (and prints it, for ``-s`` runs)."""
    REPORT.append(line)
    print(line)


# ------------------------------------------------------------------------------- the parties


@pytest.fixture(scope="session")
def ids():
    """The development identities by name, and a stranger that holds no role."""
    found = dev_accounts()
    found["stranger"] = Account.from_key(keccak(text="rxchain security suite: a stranger"))
    return found


@pytest.fixture(scope="session")
def other_hospital(ids):
    return ids["hospital2"]


@pytest.fixture(scope="session")
def other_doctor(ids):
    return ids["doctor2"]


@pytest.fixture(scope="session")
def other_courier(ids):
    return ids["courier2"]


@pytest.fixture(scope="session")
def auditor(ids):
    return ids["auditor"]


@pytest.fixture(scope="session")
def stranger(ids):
    return ids["stranger"]


# --------------------------------------------------------------------------------- the chain


@pytest.fixture(scope="session")
def rpc(rpc_url):
    """Plain JSON-RPC to the same node (snapshots, block times, batched reads)."""
    return Rpc(rpc_url)


@pytest.fixture(scope="module")
def deployment(
    w3,
    ids,
    rpc_url,
    rpc,
    regulator,
    hospital,
    other_hospital,
    doctor,
    other_doctor,
    pharmacy,
    other_pharmacy,
    courier,
    other_courier,
    auditor,
    stranger,
) -> Deployment:
    """A registry deployed for this module, the consortium onboarded (the other courier too). It asks
    for every party so that all session fixtures exist before ape snapshots the module's chain."""
    deployed = deploy_registry(w3, ids["regulator"], network="local", rpc_url=rpc_url, record=False)
    client = RegistryClient(w3, deployed.registry, deploy_block=deployed.deploy_block)
    onboard(client, ids)
    client.admit(ids["regulator"], ids["courier2"].address, "courier", client.latest_block_time() + 365 * 86400)
    return deployed


@pytest.fixture
def chain_now(rpc):
    """The latest block's time."""
    return rpc.latest_time()


@pytest.fixture
def stopwatch():
    """Seconds since the test started."""
    started = time.perf_counter()
    return lambda: time.perf_counter() - started
