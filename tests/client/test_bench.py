"""The pipelined driver and ``rx bench``: correctness of the bulk path (figures are for the bench
itself to print, never asserted here)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rxchain.cli import main as cli
from rxchain.core.document import validate
from rxchain.chain.pipeline import Pipeline
from rxchain.core.payload import ClaimKey
from rxchain.dev.demo import demo_document
from rxchain.core.status import Status
from rxchain.workflow import issue_prescription


def test_pipeline_sends_many_and_the_outbox_settles_them(client, ids):
    pipeline = Pipeline(client)
    doctor = ids["doctor"]
    now = client.latest_block_time()
    txs = []
    for _ in range(40):
        checked = validate(demo_document(doctor.address, now))
        txs.append(
            pipeline.sign(
                doctor, "issue", [checked.doc_hash, ClaimKey.generate().address, "0x" + "00" * 20, now + 3600, 1]
            )
        )

    result = pipeline.run(txs)

    assert not result.failed
    assert len(result.receipts) == 40
    assert client.outbox.counts() == {"mined": 40}
    nonces = [t.nonce for t in txs]
    assert nonces == list(range(nonces[0], nonces[0] + 40))


def test_sending_again_what_a_block_took_meanwhile_is_no_failure(client, ids):
    # the stalled-stream path: the pipeline sends again what it saw unmined, and a block takes it
    # between its look and the re-send: the node answers "nonce too low" for bytes it already mined
    import pytest

    from rxchain.errors import TransactionFailed

    pipeline = Pipeline(client)
    doctor = ids["doctor"]
    now = client.latest_block_time()
    checked = validate(demo_document(doctor.address, now))
    tx = pipeline.sign(
        doctor, "issue", [checked.doc_hash, ClaimKey.generate().address, "0x" + "00" * 20, now + 3600, 1]
    )
    assert not pipeline.run([tx]).failed
    pipeline._send_again([tx])
    assert client.w3.eth.get_transaction_receipt(tx.tx_hash)["status"] == 1
    with pytest.raises(TransactionFailed, match="nonce too low"):  # a first send with a taken nonce is still refused
        pipeline._send([tx])


def test_pipeline_reports_reverted_transactions(client, ids, document):
    issued = issue_prescription(client, ids["doctor"], document)
    pipeline = Pipeline(client)

    again = pipeline.sign(ids["doctor"], "cancel", [issued.rx_id])
    twice = pipeline.sign(ids["doctor"], "cancel", [issued.rx_id])  # the second cancel must revert on chain
    result = pipeline.run([again, twice])

    assert [t.tx_hash for t in result.failed] == [twice.tx_hash]
    assert client.prescription(issued.rx_id).status is Status.CANCELLED
    assert client.outbox.counts() == {"mined": 2, "failed": 1}
    # why: from the node's trace, or by replay where a node has no debug API; the bench reports it
    from rxchain import errors
    from rxchain.dev.bench import _why

    assert client.explain(again.tx_hash) is None
    for reason in (client.explain(twice.tx_hash), client.explain(twice.tx_hash, use_trace=False)):
        assert isinstance(reason, errors.PrescriptionIsCancelled) and bytes(reason.error_args["id"]) == issued.rx_id
    assert "PrescriptionIsCancelled" in _why(pipeline, twice)


def test_rx_bench_runs_a_small_workload_and_prints_json_last(capsys):
    cli.main(["bench", "-n", "40", "--doctors", "2", "--pharmacies", "2", "--couriers", "2", "--ceiling", "200"])

    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert figures["failed"] == 0
    assert figures["prescriptions"] == 40 and figures["batched"] == 20
    # onboarding (2 pharmacies + 2 couriers + 2 doctors + the ceiling's 1 doctor: 200 fit one sender's
    # in-flight limit), 20 single issues, 1 batch, then 4 steps each
    assert figures["transactions"] == 7 + 20 + 1 + 4 * 40
    assert set(figures) >= {
        "tx_per_s",
        "lifecycles_per_s",
        "issued_per_s_batched",
        "transactions",
        "seconds",
        "peak_rss_mb",
        "failed",
        "node_ceiling_tx_per_s",
        "ratio",
    }
    assert (
        figures["ratio"] > 0 and abs(figures["ratio"] - figures["tx_per_s"] / figures["node_ceiling_tx_per_s"]) < 0.01
    )


def test_pipeline_reads_receipts_per_block_and_per_transaction_where_a_node_lacks_that(client, ids, rpc_url):
    from web3 import Web3

    from rxchain.chain.client import RegistryClient

    from .fronts import NodeFront

    doctor = ids["doctor"]
    for without in ((), ("eth_getBlockReceipts",)):
        front = NodeFront(rpc_url, without=without)
        try:
            via = RegistryClient(Web3(Web3.HTTPProvider(front.url)), client.address, deploy_block=client.deploy_block)
            pipeline = Pipeline(via)
            now = via.latest_block_time()
            txs = [
                pipeline.sign(
                    doctor,
                    "issue",
                    [
                        validate(demo_document(doctor.address, now)).doc_hash,
                        ClaimKey.generate().address,
                        "0x" + "00" * 20,
                        now + 3600,
                        1,
                    ],
                )
                for _ in range(20)
            ]

            result = pipeline.run(txs)

            assert not result.failed and len(result.receipts) == 20 and via.outbox.counts() == {"mined": 20}
            if without:
                assert pipeline.block_receipts is False and "eth_getTransactionReceipt" in front.methods
            else:
                assert pipeline.block_receipts is True and "eth_getBlockReceipts" in front.methods
        finally:
            front.stop()


def test_a_small_in_flight_cap_still_completes_every_lifecycle(capsys):
    """Besu's SEQUENCED pool drops what a sender sends beyond its share, so the bench caps what each
    sender has unmined; with a cap of 3 the streamed run still completes every prescription (the
    final states are read back), and the issue-only run settles its batches window by window."""
    cli.main(
        [
            "bench",
            "-n",
            "30",
            "--batched",
            "0.3",
            "--doctors",
            "1",
            "--pharmacies",
            "1",
            "--couriers",
            "1",
            "--ceiling",
            "20",
            "--max-in-flight",
            "3",
        ]
    )

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["failed"] == 0 and figures["max_in_flight_per_sender"] == 3 and figures["prescriptions"] == 30
    capsys.readouterr()

    cli.main(["bench", "--issue-only", "-n", "1300", "--doctors", "1", "--ceiling", "20", "--max-in-flight", "2"])

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["failed"] == 0 and figures["batched"] == 1300


def test_worker_processes_prepare_the_same_batches_as_one_process():
    """--issue-only prepares in worker processes; the workload must not depend on how many: the
    same ids and Merkle roots, in the same order, and every root is the registry's for its ids."""
    from rxchain.core.batch import merkle_root
    from rxchain.dev.bench import BATCH_SIZE, _prepared

    doctors = ["0x" + f"{i:040x}" for i in (1, 2)]
    chunks = [(0, 600), (600, 600), (1200, 300)]

    alone = [batch for batches in _prepared(doctors, chunks, 1_800_000_000, "seed", 0) for batch in batches]
    pooled = [batch for batches in _prepared(doctors, chunks, 1_800_000_000, "seed", 2) for batch in batches]

    assert alone == pooled
    assert [len(ids) for ids, _ in alone] == [256, 256, 88, 256, 256, 88, 256, 44]
    assert all(root == merkle_root(ids) for ids, root in alone)
    assert len({i for ids, _ in alone for i in ids}) == 1500  # every prescription its own id
    other_seed = [batch for batches in _prepared(doctors, chunks[:1], 1_800_000_000, "other", 0) for batch in batches]
    assert other_seed[0] != alone[0] and len(alone[0][0]) == BATCH_SIZE


@settings(max_examples=300, deadline=None)
@given(
    nonce=st.integers(0, 2**64 - 1),
    gas=st.integers(0, 30_000_000),
    to=st.binary(min_size=20, max_size=20),
    data=st.one_of(st.binary(max_size=60), st.binary(min_size=50, max_size=70_000)),
    chain_id=st.integers(1, 2**32),
)
def test_the_pipelines_transaction_encoding_is_rlps(nonce, gas, to, data, chain_id):
    """The bulk path writes a legacy transaction's RLP itself (the rlp package infers a serializer per
    item, a third of the signing time): the bytes must be rlp's, and eth-account must recover the
    signer from them."""
    import coincurve
    import rlp
    from eth_account import Account

    from rxchain.chain.pipeline import rlp_list, sign_legacy

    items = [nonce, 0, gas, to, 0, data, chain_id, 0, 0]
    assert rlp_list(items) == rlp.encode(items)
    key = coincurve.PrivateKey(bytes(range(1, 33)))
    raw, tx_hash = sign_legacy(key, chain_id, nonce, gas, to, data)
    assert Account.recover_transaction(raw) == Account.from_key(key.secret).address
    assert (
        rlp.decode(raw)[:6] == rlp.decode(rlp.encode(items))[:6]
    )  # what was signed: nonce, price 0, gas, to, value 0, data


def test_every_bulk_path_keeps_each_sender_within_a_besu_pools_nonce_limit(client, ids, rpc_url):
    """Through a front that refuses, as Besu's pool does, a nonce too far ahead of its sender's
    confirmed one (here 8), with anvil mining on a 1 s interval so that sent transactions wait in its
    pool: the pipeline's rounds and the node-ceiling run send 3x the limit from one sender and every
    transaction is mined; a pipeline allowed more than the node keeps is refused (the control)."""
    import pytest
    from web3 import Web3

    from rxchain.chain.client import RegistryClient
    from rxchain.dev.bench import node_ceiling
    from rxchain.errors import TransactionFailed

    from .fronts import NodeFront

    limit, doctor = 8, ids["doctor"]
    front = NodeFront(rpc_url, max_future_nonces=limit)
    node = client.w3.provider
    node.make_request("evm_setAutomine", [False])
    node.make_request("evm_setIntervalMining", [1])
    try:
        via = RegistryClient(Web3(Web3.HTTPProvider(front.url)), client.address, deploy_block=client.deploy_block)
        now = via.latest_block_time()

        def issues(pipeline, n):
            return [
                pipeline.sign(
                    doctor,
                    "issue",
                    [
                        validate(demo_document(doctor.address, now)).doc_hash,
                        ClaimKey.generate().address,
                        "0x" + "00" * 20,
                        now + 3600,
                        1,
                    ],
                )
                for _ in range(n)
            ]

        capped = Pipeline(via, max_in_flight=limit)
        result = capped.run(issues(capped, 3 * limit))
        assert not result.failed and len(result.receipts) == 3 * limit
        mined, _seconds = node_ceiling(capped, [doctor], now, count=3 * limit)
        assert mined == 3 * limit
        assert front.refused_sends == 0 and 0 < front.furthest_admitted < limit  # ahead, never past the limit

        greedy = Pipeline(via, max_in_flight=3 * limit)
        with pytest.raises(TransactionFailed, match="too distant from current sender nonce"):
            greedy.run(issues(greedy, 3 * limit))
        assert front.refused_sends >= 1
    finally:
        node.make_request("evm_setIntervalMining", [0])
        node.make_request("evm_mine", [])  # what the refused run left in anvil's pool, before the chain is reverted
        node.make_request("evm_setAutomine", [True])
        front.stop()


def test_a_step_reverting_mid_stream_is_named_with_its_prescription_and_the_rest_complete(client, ids):
    """The streamed scheduler: one prescription's redeem reverts (its consent is signed by a key the
    prescription does not name) after its issue was mined; the run names that prescription, the step
    and the registry's reason, and every other prescription still goes through to Completed."""
    import os

    import pytest
    from rich.progress import Progress

    from rxchain.dev.bench import BenchFailed, _prepare, _Stream

    staff = {"doctor": [ids["doctor"]], "pharmacy": [ids["pharmacy"]], "courier": [ids["courier"]]}
    now = client.latest_block_time()
    workload = _prepare(staff["doctor"], 6, now, "a revert mid-stream")
    spoiled = workload[3]
    spoiled.claim_key = os.urandom(32)
    stream = _Stream(client, Pipeline(client), staff, ids["hospital"], now, max_in_flight=50)

    with Progress(disable=True) as progress, pytest.raises(BenchFailed) as failed:
        stream.run(workload, [], progress)

    message = str(failed.value)
    assert message.startswith("1 steps reverted, the rest went on"), message
    assert f"prescription 0x{spoiled.rx_id.hex()} at redeem: " in message
    reason = message.split(" at redeem: ", 1)[1]
    assert reason[:1].isupper() and "unknown" not in reason.lower(), reason  # the registry's named error
    states = [client.prescription(p.rx_id).status for p in workload]
    assert states[3] is Status.ACTIVE
    assert [s for i, s in enumerate(states) if i != 3] == [Status.COMPLETED] * 5


# ------------------------------------------------------------------------------------- boxes


def test_rx_bench_with_boxes_spends_every_box_and_records_every_fill(capsys):
    """`rx bench --boxes 3`: each fill records 3 boxes in one dispense between redeem and dispatch; the
    run's own check read every box spent and every fill's record (pharmacy, count) back, so a run that
    completes has them all; the figures count them."""
    cli.main(
        [
            "bench",
            "-n",
            "24",
            "--doctors",
            "2",
            "--pharmacies",
            "2",
            "--couriers",
            "2",
            "--ceiling",
            "100",
            "--boxes",
            "3",
        ]
    )

    out, err = capsys.readouterr()
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["failed"] == 0 and figures["prescriptions"] == 24
    assert figures["boxes_per_fill"] == 3 and figures["boxes_dispensed"] == 72 and figures["box_transactions"] == 24
    assert figures["lots"] == 1 and figures["boxes_per_s"] > 0 and figures["dispense_gas_mean"] > 0
    # onboarding (2 pharmacies + 2 couriers + 1 manufacturer + 2 doctors + the ceiling's doctor), one
    # lot, 12 single issues, 1 batch, then redeem, boxes, dispatch, deliver, confirm for each
    assert figures["transactions"] == 8 + 1 + 12 + 1 + 5 * 24
    assert "verify boxes" in err and "boxes dispensed" in err


def test_the_box_workload_is_the_same_for_the_same_seed():
    """Two plans from one seed: the same lots, roots, nullifiers, indexes and multiproofs (so two runs
    dispense the same boxes); another seed gives other boxes. A fill's boxes are consecutive in one lot
    and lots hold whole fills."""
    from rxchain.core import boxes as core
    from rxchain.dev.bench import plan_boxes

    first = plan_boxes("same seed", 50, 7, lot_size=100, expires_at=1)
    again = plan_boxes("same seed", 50, 7, lot_size=100, expires_at=2)  # expiry is not part of the boxes
    other = plan_boxes("other seed", 50, 7, lot_size=100, expires_at=1)

    assert [lot.root for lot in first.lots] == [lot.root for lot in again.lots]
    assert first.fills == again.fills and first.nullifiers == again.nullifiers
    assert not {lot.root for lot in first.lots} & {lot.root for lot in other.lots}
    assert [lot.count for lot in first.lots] == [98, 98, 98, 56]  # 14 whole fills of 7 per lot of at most 100
    assert first.boxes == 350
    for lot_root, indexes, nullifiers, proof in first.fills:
        lot = next(lot for lot in first.lots if lot.root == lot_root)
        assert indexes == list(range(indexes[0], indexes[0] + 7))
        assert [lot.index_of(n) for n in nullifiers] == indexes
        assert proof == lot.multiproof(indexes)
    assert len({n for _, _, nullifiers, _ in first.fills for n in nullifiers}) == 350  # no box twice
    assert core.MAX_LOT == 65_536


def test_boxes_out_of_range_are_refused_by_name_before_a_node_starts(capsys):
    import pytest

    from rxchain.dev.bench import BadBoxesPerFill, check_boxes_per_fill

    for bad in (-1, 256):
        with pytest.raises(BadBoxesPerFill, match="1 to 255 boxes"):
            check_boxes_per_fill(bad)
    with pytest.raises(BadBoxesPerFill, match="--issue-only"):
        check_boxes_per_fill(3, issue_only=True)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "-n", "10", "--boxes", "300"])
    assert exit_.value.code == 4
    assert "--boxes 300: a fill records 1 to 255 boxes" in capsys.readouterr().err


def test_a_box_dispensed_twice_is_named_and_verify_names_the_fill_left_without_boxes(client, ids, deployment):
    """The streamed scheduler with boxes: prescription 2's fill names a box that prescription 1's fill
    also names (index 1 of the lot: fills of 2 boxes, the second overlapping the first). The chain
    refuses the later dispense; the run names that prescription, the step and BoxAlreadyDispensed,
    the others go through to Completed; and the check after the run names the fill left without
    its record and the boxes no fill spent."""
    import pytest
    from rich.progress import Progress

    from rxchain.dev.bench import (
        BenchFailed,
        _boxes_contract,
        _prepare,
        _Stream,
        plan_boxes,
        register_lots,
        verify_boxes,
    )

    staff = {"doctor": [ids["doctor"]], "pharmacy": [ids["pharmacy"]], "courier": [ids["courier"]]}
    pipeline = Pipeline(client)
    contract = _boxes_contract(client, pipeline, deployment.boxes)
    now = client.latest_block_time()
    workload = _prepare(staff["doctor"], 4, now, "a box twice")
    plan = plan_boxes("a box twice", 4, 2, expires_at=now + 86_400)
    for p, fill in zip(workload, plan.fills):
        p.boxes = fill
    lot = plan.lots[0]
    twice = [1, 2]  # prescription 1's second box and prescription 2's first
    workload[1].boxes = (lot.root, twice, [plan.nullifiers[0][i] for i in twice], lot.multiproof(twice))
    stream = _Stream(client, pipeline, staff, ids["hospital"], now, max_in_flight=50, boxes_contract=contract)

    with Progress(disable=True) as progress:
        register_lots(pipeline, ids["manufacturer"], plan, contract, progress)
        with pytest.raises(BenchFailed) as failed:
            stream.run(workload, [], progress)

        message = str(failed.value)
        assert message.startswith("1 steps reverted, the rest went on"), message
        assert f"prescription 0x{workload[1].rx_id.hex()} at boxes: " in message
        assert "BoxAlreadyDispensed" in message.split(" at boxes: ", 1)[1], message
        states = [client.prescription(p.rx_id).status for p in workload]
        assert states == [Status.COMPLETED, Status.DISPENSED, Status.COMPLETED, Status.COMPLETED]
        assert stream.boxes_dispensed == 6 and stream.box_transactions == 3

        pharmacies = {p.rx_id: ids["pharmacy"].address for p in workload}
        with pytest.raises(BenchFailed) as unverified:
            verify_boxes(pipeline, contract, workload, pharmacies, progress)
    message = str(unverified.value)
    assert message.startswith("1 fills without their right box record"), message
    assert f"prescription 0x{workload[1].rx_id.hex()}: no boxes recorded" in message
    # of the boxes prescription 2 named (1, 2), box 1 was spent by prescription 1 and box 2 by no one
    assert ", 1 boxes still unsold (first: lot 0x" in message and "box 2 (prescription" in message, message


@settings(max_examples=100, deadline=None)
@given(
    shape=st.lists(
        st.tuples(st.integers(1, 20), st.integers(0, 17)),  # per lot: boxes, proof length
        min_size=1,
        max_size=4,
    ),
    rx_id=st.binary(min_size=32, max_size=32),
)
def test_the_dispense_calldata_written_directly_is_the_abis(shape, rx_id):
    """The bench writes dispense()'s calldata itself (eth_abi takes ~660 µs a fill of 5): the bytes
    must be those of the encoder built from DrugBoxes' ABI, selector included, with one lot or several."""
    import random

    from rxchain.chain.deployment import BOXES_CONTRACT, load_abi
    from rxchain.chain.pipeline import _function_table
    from rxchain.dev.bench import dispense_calldata

    draw = random.Random(repr(shape))
    lots = [
        (
            draw.randbytes(32),
            sorted(draw.sample(range(65_536), boxes)),
            [draw.randbytes(32) for _ in range(boxes)],
            [draw.randbytes(32) for _ in range(proof)],
        )
        for boxes, proof in shape
    ]
    selector, encode = _function_table(load_abi(BOXES_CONTRACT))["dispense"]

    assert dispense_calldata(rx_id, lots) == selector + encode([rx_id, lots])
