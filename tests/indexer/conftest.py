"""Fixtures for the indexer's tests, against ape's ephemeral anvil (never the devnet).

One registry per test module, onboarded with the development identities, and one scripted workload
on it (:func:`rxchain.indexer.workload.run_workload`: three days of chain time, every state a
prescription can reach). ape's isolation reverts the chain after every test, so each test starts from
that state; each test gets fresh clients and its own database files.

The PostgreSQL variants start a throwaway server (Debian's postgresql: initdb + pg_ctl in a temporary
folder); without it they skip, saying why.
"""

from __future__ import annotations

import itertools

import pytest
from ape import networks

from rxchain.client import RegistryClient
from rxchain.deploy import deploy_registry
from rxchain.identities import dev_accounts
from rxchain.indexer.db import Database
from rxchain.lifecycle import onboard
from rxchain.outbox import Outbox

#: The scripted workload's size: 3 days x 24 prescriptions (half in batches of 8).
DAYS, PER_DAY = 3, 24


@pytest.fixture(scope="session")
def ids():
    return dev_accounts()


@pytest.fixture(scope="session")
def w3():
    return networks.provider.web3


@pytest.fixture(scope="session")
def rpc_url():
    return networks.provider.uri


@pytest.fixture(scope="module")
def deployment(w3, ids, rpc_url):
    """A registry deployed and onboarded for this module."""
    deployed = deploy_registry(w3, ids["regulator"], network="local", rpc_url=rpc_url, record=False)
    onboard(RegistryClient(w3, deployed.registry, deploy_block=deployed.deploy_block), ids)
    return deployed


@pytest.fixture(scope="module")
def scenario(w3, ids, deployment):
    """The scripted workload, run once per module on its registry."""
    from rxchain.indexer.workload import run_workload

    client = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block)
    return run_workload(client, ids, days=DAYS, per_day=PER_DAY, batch_size=8)


@pytest.fixture
def client(w3, deployment, tmp_path) -> RegistryClient:
    """A fresh client of the module's registry (per test: ape reverts the chain after each)."""
    return RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=Outbox(tmp_path / "outbox.sqlite"))


@pytest.fixture
def db_url(tmp_path) -> str:
    """A fresh SQLite index file."""
    return str(tmp_path / "index.sqlite")


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (skips when none can run here)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL variant needs the Python package psycopg (pip install 'psycopg[binary]')")
    from rxchain.indexer.pgtemp import PostgresUnavailable, TempPostgres

    try:
        server = TempPostgres.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL variant skipped: {exc}")
    yield server
    server.stop()


_databases = itertools.count(1)


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh, empty PostgreSQL database."""
    return postgres.create_database(f"rxindex_{next(_databases)}")


def dump(db_url: str) -> dict[str, list[tuple]]:
    """Every row of every index table (meta without the wall-clock time), sorted: for comparing runs."""
    from rxchain.indexer.db import ALL_TABLES

    out = {}
    with Database(db_url).connect(readonly=True) as conn:
        for table in ALL_TABLES:
            rows = conn.query(f"SELECT * FROM {table}")
            if table == "meta":
                rows = [r for r in rows if r[0] != "indexed_at"]
            if table == "blocks":  # range ends differ with range sizes; blocks with events do not
                rows = [r for r in rows if r[3] > 0]
            out[table] = sorted(tuple(r) for r in rows)
    return out
