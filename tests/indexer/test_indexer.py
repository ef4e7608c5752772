"""The indexer against ape's ephemeral anvil: a scripted workload through every state, indexed into
SQLite; the database's figures against the script and against the registry's own views; resuming,
re-running, reorganisations, a restarted chain, and verify."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter

import pytest
from eth_utils import to_checksum_address

from rxchain import audit
from rxchain.chain.deploy import deploy_registry
from rxchain.indexer import IndexerError, index, queries, verify
from rxchain.indexer.db import Database
from rxchain.indexer.node import Node, NodeError
from rxchain.indexer.projection import Projection
from rxchain.indexer.workload import FATES, expected_figures
from rxchain.dev.demo import demo_document, onboard
from rxchain.chain.client import RegistryClient
from rxchain.core.status import Status
from rxchain.workflow import issue_prescription, redeem_payload

from .conftest import dump

DAY = 86400


def run(client, db_url, **options):
    return index(client.w3.provider.endpoint_uri, client.address, client.deploy_block, db_url, **options)


def chain_status(client, p) -> str:
    """The prescription's status from the registry's views alone (a never-opened batched prescription
    is active, or cancelled when its batch was withdrawn)."""
    state = client.prescription(p.rx_id)
    if state.status is Status.NONE:
        assert p.root is not None, f"{p.id_hex} is unknown to the registry"
        return "cancelled" if client.batch(client.member(p.doctor).hospital, p.root)["cancelled"] else "active"
    return state.status.label


# ------------------------------------------------------------------------------ the figures


def test_the_index_holds_what_the_chain_holds(client, scenario, db_url):
    stats = run(client, db_url)
    now = client.latest_block_time()
    logs = client.w3.eth.get_logs({"address": client.address, "fromBlock": client.deploy_block, "toBlock": "latest"})
    assert stats.events == len(logs) > 250
    assert stats.last_block == client.w3.eth.block_number

    with Database(db_url).connect(readonly=True) as conn:
        assert queries.now(conn) == now
        rows = {r["id"]: r for r in conn.query_dicts("SELECT * FROM prescriptions")}
        # every prescription: the script, the registry's views and the index agree
        assert set(rows) == {p.id_hex for p in scenario.prescriptions}
        for p in scenario.prescriptions:
            truth = chain_status(client, p)
            assert p.status() == truth, f"{p.fate} {p.id_hex}: the script says {p.status()}, the registry {truth}"
            row = rows[p.id_hex]
            assert row["status"] == truth, f"{p.fate} {p.id_hex}"
            assert row["redemptions"] == len(p.taken)
            assert row["hospital"] == p.hospital
            assert row["expires_at"] == p.expires_at
            assert row["kind"] == ("batched" if p.root is not None else "single")
            # a batched prescription's doctor is known from PrescriptionOpened, once it was opened (its first
            # fill, or its cancellation from the batch); before that the logs name only its hospital
            opened = p.root is None or bool(p.taken) or p.cancelled == "prescription"
            assert row["doctor"] == (p.doctor if opened else None)
            state = client.prescription(p.rx_id)
            if state.exists:
                assert row["fills_left"] == state.fills_left and row["expires_at"] == state.expires_at

        summary = queries.summary(conn)
        expected = expected_figures(scenario, now)
        assert {k: summary[k] for k in expected} == expected
        assert expected["expiredUnfilled"] > 0 and expected["cancelled"] > 0 and expected["batchesCancelled"] == 1
        assert summary["byStatus"] == dict(Counter(p.status() for p in scenario.prescriptions)) | {
            s: 0 for s in summary["byStatus"] if s not in {p.status() for p in scenario.prescriptions}
        }
        # every fate of the script happened at least once
        assert {p.fate for p in scenario.prescriptions} == set(FATES) | {"batch_void"}

        # by day (UTC days of block times)
        day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t))
        want = {
            "issued": Counter(day(p.issued_at) for p in scenario.prescriptions),
            "redeemed": Counter(day(f.redeemed_at) for p in scenario.prescriptions for f in p.taken),
            "cancelled": Counter(day(p.cancelled_at) for p in scenario.prescriptions if p.cancelled),
            "expired": Counter(day(p.expires_at) for p in scenario.prescriptions if p.expired_unfilled(now)),
        }
        got = queries.daily(conn)
        for series, counts in want.items():
            assert {d["day"]: d[series] for d in got if d[series]} == dict(counts), series
        assert len(got) >= 3

        # by hospital
        hospitals = {h["hospital"]: h for h in queries.hospitals(conn)}
        assert set(hospitals) == set(scenario.hospitals)
        for address, h in hospitals.items():
            mine = [p for p in scenario.prescriptions if p.hospital == address]
            assert h["issued"] == len(mine)
            assert h["batched"] == sum(1 for p in mine if p.root is not None)
            assert h["redeemed"] == sum(1 for p in mine if p.taken)
            assert h["cancelled"] == sum(1 for p in mine if p.cancelled)
            assert h["expiredUnfilled"] == sum(1 for p in mine if p.expired_unfilled(now))

        # by pharmacy, and delivery times (dispatch to receipt)
        fills = [f for p in scenario.prescriptions for f in p.taken]
        pharmacies = {r["pharmacy"]: r for r in queries.pharmacies(conn)}
        for address in {f.pharmacy for f in fills}:
            mine = [f for f in fills if f.pharmacy == address]
            row = pharmacies[address]
            assert (row["fills"], row["dispatched"], row["handedOverInStore"], row["received"]) == (
                len(mine),
                sum(1 for f in mine if f.courier),
                sum(1 for f in mine if f.in_store),
                sum(1 for f in mine if f.received),
            )
            spans = [f.received_at - f.dispatched_at for f in mine if f.courier and f.received]
            assert row["medianDeliverySeconds"] == (statistics.median(spans) if spans else None)
        spans = sorted(f.received_at - f.dispatched_at for f in fills if f.courier and f.received)
        delivery = queries.delivery_times(conn)
        assert delivery["count"] == len(spans) and delivery["min"] == spans[0] and delivery["max"] == spans[-1]
        assert sum(b["count"] for b in delivery["bins"]) == len(spans)
        assert delivery["p50"] == statistics.median(spans)

        # expired, never filled
        expired = queries.expired_unfilled(conn)
        assert {r["id"] for r in expired["rows"]} == {
            p.id_hex for p in scenario.prescriptions if p.expired_unfilled(now)
        }

        # members: the registry's records, and the stories the script told
        members = {m["account"]: m for m in queries.member_list(conn)}
        for record in client.members():
            m = members[record.account]
            assert [r for r in m["roles"] if r != "regulator"] == record.roles
            assert m["validUntil"] == record.valid_until and m["hospital"] == record.hospital
        standing = {
            "credential expired": "expired",
            "credential ends soon": "expiring",
            "revoked": "revoked",
            "renewed": "good",
        }
        for account, story in scenario.member_notes.items():
            assert members[account]["standing"] == standing[story], story
        assert members[client.w3.eth.accounts[0]]["roles"] == ["regulator"] if client.w3.eth.accounts else True
        assert summary["membersExpiringSoon"] == sum(1 for m in members.values() if m["standing"] == "expiring") >= 1

        status = queries.status(conn)
        assert status["paused"] is False  # paused, then resumed
        assert status["lastBlockHash"] == "0x" + bytes(client.w3.eth.get_block(stats.last_block)["hash"]).hex()


def test_the_trail_from_the_database_is_rx_trail(client, scenario, db_url):
    run(client, db_url)
    # one prescription of every fate, single and batched, including the voided batch
    picked: dict[tuple[str, bool], object] = {}
    for p in scenario.prescriptions:
        picked.setdefault((p.fate, p.root is not None), p)
    assert len(picked) >= 12
    with Database(db_url).connect(readonly=True) as conn:
        for p in picked.values():
            from_chain = [s.as_json() for s in audit.trail(client, p.rx_id)]
            assert queries.trail(conn, p.id_hex) == from_chain, p.fate
            assert queries.trail(conn, p.id_hex.upper().replace("0X", "0x")) == from_chain
        steps = {s["step"] for p in picked.values() for s in queries.trail(conn, p.id_hex)}
        assert steps == {
            "issued",
            "issued in batch",
            "opened from batch",
            "cancelled",
            "redeemed",
            "dispatched",
            "delivered",
            "handed over in store",
            "received",
        }
        assert queries.trail(conn, "0x" + "ab" * 32) == []


def test_no_patient_data_in_the_index(client, scenario, db_url):
    """Only hashes, addresses, numbers and the index's own words are stored: nothing from a document."""
    import json
    import re

    run(client, db_url)
    allowed = re.compile(r"^(0x[0-9a-fA-F]+|\d+|[a-z_]+|[A-Z][A-Za-z]+|)$")
    with Database(db_url).connect(readonly=True) as conn:
        for table in ("events", "prescriptions", "fills", "members", "batches", "blocks", "meta"):
            for row in conn.query(f"SELECT * FROM {table}"):
                for value in row:
                    if isinstance(value, str) and value.startswith("{"):
                        values = [str(v) for v in json.loads(value).values()]
                    else:
                        values = [str(value)] if value is not None else []
                    for text in values:
                        assert allowed.match(text) or text in ("True", "False"), f"{table}: unexpected text {text!r}"


# ------------------------------------------------------------------------- resuming, re-running


def test_running_again_adds_nothing(client, scenario, db_url):
    first = run(client, db_url)
    before = dump(db_url)
    again = run(client, db_url)
    assert again.events == 0 and again.blocks == 0
    assert dump(db_url) == before
    assert first.events > 0


def test_stopping_midway_and_resuming_gives_the_same_index(client, scenario, db_url, tmp_path):
    whole = str(tmp_path / "whole.sqlite")
    run(client, whole)
    head = client.w3.eth.block_number
    middle = (client.deploy_block + head) // 2
    part = run(client, db_url, to_block=middle)
    assert part.last_block == middle and 0 < part.events
    rest = run(client, db_url)
    assert rest.first_block == middle + 1
    assert part.events + rest.events == len(
        client.w3.eth.get_logs({"address": client.address, "fromBlock": client.deploy_block})
    )
    assert dump(db_url) == dump(whole)


def test_a_crash_inside_a_range_writes_nothing_of_it(client, scenario, db_url, tmp_path, monkeypatch):
    whole = str(tmp_path / "whole.sqlite")
    run(client, whole)
    flushes = 0
    real_flush = Projection.flush

    def crashing_flush(self):
        nonlocal flushes
        flushes += 1
        if flushes == 4:
            real_flush(self)  # the rows are written, then the process "dies" before the commit
            raise KeyboardInterrupt
        real_flush(self)

    monkeypatch.setattr(Projection, "flush", crashing_flush)
    with pytest.raises(KeyboardInterrupt):
        run(client, db_url, max_range=20)
    monkeypatch.setattr(Projection, "flush", real_flush)
    with Database(db_url).connect(readonly=True) as conn:
        last = int(conn.query_one("SELECT value FROM meta WHERE key = 'last_block'")[0])
        assert conn.query_one("SELECT COUNT(*) FROM events WHERE block_number > ?", (last,))[0] == 0
        assert conn.query_one("SELECT MAX(updated_block) FROM prescriptions")[0] <= last
    resumed = run(client, db_url)
    assert resumed.first_block == last + 1
    assert dump(db_url) == dump(whole)
    assert verify(db_url, client.w3.provider.endpoint_uri, sample=None) == []


def test_small_and_refused_ranges_give_the_same_index(client, scenario, db_url, tmp_path, monkeypatch):
    whole = str(tmp_path / "whole.sqlite")
    run(client, whole)
    real = Node.get_logs
    asked: list[int] = []

    def limited(self, address, start, end):  # a node that serves at most 16 blocks a query, like Besu's limit
        asked.append(end - start + 1)
        if end - start + 1 > 16:
            raise NodeError("eth_getLogs", {"code": -32005, "message": "Requested range exceeds maximum range limit"})
        return real(self, address, start, end)

    monkeypatch.setattr(Node, "get_logs", limited)
    stats = run(client, db_url)
    assert max(asked) > 16 and stats.ranges > 5
    assert dump(db_url) == dump(whole)


def test_following_picks_up_new_blocks_until_stopped(client, scenario, db_url, ids):
    from rxchain.dev.demo import demo_document
    from rxchain.workflow import issue_prescription

    run(client, db_url)
    stop = threading.Event()
    seen: list[int] = []
    follower = threading.Thread(
        target=run,
        args=(client, db_url),
        kwargs={"follow": True, "stop": stop, "poll_interval": 0.1, "progress": lambda s: seen.append(s.last_block)},
    )
    follower.start()
    try:
        issued = issue_prescription(
            client, ids["doctor"], demo_document(ids["doctor"].address, client.latest_block_time())
        )
        rx = "0x" + issued.rx_id.hex()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with Database(db_url).connect(readonly=True) as conn:
                if queries.prescription(conn, rx) is not None:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the following indexer did not pick up the new prescription")
    finally:
        stop.set()
        follower.join(timeout=20)
    assert not follower.is_alive()
    assert seen and seen[-1] >= issued.tx.block_number


# ---------------------------------------------------------------------- reorgs, restarts, verify


def _snapshot(w3) -> str:
    return w3.provider.make_request("evm_snapshot", [])["result"]


def _revert(w3, snapshot: str) -> None:
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True


def test_a_reorganisation_of_the_last_blocks_is_rolled_back(client, scenario, db_url, ids, w3):
    from rxchain.dev.demo import demo_document
    from rxchain.workflow import issue_prescription

    snapshot = _snapshot(w3)
    doctor = ids["doctor"]
    lost = issue_prescription(client, doctor, demo_document(doctor.address, client.latest_block_time()))
    client.cancel(doctor, lost.rx_id)
    run(client, db_url)
    _revert(w3, snapshot)  # the last two blocks are replaced by others
    fresh = RegistryClient(w3, client.address, deploy_block=client.deploy_block)
    kept = issue_prescription(fresh, doctor, demo_document(doctor.address, fresh.latest_block_time()))
    for _ in range(3):
        w3.provider.make_request("evm_mine", [])

    messages: list[str] = []
    stats = run(fresh, db_url, log=messages.append)
    assert stats.reorgs == 1 and stats.resets == 0
    assert "reorganisation" in messages[0] and "removed 2 events" in messages[0]
    with Database(db_url).connect(readonly=True) as conn:
        assert queries.prescription(conn, "0x" + lost.rx_id.hex()) is None
        assert queries.prescription(conn, "0x" + kept.rx_id.hex())["status"] == "active"
        assert queries.summary(conn)["issued"] == len(scenario.prescriptions) + 1
    assert verify(db_url, fresh.w3.provider.endpoint_uri, sample=None) == []


def test_a_restarted_chain_is_detected_and_indexed_afresh(w3, ids, db_url, rpc_url):
    """The devnet restarted: the registry is deployed again at the same address (same deployer, same
    nonce), but every block differs. The indexer notices the deploy block's hash and starts over."""
    from rxchain.indexer.workload import run_workload

    snapshot = _snapshot(w3)
    first = deploy_registry(w3, ids["regulator"], network="local", record=False)
    client = RegistryClient(w3, first.registry, deploy_block=first.deploy_block)
    onboard(client, ids)
    run_workload(client, ids, days=1, per_day=6, seed="before the restart")
    run(client, db_url)
    with Database(db_url).connect(readonly=True) as conn:
        before = queries.summary(conn)["issued"]

    _revert(w3, snapshot)
    w3.provider.make_request("evm_increaseTime", [3600])  # a restart later: other timestamps, other hashes
    w3.provider.make_request("evm_mine", [])
    second = deploy_registry(w3, ids["regulator"], network="local", record=False)
    assert second.registry == first.registry
    client = RegistryClient(w3, second.registry, deploy_block=second.deploy_block)
    onboard(client, ids)
    again = run_workload(client, ids, days=1, per_day=4, seed="after the restart")
    messages: list[str] = []
    stats = run(client, db_url, log=messages.append)
    assert stats.resets == 1
    assert any("restarted devnet" in m and "reindexing" in m for m in messages), messages
    with Database(db_url).connect(readonly=True) as conn:
        assert queries.summary(conn)["issued"] == len(again.prescriptions) == 4 != before
        assert int(conn.query_one("SELECT value FROM meta WHERE key = 'deploy_block'")[0]) == second.deploy_block
    assert verify(db_url, rpc_url, sample=None) == []


def test_another_live_registry_needs_a_reset(client, scenario, db_url, w3, ids):
    run(client, db_url)
    other = deploy_registry(w3, ids["regulator"], network="local", record=False)
    with pytest.raises(IndexerError, match="still live"):
        index(client.w3.provider.endpoint_uri, other.registry, other.deploy_block, db_url)
    stats = index(client.w3.provider.endpoint_uri, other.registry, other.deploy_block, db_url, reset=True)
    assert stats.events >= 1  # the new registry's role grant
    with Database(db_url).connect(readonly=True) as conn:
        assert queries.status(conn)["registry"] == to_checksum_address(other.registry)
        assert queries.summary(conn)["issued"] == 0


def test_verify_finds_every_kind_of_difference(client, scenario, db_url):
    url = client.w3.provider.endpoint_uri
    run(client, db_url)
    assert verify(db_url, url, sample=None) == []
    assert verify(db_url, url, sample=20, seed=3) == []

    p = next(p for p in scenario.prescriptions if p.status() == "completed")
    conn = Database(db_url).connect()
    with conn.transaction():
        # an altered event, a missing event, and a derived row that no longer follows from the events
        conn.execute(
            "UPDATE events SET args = REPLACE(args, '\"fillsLeft\":0', '\"fillsLeft\":5')"
            " WHERE subject = ? AND name = 'ReceiptConfirmed'",
            (p.id_hex,),
        )
        conn.execute("DELETE FROM events WHERE subject = ? AND name = 'PrescriptionDispatched'", (p.id_hex,))
        conn.execute("UPDATE prescriptions SET status = 'active' WHERE id = ?", (p.id_hex,))
    conn.close()
    problems = verify(db_url, url, sample=None)
    text = "\n".join(problems)
    assert "ReceiptConfirmed differs from the chain in args" in text
    assert "PrescriptionDispatched" in text and "is on chain but not in the index" in text
    assert f"prescription {p.id_hex}: the registry says completed" in text
    assert "prescriptions:" in text and "differ from a replay of the events" in text


def test_two_indexers_on_one_database_count_nothing_twice(client, scenario, db_url, tmp_path):
    whole = str(tmp_path / "whole.sqlite")
    run(client, whole)
    errors: list[BaseException] = []

    def one():
        try:
            run(client, db_url, max_range=8)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert dump(db_url) == dump(whole)


def test_the_index_follows_what_the_regulator_reassigned_and_voided(client, ids, db_url):
    """Issue 11, finding 6, in the regulator's index: custody reassigned from a revoked pharmacy and a
    fill voided in a revoked courier's hands replay to the registry's state, and their trails are rx trail's."""
    now = client.latest_block_time()
    moved = issue_prescription(client, ids["doctor"], demo_document(ids["doctor"].address, now))
    voided = issue_prescription(client, ids["doctor"], demo_document(ids["doctor"].address, now), fills=2)
    for item in (moved, voided):
        redeem_payload(client, ids["pharmacy"], item.payload_text)
    client.dispatch(ids["pharmacy"], voided.rx_id, ids["courier"].address)
    client.revoke(ids["regulator"], ids["pharmacy"].address, "pharmacy")
    client.revoke(ids["regulator"], ids["courier"].address, "courier")
    client.transact(ids["regulator"], "reassignCustody", moved.rx_id, ids["pharmacy2"].address)
    client.transact(ids["regulator"], "voidCustody", voided.rx_id)

    run(client, db_url)

    assert verify(db_url, client.w3.provider.endpoint_uri, sample=None) == []
    with Database(db_url).connect(readonly=True) as conn:
        for item, step in ((moved, "custody reassigned"), (voided, "custody voided")):
            from_chain = [s.as_json() for s in audit.trail(client, item.rx_id)]
            assert step in [s["step"] for s in from_chain]
            assert queries.trail(conn, "0x" + item.rx_id.hex()) == from_chain
