"""Fixtures for the indexer's tests, against ape's ephemeral anvil (never the devnet).

One registry per test module, onboarded with the development identities, and one scripted workload
on it (:func:`rxchain.indexer.workload.run_workload`: three days of chain time, every state a
prescription can reach). ape's isolation reverts the chain after every test, so each test starts from
that state; each test gets fresh clients and its own database files.

The PostgreSQL variants start a throwaway server (Debian's postgresql: initdb + pg_ctl in a temporary
folder); without it they skip, saying why.
"""

from __future__ import annotations

import pytest

from rxchain.indexer.db import Database


@pytest.fixture
def db_url(tmp_path) -> str:
    """A fresh SQLite index file."""
    return str(tmp_path / "index.sqlite")


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
