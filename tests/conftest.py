"""Fixtures shared across the suite: one headless chromium for every browser test (the dApp's and the
console's; Playwright's sync API allows one running instance per process, so the session shares
it), the chain, the development identities, a registry per module and a client per test, and one
PostgreSQL server for the session.

A test that cannot run because this machine lacks something (Chromium, PostgreSQL, node) skips
through :func:`not_here`: the run then ends with a loud block naming what did not run and the one
command that fixes it, and FAILS (exit 1) unless ``RXCHAIN_ALLOW_SKIPS=1`` says that is wanted. A
green run has run everything."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

#: Debian's chromium; $RXCHAIN_CHROMIUM points elsewhere.
CHROMIUM = Path(os.environ.get("RXCHAIN_CHROMIUM", "/usr/bin/chromium"))
#: No background networking: this machine reaches no host but its package registries.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


# ------------------------------------------------------------------ tests this machine cannot run

#: Every skip for a missing part of the machine carries this prefix (the summary finds them by it).
NOT_HERE = "NOT RUN on this machine:"

_not_run: dict[str, int] = {}


def not_here(what: str, fix: str) -> None:
    """Skips the test because the machine lacks ``what``; the run's summary names ``fix``."""
    pytest.skip(f"{NOT_HERE} {what} (fix: {fix})")


def pytest_runtest_logreport(report):
    if report.skipped and NOT_HERE in str(report.longrepr):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        reason = reason.split(NOT_HERE, 1)[1].strip()
        _not_run[reason] = _not_run.get(reason, 0) + 1


def pytest_collectreport(report):
    """A whole module skipped at import (``pytest.importorskip``) did not run either: it counts too."""
    if report.skipped:
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        reason = f"{reason.removeprefix('Skipped: ')} (module {report.nodeid})"
        _not_run[reason] = _not_run.get(reason, 0) + 1


def pytest_terminal_summary(terminalreporter):
    if not _not_run:
        return
    total = sum(_not_run.values())
    terminalreporter.write_sep(
        "!", f"{total} TESTS DID NOT RUN: this machine lacks what they need", red=True, bold=True
    )
    for reason, count in sorted(_not_run.items()):
        terminalreporter.write_line(f"  {count:4d} x {reason}", red=True, bold=True)
    if os.environ.get("RXCHAIN_ALLOW_SKIPS") == "1":
        terminalreporter.write_line("  RXCHAIN_ALLOW_SKIPS=1: the run does not fail for them", yellow=True)
    else:
        terminalreporter.write_line(
            "  `make setup` as root installs them (apt-get); RXCHAIN_ALLOW_SKIPS=1 accepts the gap", red=True
        )


def pytest_sessionfinish(session, exitstatus):
    if _not_run and os.environ.get("RXCHAIN_ALLOW_SKIPS") != "1" and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the session (skips with the reason when it cannot run here)."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        not_here(
            f"the browser tests need Debian's chromium at {CHROMIUM}",
            "apt-get install -y chromium, or make setup as root",
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        not_here("the browser tests need the Python package playwright", "make setup")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


# ---------------------------------------------------------------------------- the chain and parties
# The Python-side suites (client, dApp, console, indexer, security) share these: ape test's own
# ephemeral anvil (never the devnet), one registry per test module onboarded with the development
# identities, and a fresh client per test. ape's isolation reverts the chain after every test, so each
# test starts from the module's state and needs a client whose nonce cache and outbox are its own.


@pytest.fixture(scope="session")
def ids():
    """The development identities by role name (rxchain.chain.signers)."""
    from rxchain.chain.signers import dev_accounts

    return dev_accounts()


@pytest.fixture(scope="session")
def regulator(ids):
    return ids["regulator"]


@pytest.fixture(scope="session")
def hospital(ids):
    return ids["hospital"]


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
    from ape import networks

    return networks.provider.web3


@pytest.fixture(scope="session")
def rpc_url():
    from ape import networks

    return networks.provider.uri


@pytest.fixture(scope="module")
def deployment(w3, ids, rpc_url):
    """A registry deployed and onboarded for this module (not recorded in deployments/)."""
    from rxchain.chain.client import RegistryClient
    from rxchain.chain.deploy import deploy_registry
    from rxchain.dev.demo import onboard

    deployed = deploy_registry(w3, ids["regulator"], network="local", rpc_url=rpc_url, record=False)
    onboard(RegistryClient(w3, deployed.registry, deploy_block=deployed.deploy_block), ids)
    return deployed


@pytest.fixture
def client(w3, deployment, tmp_path):
    """A fresh client of the module's registry with its own outbox file."""
    from rxchain.chain.client import RegistryClient
    from rxchain.chain.outbox import Outbox

    return RegistryClient(
        w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=Outbox(tmp_path / "outbox.sqlite")
    )


#: The scripted workload of the indexer's and the console's tests: 3 days x 24 prescriptions (half in
#: batches of 8), every state a prescription can reach.
DAYS, PER_DAY = 3, 24


@pytest.fixture(scope="module")
def scenario(w3, ids, deployment):
    """The scripted workload (rxchain.indexer.workload), run once per module on its registry."""
    from rxchain.chain.client import RegistryClient
    from rxchain.indexer.workload import run_workload

    client = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block)
    return run_workload(client, ids, days=DAYS, per_day=PER_DAY, batch_size=8)


# ---------------------------------------------------------------------------------- PostgreSQL

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the session (Debian's postgresql: initdb + pg_ctl in a
    temporary folder); skips, saying why, when none can run here."""
    try:
        import psycopg  # noqa: F401 - only probes that psycopg is installed
    except ImportError:
        not_here("the PostgreSQL variant needs the Python package psycopg", "make setup")
    from rxchain.indexer.pgtemp import PostgresUnavailable, TempPostgres

    try:
        server = TempPostgres.start()
    except PostgresUnavailable as exc:
        not_here(
            f"the PostgreSQL variant needs a PostgreSQL server ({exc})",
            "apt-get install -y postgresql, or make setup as root",
        )
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh, empty PostgreSQL database on the session's server."""
    return postgres.create_database(f"rxtest_{next(_databases)}")
