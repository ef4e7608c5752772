"""The running totals (rxchain.indexer.totals) against a scan of the rows, on the scripted workload:
at every block of it (the expiry of unfilled prescriptions moves with the last indexed block's time),
after resuming, after a reorganisation, and for an index built before the totals existed."""

from __future__ import annotations

from rxchain.chain.client import RegistryClient
from rxchain.indexer import index, queries, totals, verify
from rxchain.indexer.check import check_totals
from rxchain.indexer.db import Database

from .conftest import dump

DAY = 86400


def run(client, db_url, **options):
    return index(client.w3.provider.endpoint_uri, client.address, client.deploy_block, db_url, **options)


def kept(db_url: str) -> dict:
    """The totals tables, sorted."""
    whole = dump(db_url)
    return {"totals": whole["totals"], "daily_totals": whole["daily_totals"]}


def same_as_scan(conn) -> dict:
    """Asserts that the summary and the daily series from the totals are the scan's; returns the summary."""
    assert totals.has(conn)
    summary = queries.summary(conn)
    assert summary == queries.summary_scan(conn)
    assert queries.daily(conn) == queries.daily_scan(conn)
    assert check_totals(conn) == []
    return summary


def test_the_totals_are_the_scan_at_every_block(client, scenario, db_url):
    head = client.w3.eth.block_number
    blocks = list(range(client.deploy_block, head + 1))
    stride = max(1, len(blocks) // 150)
    today_expired = refillable_expired = 0
    for block in [*blocks[::stride], head]:
        run(client, db_url, to_block=block)
        with Database(db_url).connect(readonly=True) as conn:
            summary = same_as_scan(conn)
            t = queries.now(conn)
            today_expired = max(today_expired, totals._today(conn, "unfilled", t))
            refillable_expired = max(refillable_expired, summary["refillableExpired"])
    # the comparisons were not empty: unfilled prescriptions expired earlier on the indexed block's
    # day (the part counted on the index) and on days before it, and refillable ones expired
    assert today_expired > 0 and refillable_expired > 0
    assert summary["expiredUnfilled"] > today_expired and summary["activeUnfilled"] > 0
    assert summary["issued"] == len(scenario.prescriptions)
    with Database(db_url).connect(readonly=True) as conn:
        assert (
            totals.scalars(conn)["events"]
            == conn.query_one("SELECT COUNT(*) FROM events")[0]
            == queries.status(conn)["events"]
        )


def test_resuming_gives_the_same_totals(client, scenario, db_url, tmp_path):
    whole = str(tmp_path / "whole.sqlite")
    run(client, whole)
    for block in (client.deploy_block + 5, (client.deploy_block + client.w3.eth.block_number) // 2, None):
        run(client, db_url, to_block=block, max_range=7)
    assert kept(db_url) == kept(whole)
    assert kept(whole)["daily_totals"] and all(n != 0 for _, n in kept(whole)["totals"])


def test_the_totals_follow_a_reorganisation(client, scenario, db_url, ids, w3, tmp_path):
    from rxchain.dev.demo import demo_document
    from rxchain.workflow import issue_prescription, redeem_payload

    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    doctor, pharmacy = ids["doctor"], ids["pharmacy"]
    lost = issue_prescription(client, doctor, demo_document(doctor.address, client.latest_block_time()))
    client.cancel(doctor, lost.rx_id)
    run(client, db_url)
    with Database(db_url).connect(readonly=True) as conn:
        before = same_as_scan(conn)
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # those blocks are replaced by others
    fresh = RegistryClient(w3, client.address, deploy_block=client.deploy_block)
    kept_rx = issue_prescription(fresh, doctor, demo_document(doctor.address, fresh.latest_block_time()))
    redeem_payload(fresh, pharmacy, kept_rx.payload_text)
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])

    stats = run(fresh, db_url)
    assert stats.reorgs == 1
    with Database(db_url).connect(readonly=True) as conn:
        after = same_as_scan(conn)
    assert after["issued"] == before["issued"] and after["cancelled"] == before["cancelled"] - 1
    assert (
        after["fills"] == before["fills"] + 1 and after["byStatus"]["dispensed"] == before["byStatus"]["dispensed"] + 1
    )
    again = str(tmp_path / "again.sqlite")
    run(fresh, again)
    assert kept(db_url) == kept(again)
    assert verify(db_url, fresh.w3.provider.endpoint_uri, sample=None) == []


def test_an_index_without_totals_gets_them_counted_once(client, scenario, db_url):
    run(client, db_url)
    with Database(db_url).connect(readonly=True) as conn:
        summary, daily = queries.summary(conn), queries.daily(conn)
    built = kept(db_url)
    with Database(db_url).connect() as conn, conn.transaction():  # as an earlier version left it
        conn.execute("DELETE FROM totals")
        conn.execute("DELETE FROM daily_totals")
        conn.execute("DELETE FROM meta WHERE key = ?", (totals.MARK,))
    with Database(db_url).connect(readonly=True) as conn:
        assert not totals.has(conn)
        assert (queries.summary(conn), queries.daily(conn)) == (summary, daily)  # scanned meanwhile
    messages: list[str] = []
    stats = run(client, db_url, log=messages.append)
    assert stats.events == 0 and any("no running totals" in m for m in messages)
    assert kept(db_url) == built
    messages.clear()
    run(client, db_url, log=messages.append)
    assert messages == []


def test_verify_finds_totals_that_do_not_add_up(client, scenario, db_url):
    run(client, db_url)
    with Database(db_url).connect() as conn, conn.transaction():
        conn.execute("UPDATE totals SET n = n + 1 WHERE name = 'cancelled'")
        conn.execute(
            "UPDATE daily_totals SET n = n + 2 WHERE series = 'issued' AND day = (SELECT MIN(day) FROM daily_totals)"
        )
    problems = verify(db_url, client.w3.provider.endpoint_uri, sample=10, seed=1)
    assert any("running totals: cancelled" in p for p in problems)
    assert any("running totals: the daily series differs" in p for p in problems)
    assert any(p.startswith("totals: ") for p in problems) and any(p.startswith("daily_totals: ") for p in problems)
