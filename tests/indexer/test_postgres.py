"""The same index in PostgreSQL (a throwaway server; skipped, saying why, where none can run):
the same rows and figures as SQLite, resumable, idempotent, transactional, and reorganisations."""

from __future__ import annotations

import pytest

from rxchain.chain.client import RegistryClient
from rxchain.indexer import index, queries, verify
from rxchain.indexer.db import Database
from rxchain.indexer.projection import Projection

from .conftest import dump

FIGURES = (
    queries.summary,
    queries.daily,
    queries.hospitals,
    queries.pharmacies,
    queries.delivery_times,
    queries.member_list,
    queries.expired_unfilled,
    queries.status,
)


def run(client, db_url, **options):
    return index(client.w3.provider.endpoint_uri, client.address, client.deploy_block, db_url, **options)


def test_postgres_holds_the_same_index_as_sqlite(client, scenario, db_url, pg_url):
    lite = run(client, db_url)
    pg = run(client, pg_url)
    assert pg.events == lite.events > 0
    assert dump(pg_url) == dump(db_url)
    with Database(pg_url).connect(readonly=True) as a, Database(db_url).connect(readonly=True) as b:
        for figure in FIGURES:
            mine, theirs = figure(a), figure(b)
            if figure is queries.status:  # the wall-clock time of each run's last commit differs
                mine.pop("indexedAt"), theirs.pop("indexedAt")
            assert mine == theirs, figure.__name__
        for p in scenario.prescriptions[:10]:
            assert queries.trail(a, p.id_hex) == queries.trail(b, p.id_hex)
    assert verify(pg_url, client.w3.provider.endpoint_uri, sample=None) == []


def test_postgres_resumes_and_adds_nothing_twice(client, scenario, db_url, pg_url, monkeypatch):
    run(client, db_url)
    middle = (client.deploy_block + client.w3.eth.block_number) // 2
    run(client, pg_url, to_block=middle)

    real_flush, calls = Projection.flush, []

    def crashing_flush(self):
        calls.append(1)
        real_flush(self)
        if len(calls) == 2:
            raise KeyboardInterrupt  # written, not committed

    monkeypatch.setattr(Projection, "flush", crashing_flush)
    with pytest.raises(KeyboardInterrupt):
        run(client, pg_url, max_range=10)
    monkeypatch.setattr(Projection, "flush", real_flush)
    with Database(pg_url).connect(readonly=True) as conn:
        last = int(conn.query_one("SELECT value FROM meta WHERE key = 'last_block'")[0])
        assert middle < last < client.w3.eth.block_number
        assert conn.query_one("SELECT COUNT(*) FROM events WHERE block_number > ?", (last,))[0] == 0

    run(client, pg_url)
    assert run(client, pg_url).events == 0
    assert dump(pg_url) == dump(db_url)


def test_postgres_rolls_back_a_reorganisation(client, scenario, pg_url, ids, w3):
    from rxchain.dev.demo import demo_document
    from rxchain.workflow import issue_prescription

    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    doctor = ids["doctor"]
    lost = issue_prescription(client, doctor, demo_document(doctor.address, client.latest_block_time()))
    run(client, pg_url)
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
    fresh = RegistryClient(w3, client.address, deploy_block=client.deploy_block)
    kept = issue_prescription(fresh, doctor, demo_document(doctor.address, fresh.latest_block_time()))
    w3.provider.make_request("evm_mine", [])
    stats = run(fresh, pg_url)
    assert stats.reorgs == 1
    with Database(pg_url).connect(readonly=True) as conn:
        assert queries.prescription(conn, "0x" + lost.rx_id.hex()) is None
        assert queries.prescription(conn, "0x" + kept.rx_id.hex()) is not None
    assert verify(pg_url, fresh.w3.provider.endpoint_uri, sample=None) == []


def test_postgres_keeps_the_same_running_totals(client, scenario, db_url, pg_url):
    from rxchain.indexer import totals
    from rxchain.indexer.check import check_totals

    run(client, db_url)
    middle = (client.deploy_block + client.w3.eth.block_number) // 2
    run(client, pg_url, to_block=middle, max_range=9)
    with Database(pg_url).connect() as conn, conn.transaction():  # an index from before the totals
        conn.execute("DELETE FROM totals")
        conn.execute("DELETE FROM daily_totals")
        conn.execute("DELETE FROM meta WHERE key = ?", (totals.MARK,))
    messages: list[str] = []
    run(client, pg_url, log=messages.append)  # counts them from the rows, then keeps them to the head
    assert any("no running totals" in m for m in messages)
    assert dump(pg_url) == dump(db_url)
    with Database(pg_url).connect(readonly=True) as conn:
        assert totals.has(conn) and check_totals(conn) == []
        assert queries.summary(conn) == queries.summary_scan(conn) and queries.daily(conn) == queries.daily_scan(conn)
