"""DrugBoxes' events in the index, on ape's ephemeral anvil: the scripted boxes workload
(:mod:`rxchain.indexer.boxes_workload`: lots, a recall, fills' boxes, every claim outcome, a voided
fill, duplicate scans, a cloned lot) played with the Python clients, indexed beside the registry's
events; each table against the script and DrugBoxes' own views; the console's claim and alarm figures
exact; resuming in small ranges, a reorganisation, verify, PostgreSQL; and a deployment indexed without
DrugBoxes as before."""

from __future__ import annotations

import pytest

from rxchain.chain.boxes import BoxesClient, ClaimStatus
from rxchain.chain.client import RegistryClient
from rxchain.indexer import index, queries, verify
from rxchain.indexer.boxes_workload import run_boxes_workload
from rxchain.indexer.db import Database

from .conftest import dump

DAY = 86400


@pytest.fixture(scope="module")
def boxes_scenario(w3, ids, deployment):
    registry = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block)
    return run_boxes_workload(registry, BoxesClient.for_deployment(registry, deployment), ids)


def run(client, db_url, boxes=None, **options):
    return index(client.w3.provider.endpoint_uri, client.address, client.deploy_block, db_url, boxes=boxes, **options)


def logs(w3, address, start):
    return w3.eth.get_logs({"address": address, "fromBlock": start, "toBlock": "latest"})


def test_the_index_projects_every_drugboxes_event(client, deployment, boxes_scenario, db_url, w3, ids):
    s = boxes_scenario
    stats = run(client, db_url, boxes=deployment.boxes)
    registry_logs, boxes_logs = logs(w3, client.address, client.deploy_block), logs(w3, s.boxes, client.deploy_block)
    # 3 lots registered, 1 recalled, 7 fills, 4 claims filed, 2 approved, 1 paid, 1 rejected, 1 fill voided,
    # 2 duplicate scans
    assert stats.events == len(registry_logs) + len(boxes_logs) and len(boxes_logs) == 22
    boxes = BoxesClient(client, s.boxes)

    with Database(db_url).connect(readonly=True) as conn:
        assert queries.status(conn)["boxes"] == s.boxes
        lots = {r["root"]: r for r in conn.query_dicts("SELECT * FROM lots")}
        assert {root: r["count"] for root, r in lots.items()} == s.lots
        for root, row in lots.items():
            state = boxes.lot_state(bytes.fromhex(root[2:]))
            assert (row["manufacturer"], row["expires_at"]) == (s.manufacturer, state.expires_at)
            assert (row["recalled_by"] is not None) == (root in s.recalled) == state.recalled
        assert lots[s.recalled[0]]["recalled_by"] == s.manufacturer

        fills = {(r["id"], r["fills_left"]): r for r in conn.query_dicts("SELECT * FROM box_fills")}
        assert set(fills) == {(f.rx_id, f.fills_left) for f in s.fills}
        for f in s.fills:
            row = fills[(f.rx_id, f.fills_left)]
            assert (row["pharmacy"], row["boxes"], row["claim"]) == (f.pharmacy, f.boxes, f.claim), f
            assert (row["payment_reference"], row["reason"]) == (f.payment_reference, f.reason), f
            assert row["recorded_at"] == f.recorded_at
            on_chain = boxes.fill(bytes.fromhex(f.rx_id[2:]), f.fills_left)
            assert (on_chain.pharmacy, on_chain.boxes, on_chain.claim.name.lower()) == (f.pharmacy, f.boxes, f.claim)
            claimed = f.claim in ("filed", "approved", "paid", "rejected")
            assert (row["insurer"] == s.insurer) == claimed and (row["filed_at"] is not None) == claimed
            if claimed:
                filed = boxes.claim_events(bytes.fromhex(f.rx_id[2:]), f.fills_left)["filed"]
                assert row["commitment"] == filed["commitment"] and row["filed_at"] == filed["time"]
            assert (row["approved_at"] is not None) == (f.claim in ("approved", "paid"))
            assert (row["paid_at"] is not None) == (f.claim == "paid")
            assert (row["voided_by"] == ids["regulator"].address) == (f.claim == "void")
            nullifiers = conn.query(
                "SELECT nullifier FROM box_nullifiers WHERE id = ? AND fills_left = ? ORDER BY position",
                (f.rx_id, f.fills_left),
            )
            assert [n for (n,) in nullifiers] == f.nullifiers

        # a nullifier is looked up in its own table: the cloned box is in two fills
        twice = conn.query("SELECT id, fills_left FROM box_nullifiers WHERE nullifier = ?", (s.cloned_nullifier,))
        assert sorted(twice) == sorted(s.cloned_fills)

        scans = conn.query_dicts("SELECT * FROM duplicate_scans ORDER BY block_number, log_index")
        assert [(r["lot"], r["box_index"], r["nullifier"], r["pharmacy"], r["scanned_at"]) for r in scans] == [
            (d.lot, d.index, d.nullifier, d.pharmacy, d.scanned_at) for d in s.duplicates
        ]
        assert [(r["first_id"], r["first_fills_left"], r["first_pharmacy"], r["first_at"]) for r in scans] == [
            (d.first_rx_id, 0, d.first_pharmacy, d.first_at) for d in s.duplicates
        ]
    assert verify(db_url, client.w3.provider.endpoint_uri, sample=None) == []
    assert verify(db_url, client.w3.provider.endpoint_uri, sample=3, seed=14) == []


def test_the_claim_and_alarm_figures_are_exact(client, deployment, boxes_scenario, db_url, ids):
    s = boxes_scenario
    run(client, db_url, boxes=deployment.boxes)
    pharmacy, pharmacy2 = ids["pharmacy"].address, ids["pharmacy2"].address
    with Database(db_url).connect(readonly=True) as conn:
        figures = queries.claims(conn)
        alarms = queries.box_alarms(conn)
    expected = s.claims()
    assert expected == {
        "fillsWithBoxes": 7,
        "unclaimed": 2,
        "filed": 4,
        "pending": 1,
        "approved": 2,
        "awaitingPayment": 1,
        "paid": 1,
        "rejected": 1,
        "void": 1,
    }
    assert {k: figures[k] for k in expected} == expected
    assert figures["byInsurer"] == [{"insurer": s.insurer, **expected, "fillsWithBoxes": 4, "unclaimed": 0, "void": 0}]
    by_pharmacy = {r["pharmacy"]: r for r in figures["byPharmacy"]}
    assert {k: by_pharmacy[pharmacy][k] for k in expected} == {
        **dict.fromkeys(expected, 0),
        "fillsWithBoxes": 3,
        "unclaimed": 1,
        "filed": 2,
        "approved": 2,
        "awaitingPayment": 1,
        "paid": 1,
    }
    assert {k: by_pharmacy[pharmacy2][k] for k in expected} == {
        **dict.fromkeys(expected, 0),
        "fillsWithBoxes": 4,
        "unclaimed": 1,
        "filed": 2,
        "pending": 1,
        "rejected": 1,
        "void": 1,
    }
    claimed = [f for f in s.fills if f.claim != "none"]
    assert figures["total"] == len(figures["rows"]) == len(claimed) == 5
    rows = {(r["id"], r["fillsLeft"]): r for r in figures["rows"]}
    for f in claimed:
        row = rows[(f.rx_id, f.fills_left)]
        assert (row["status"], row["pharmacy"], row["paymentReference"], row["reason"]) == (
            f.claim,
            f.pharmacy,
            f.payment_reference,
            f.reason,
        )
        assert row["fill"] == 1 and row["insurer"] == (None if f.claim == "void" else s.insurer)
    assert figures["rows"][0]["status"] == "void"  # the most recently moved first
    assert [r["updatedAt"] for r in figures["rows"]] == sorted((r["updatedAt"] for r in figures["rows"]), reverse=True)

    assert alarms["duplicates"] == 2 and alarms["lots"] == 3
    assert alarms["byPharmacy"] == [
        {"pharmacy": d.pharmacy, "duplicates": 1, "lastAt": d.scanned_at}
        for d in sorted(s.duplicates, key=lambda d: d.pharmacy)
    ]
    first_day, second_day = (d.scanned_at // DAY for d in s.duplicates)
    assert second_day == first_day + 1
    assert [d["duplicates"] for d in alarms["byDay"]] == [1, 1]
    assert [(r["lot"], r["index"], r["pharmacy"], r["scannedAt"], r["firstSale"]) for r in alarms["rows"]] == [
        (
            d.lot,
            d.index,
            d.pharmacy,
            d.scanned_at,
            {"id": d.first_rx_id, "fillsLeft": 0, "pharmacy": d.first_pharmacy, "at": d.first_at},
        )
        for d in reversed(s.duplicates)
    ]
    assert alarms["clonedBoxes"] == 1
    assert alarms["cloned"][0]["nullifier"] == s.cloned_nullifier
    assert [(f["id"], f["fillsLeft"], f["pharmacy"]) for f in alarms["cloned"][0]["fills"]] == [
        (s.cloned_fills[0][0], 0, pharmacy),
        (s.cloned_fills[1][0], 0, pharmacy2),
    ]
    assert alarms["recalledLots"] == 1
    assert [(r["root"], r["manufacturer"], r["recalledBy"]) for r in alarms["recalled"]] == [
        (s.recalled[0], s.manufacturer, s.manufacturer)
    ]


def test_resuming_in_small_ranges_gives_the_same_boxes_index(client, deployment, boxes_scenario, db_url, tmp_path):
    run(client, db_url, boxes=deployment.boxes)
    pieces = str(tmp_path / "pieces.sqlite")
    head = client.w3.eth.block_number
    for stop in range(client.deploy_block + 5, head, 7):
        run(client, pieces, boxes=deployment.boxes, to_block=stop, max_range=3)
    run(client, pieces, boxes=deployment.boxes, max_range=2)
    assert dump(pieces) == dump(db_url)


def test_without_drugboxes_the_index_is_the_registrys_and_is_rebuilt_once_given_it(
    client, deployment, boxes_scenario, db_url, w3, ids
):
    stats = run(client, db_url)
    assert stats.events == len(logs(w3, client.address, client.deploy_block))
    with Database(db_url).connect(readonly=True) as conn:
        assert queries.status(conn)["boxes"] is None
        assert queries.claims(conn)["filed"] == 0 and queries.box_alarms(conn)["duplicates"] == 0
        assert conn.query_one("SELECT COUNT(*) FROM events WHERE name = 'FillBoxesRecorded'")[0] == 0
    assert verify(db_url, client.w3.provider.endpoint_uri, sample=None) == []

    messages: list[str] = []
    stats = run(client, db_url, boxes=deployment.boxes, log=messages.append)
    assert stats.resets == 1 and "did not follow DrugBoxes" in messages[0]
    with Database(db_url).connect(readonly=True) as conn:
        assert queries.claims(conn)["filed"] == 4 and queries.box_alarms(conn)["duplicates"] == 2

    # told nothing, the index goes on following DrugBoxes: a new claim's decision is indexed
    fresh = RegistryClient(w3, client.address, deploy_block=client.deploy_block)
    pending = next(f for f in boxes_scenario.fills if f.claim == "filed")
    BoxesClient(fresh, deployment.boxes).approve(ids["insurer"], bytes.fromhex(pending.rx_id[2:]), 0, "PAY-LATE")
    again = run(fresh, db_url)
    assert again.resets == 0 and again.events == 2  # ClaimApproved and ClaimPaid
    with Database(db_url).connect(readonly=True) as conn:
        assert queries.claims(conn)["paid"] == 2 and queries.claims(conn)["pending"] == 0
    assert verify(db_url, client.w3.provider.endpoint_uri, sample=None) == []


def test_a_reorganisation_drops_a_claims_decision_and_verify_finds_altered_rows(
    client, deployment, boxes_scenario, db_url, w3, ids
):
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    pending = next(f for f in boxes_scenario.fills if f.claim == "filed")
    boxes = BoxesClient(client, deployment.boxes)
    boxes.reject(ids["insurer"], bytes.fromhex(pending.rx_id[2:]), 0, 9)
    run(client, db_url, boxes=deployment.boxes)
    with Database(db_url).connect(readonly=True) as conn:
        assert queries.claims(conn)["rejected"] == 2
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
    fresh = RegistryClient(w3, client.address, deploy_block=client.deploy_block)
    # the replacing blocks: the claim is approved instead, and one block more
    BoxesClient(fresh, deployment.boxes).approve(ids["insurer"], bytes.fromhex(pending.rx_id[2:]), 0, None)
    w3.provider.make_request("evm_mine", [])
    stats = run(fresh, db_url)
    assert stats.reorgs == 1
    with Database(db_url).connect(readonly=True) as conn:
        figures = queries.claims(conn)
        assert (figures["rejected"], figures["approved"], figures["awaitingPayment"]) == (1, 3, 2)
    assert verify(db_url, w3.provider.endpoint_uri, sample=None) == []

    # an altered claim and an altered lot are found, against DrugBoxes' views and the replay
    with Database(db_url).connect() as conn, conn.transaction():
        conn.execute("UPDATE box_fills SET claim = 'paid' WHERE id = ? AND fills_left = 0", (pending.rx_id,))
        conn.execute("UPDATE lots SET count = 99 WHERE root = ?", (boxes_scenario.recalled[0],))
    problems = verify(db_url, w3.provider.endpoint_uri, sample=None)
    assert any(p.startswith(f"fill 0 of {pending.rx_id}: DrugBoxes says 1 boxes") for p in problems), problems
    assert any(p.startswith(f"lot {boxes_scenario.recalled[0]}: DrugBoxes says 4 boxes") for p in problems), problems
    assert any(p.startswith("box_fills: 1 rows differ from a replay") for p in problems), problems
    assert any(p.startswith("lots: 1 rows differ from a replay") for p in problems), problems
    assert BoxesClient(fresh, deployment.boxes).fill(bytes.fromhex(pending.rx_id[2:]), 0).claim is ClaimStatus.APPROVED


def test_postgres_holds_the_same_boxes_index(client, deployment, boxes_scenario, db_url, pg_url):
    run(client, db_url, boxes=deployment.boxes)
    run(client, pg_url, boxes=deployment.boxes)
    assert dump(pg_url) == dump(db_url)
    with Database(pg_url).connect(readonly=True) as a, Database(db_url).connect(readonly=True) as b:
        assert queries.claims(a) == queries.claims(b)
        assert queries.box_alarms(a) == queries.box_alarms(b)
    assert verify(pg_url, client.w3.provider.endpoint_uri, sample=None) == []


def test_rx_index_run_follows_the_deployment_records_drugboxes(deployment, boxes_scenario, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from rxchain.chain.deployment import save_deployment
    from rxchain.indexer.commands import standalone

    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    save_deployment(deployment)
    db = str(tmp_path / "index.sqlite")
    runner = CliRunner(mix_stderr=False)
    result = runner.invoke(standalone, ["--network", "local", "--json", "run", "--db", db], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    status = runner.invoke(standalone, ["--network", "local", "--json", "status", "--db", db], catch_exceptions=False)
    data = json.loads(status.stdout)
    assert data["boxes"] == deployment.boxes
    assert (data["rows"]["lots"], data["rows"]["boxFills"], data["rows"]["duplicateScans"]) == (3, 7, 2)
    checked = runner.invoke(standalone, ["--network", "local", "--json", "verify", "--db", db, "--all"])
    assert checked.exit_code == 0 and json.loads(checked.stdout) == {"ok": True, "problems": []}
