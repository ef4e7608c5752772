"""Races: many parties, each with a valid claim, act on the same prescriptions IN THE SAME BLOCK.

Mining is switched off while the competitors send (each pharmacy from its own thread, with its own
client, outbox and pipeline), then one block is mined with everything in it. Exactly one redemption
succeeds per fill; every other one fails on chain and the client names the reason — the same
reason the EVM itself gave (read from the node's trace of that transaction).

The default run races over 200 prescriptions; ``-m slow`` over 1,000.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from rxchain import errors
from rxchain.chain.client import RegistryClient
from rxchain.chain.pipeline import Pipeline
from rxchain.chain.outbox import Outbox
from rxchain.core.status import Status

from .chainkit import explain_mined_failure, read_registry, revert_reason_on_chain
from .conftest import report
from .workload import Planned, plan, plan_batch

FAR = 10**10  # a signature deadline no test reaches


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def block_room(rpc):
    """Room in one block for every competitor (gas is free; the limit only bounds a block); the
    node's own limit is restored afterwards."""
    limit = int(rpc.call("eth_getBlockByNumber", "latest", False)["gasLimit"], 16)
    rpc.block_gas_limit(4_000_000_000)
    yield
    rpc.automine(True)
    rpc.block_gas_limit(limit)


@contextmanager
def one_block(rpc):
    """Everything sent inside lands in the same block, mined on the way out."""
    rpc.automine(False)
    try:
        yield
        rpc.mine()
    finally:
        rpc.automine(True)


@pytest.fixture
def pharmacies(client, regulator, pharmacy, other_pharmacy, rpc):
    """Four pharmacies in good standing (two more than the consortium's own)."""
    extra = [Account.from_key(keccak(text=f"rxchain race pharmacy {i}")) for i in range(2)]
    until = rpc.latest_time() + 365 * 86400
    for account in extra:
        client.admit(regulator, account.address, "pharmacy", until)
    return [pharmacy, other_pharmacy, *extra]


class Party:
    """One competitor: its own node connection, client, outbox and pipeline (a separate system)."""

    def __init__(self, account, rpc_url: str, registry: str, deploy_block: int, outbox_path):
        self.account = account
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 120}))
        self.client = RegistryClient(w3, registry, deploy_block=deploy_block, outbox=Outbox(outbox_path))
        self.pipeline = Pipeline(self.client)
        self.sent = []

    def send(self, calls: list[tuple[str, list]], tags: list) -> None:
        signed = [self.pipeline.sign(self.account, function, args) for function, args in calls]
        self.pipeline.submit(signed)
        self.sent += list(zip(signed, tags))

    def outcomes(self):
        """(tag, receipt, signed tx) for every transaction sent since the last call, once mined."""
        sent, self.sent = self.sent, []
        result = self.pipeline.collect([tx for tx, _ in sent])
        self.last = [(tag, result.receipts[tx.tx_hash], tx) for tx, tag in sent]
        return self.last


def parties(accounts, rpc_url, deployment, tmp_path, label):
    return [
        Party(a, rpc_url, deployment.registry, deployment.deploy_block, tmp_path / f"{label}-{i}.sqlite")
        for i, a in enumerate(accounts)
    ]


def issue_all(
    client, doctor, hospital, singles: list[Planned], batch_root, batched: list[Planned], expires_at: int
) -> None:
    pipeline = Pipeline(client)
    txs = [pipeline.sign(doctor, "issue", p.issue_args(expires_at)) for p in singles]
    if batched:
        txs.append(pipeline.sign(hospital, "issueBatch", [[p.rx_id for p in batched], expires_at, batched[0].fills]))
    result = pipeline.run(txs)
    assert not result.failed, f"{len(result.failed)} issues failed"


def race_redemptions(rpc, racers: list[Party], prescriptions: list[Planned], fills_left: dict, opened: set, seed: int):
    """Every racer redeems every prescription (each in its own order, from its own thread) in one block.
    Returns {rx_id: [(pharmacy address, receipt, tx)]}."""
    domain = racers[0].client.domain

    def run(k: int, party: Party) -> None:
        order = list(prescriptions)
        random.Random(seed * 31 + k).shuffle(order)
        calls = [
            p.redeem_call(domain, party.account.address, fills_left[p.rx_id], FAR, opened=p.rx_id in opened)
            for p in order
        ]
        party.send(calls, [p.rx_id for p in order])

    with one_block(rpc), ThreadPoolExecutor(len(racers)) as pool:
        for future in [pool.submit(run, k, party) for k, party in enumerate(racers)]:
            future.result()
    entrants = defaultdict(list)
    for party in racers:
        for rx_id, receipt, tx in party.outcomes():
            entrants[rx_id].append((party, receipt, tx))
    return entrants


def winners_and_losers(entrants: dict) -> tuple[dict, list]:
    winners, losers = {}, []
    for rx_id, runs in entrants.items():
        blocks = {_int(receipt["blockNumber"]) for _, receipt, _ in runs}
        assert len(blocks) == 1, f"the competitors for 0x{rx_id.hex()[:12]} landed in blocks {blocks}, not one"
        won = [(party, tx) for party, receipt, tx in runs if _int(receipt["status"]) == 1]
        assert len(won) == 1, f"0x{rx_id.hex()[:12]}: {len(won)} of {len(runs)} redemptions of one fill succeeded"
        winners[rx_id] = won[0][0]
        losers += [(rx_id, party, tx) for party, receipt, tx in runs if _int(receipt["status"]) != 1]
    return winners, losers


def explained(losers: list, rpc, expected_name: str, *, traced: int = 25) -> None:
    """Each loser's client names ``expected_name`` for exactly that prescription; for a sample the
    EVM's own revert (the node's trace) says the same."""
    wrong = []
    for k, (rx_id, party, tx) in enumerate(losers):
        reason = explain_mined_failure(party.client, tx.tx_hash, tx.function)
        if not (isinstance(reason, errors.BY_NAME[expected_name]) and bytes(reason.error_args["id"]) == rx_id):
            wrong.append(f"{tx.function} of 0x{rx_id.hex()[:12]} by {party.account.address}: {reason!r}")
        if k < traced:
            actual = revert_reason_on_chain(rpc, party.client, tx.tx_hash)
            assert actual.name == expected_name, f"the EVM reverted {tx.tx_hash} with {actual!r}"
            by_trace = party.client.explain(tx.tx_hash)  # the client's first choice: the node's trace
            assert (by_trace.name, by_trace.error_args) == (actual.name, actual.error_args), by_trace
    assert not wrong, f"{len(wrong)} losers explained wrongly, e.g. {wrong[:3]}"


def _int(value) -> int:
    """A receipt field, whether the pipeline kept it as a number or as JSON-RPC hex."""
    return value if isinstance(value, int) else int(value, 16)


# --------------------------------------------------------------------------------------- tests


def redemption_race(n, client, deployment, rpc, rpc_url, tmp_path, doctor, hospital, pharmacies, courier):
    started = time.perf_counter()
    now = rpc.latest_time()
    singles = plan("race single", doctor.address, n // 2, fills=2)
    root, batched = plan_batch("race batched", doctor.address, n - n // 2, fills=1)
    issue_all(client, doctor, hospital, singles, root, batched, now + 86400)
    everything = singles + batched
    racers = parties(pharmacies, rpc_url, deployment, tmp_path, "pharmacy")

    # first fill: every pharmacy races for every prescription
    fills_left = {p.rx_id: p.fills for p in everything}
    entrants = race_redemptions(rpc, racers, everything, fills_left, set(), seed=1)
    winners, losers = winners_and_losers(entrants)
    assert len(winners) == n and len(losers) == n * (len(racers) - 1)
    chain = read_registry(rpc, client, [p.rx_id for p in everything])
    for p in everything:
        custodian, _, _, status, left = chain.prescriptions[p.rx_id]
        assert (status, custodian, left) == (Status.DISPENSED, winners[p.rx_id].account.address, p.fills - 1)
    explained(losers, rpc, "AlreadyRedeemed")
    raced = time.perf_counter() - started

    # the winners hand over the two-fill prescriptions with the patient's receipt: Refillable again
    by_winner = defaultdict(list)
    for p in singles:
        by_winner[winners[p.rx_id]].append(p)
    for party, held in by_winner.items():
        txs = [
            party.pipeline.sign(
                party.account,
                "deliverWithReceipt",
                p.receipt_args(party.client.domain, party.account.address, p.fills - 1, FAR),
            )
            for p in held
        ]
        assert not party.pipeline.run(txs).failed

    # second fill: the race again, exactly one more redemption each
    fills_left = {p.rx_id: p.fills - 1 for p in singles}
    entrants = race_redemptions(rpc, racers, singles, fills_left, set(), seed=2)
    second, losers = winners_and_losers(entrants)
    chain = read_registry(rpc, client, [p.rx_id for p in singles])
    for p in singles:
        custodian, _, _, status, left = chain.prescriptions[p.rx_id]
        assert (status, custodian, left) == (Status.DISPENSED, second[p.rx_id].account.address, 0)
    explained(losers, rpc, "AlreadyRedeemed")
    report(
        f"races: {len(pharmacies)} pharmacies x {n} prescriptions in one block: {n} won, {n * (len(pharmacies) - 1)} "
        f"lost as AlreadyRedeemed; refill race over {len(singles)}: one winner each ({raced:.1f} s first round, "
        f"{time.perf_counter() - started:.1f} s in all)"
    )


def test_only_one_pharmacy_redeems_each_fill_when_all_race_in_one_block(
    client, deployment, rpc, rpc_url, tmp_path, doctor, hospital, pharmacies, courier, block_room
):
    redemption_race(200, client, deployment, rpc, rpc_url, tmp_path, doctor, hospital, pharmacies, courier)


@pytest.mark.slow
def test_only_one_pharmacy_redeems_each_fill_when_all_race_in_one_block_at_volume(
    client, deployment, rpc, rpc_url, tmp_path, doctor, hospital, pharmacies, courier, block_room
):
    redemption_race(1000, client, deployment, rpc, rpc_url, tmp_path, doctor, hospital, pharmacies, courier)


def dispatched_prescriptions(client, rpc, doctor, pharmacy, courier, n: int, tag: str) -> list[Planned]:
    now = rpc.latest_time()
    planned = plan(tag, doctor.address, n)
    pipeline = Pipeline(client)
    assert not pipeline.run([pipeline.sign(doctor, "issue", p.issue_args(now + 86400)) for p in planned]).failed
    txs = [pipeline.sign(pharmacy, *p.redeem_call(client.domain, pharmacy.address, 1, FAR)) for p in planned]
    assert not pipeline.run(txs).failed
    assert not pipeline.run([pipeline.sign(pharmacy, "dispatch", [p.rx_id, courier.address]) for p in planned]).failed
    return planned


def courier_race(client, deployment, rpc, rpc_url, tmp_path, doctor, pharmacy, courier, other_courier, n: int = 100):
    """``n`` prescriptions dispatched to ``courier``; in one block the other courier tries to deliver
    each (reaching the node first), then the custodian courier does. Returns the other courier's
    failed attempts."""
    planned = dispatched_prescriptions(client, rpc, doctor, pharmacy, courier, n, "courier race")
    custodian, intruder = parties([courier, other_courier], rpc_url, deployment, tmp_path, "courier")
    with one_block(rpc):
        intruder.send([("deliver", [p.rx_id]) for p in planned], [p.rx_id for p in planned])
        custodian.send([("deliver", [p.rx_id]) for p in planned], [p.rx_id for p in planned])
    won = {rx_id for rx_id, receipt, _ in custodian.outcomes() if _int(receipt["status"]) == 1}
    lost = [(rx_id, intruder, tx) for rx_id, receipt, tx in intruder.outcomes() if _int(receipt["status"]) != 1]
    assert won == {p.rx_id for p in planned} and len(lost) == n
    chain = read_registry(rpc, client, [p.rx_id for p in planned])
    assert {view[3] for view in chain.prescriptions.values()} == {Status.DELIVERED}
    assert {view[0] for view in chain.prescriptions.values()} == {courier.address}
    return lost


def test_only_the_custodian_courier_delivers_when_two_couriers_race_in_one_block(
    client, deployment, rpc, rpc_url, tmp_path, doctor, pharmacy, courier, other_courier, block_room
):
    lost = courier_race(client, deployment, rpc, rpc_url, tmp_path, doctor, pharmacy, courier, other_courier)

    for rx_id, party, tx in lost:  # the EVM refused each: it ran before the custodian's delivery
        actual = revert_reason_on_chain(rpc, party.client, tx.tx_hash)
        assert isinstance(actual, errors.NotCustodian) and bytes(actual.error_args["id"]) == rx_id, actual
    report(
        f"races: two couriers x {len(lost)} prescriptions in one block"
        ": the custodian delivered all; the other got NotCustodian"
    )


def test_client_names_not_custodian_for_a_courier_that_lost_a_delivery_race(
    client, deployment, rpc, rpc_url, tmp_path, doctor, pharmacy, courier, other_courier, block_room
):
    """The client explains a mined failure by replaying it; the reason must be the one the EVM gave
    where the transaction stood in its block (NotCustodian), not what the block's end state would
    say after the custodian's delivery (WrongStatus: Delivered)."""
    lost = courier_race(client, deployment, rpc, rpc_url, tmp_path, doctor, pharmacy, courier, other_courier, n=20)

    explained(lost, rpc, "NotCustodian")


def test_exactly_one_of_cancel_and_redeem_wins_when_they_race_in_one_block(
    client, deployment, rpc, rpc_url, tmp_path, doctor, hospital, regulator, pharmacy, block_room
):
    n = 100
    now = rpc.latest_time()
    singles = plan("cancel race", doctor.address, n)
    root, batched = plan_batch("cancel race batched", doctor.address, n)
    issue_all(client, doctor, hospital, singles, root, batched, now + 86400)
    rng = random.Random(7)
    order = {p.rx_id: rng.choice(["cancel first", "redeem first"]) for p in singles + batched}
    canceller = parties([doctor, hospital], rpc_url, deployment, tmp_path, "canceller")
    doctor_party, hospital_party = canceller
    (redeemer,) = parties([pharmacy], rpc_url, deployment, tmp_path, "redeemer")
    with one_block(rpc):  # per prescription, whichever reaches the node first is mined first
        for p in singles + batched:
            cancel = (
                (doctor_party, "cancel", [p.rx_id])
                if p.root is None
                else (
                    hospital_party,
                    "cancelBatched",
                    [p.doctor, p.doc_hash, p.pharmacy, p.claim_address, p.root, list(p.proof)],
                )
            )
            redeem = (redeemer, *p.redeem_call(client.domain, pharmacy.address, 1, FAR))
            for party, function, args in [cancel, redeem] if order[p.rx_id] == "cancel first" else [redeem, cancel]:
                party.send([(function, args)], [p.rx_id])
    outcomes = defaultdict(dict)
    for party in (doctor_party, hospital_party, redeemer):
        for rx_id, receipt, tx in party.outcomes():
            kind = "redeem" if party is redeemer else "cancel"
            outcomes[rx_id][kind] = (party, receipt, tx)
    chain = read_registry(rpc, client, [p.rx_id for p in singles + batched])
    lost_redeems, lost_cancels = [], []
    for rx_id, runs in outcomes.items():
        ok = {kind: _int(receipt["status"]) == 1 for kind, (_, receipt, _) in runs.items()}
        assert sum(ok.values()) == 1, f"0x{rx_id.hex()[:12]}: {ok}"
        blocks = {_int(receipt["blockNumber"]) for _, receipt, _ in runs.values()}
        assert len(blocks) == 1
        winner = "cancel" if ok["cancel"] else "redeem"
        assert winner == order[rx_id].split()[0], f"0x{rx_id.hex()[:12]}: the {winner} won though the other came first"
        assert chain.prescriptions[rx_id][3] is (Status.CANCELLED if winner == "cancel" else Status.DISPENSED)
        party, _, tx = runs["redeem" if winner == "cancel" else "cancel"]
        (lost_redeems if winner == "cancel" else lost_cancels).append((rx_id, party, tx))
    report(
        f"races: cancel vs redeem x {2 * n} in one block: {len(lost_cancels)} redeemed, {len(lost_redeems)} cancelled"
    )
    explained(lost_redeems, rpc, "PrescriptionIsCancelled")
    explained(lost_cancels, rpc, "AlreadyRedeemed")


def test_a_withdrawn_batch_stops_exactly_the_redemptions_mined_after_it_in_the_same_block(
    client, deployment, rpc, rpc_url, tmp_path, doctor, hospital, pharmacy, block_room
):
    n = 60
    root, batched = plan_batch("batch withdrawal race", doctor.address, n)
    issue_all(client, doctor, hospital, [], root, batched, rpc.latest_time() + 86400)
    (redeemer,) = parties([pharmacy], rpc_url, deployment, tmp_path, "redeemer")
    (withdrawer,) = parties([hospital], rpc_url, deployment, tmp_path, "hospital")
    first, rest = batched[: n // 3], batched[n // 3 :]
    with one_block(rpc):
        redeemer.send([p.redeem_call(client.domain, pharmacy.address, 1, FAR) for p in first], [p.rx_id for p in first])
        withdrawer.send([("cancelBatch", [hospital.address, root])], [root])
        redeemer.send([p.redeem_call(client.domain, pharmacy.address, 1, FAR) for p in rest], [p.rx_id for p in rest])
    outcomes = redeemer.outcomes()
    results = {rx_id: _int(receipt["status"]) == 1 for rx_id, receipt, _ in outcomes}
    assert [results[p.rx_id] for p in first] == [True] * len(first)
    assert [results[p.rx_id] for p in rest] == [False] * len(rest)
    assert client.batch(hospital.address, root)["cancelled"] is True
    lost = [(rx_id, redeemer, tx) for rx_id, receipt, tx in outcomes if _int(receipt["status"]) != 1]
    wrong = [
        r
        for r in (explain_mined_failure(redeemer.client, tx.tx_hash) for _, _, tx in lost)
        if not isinstance(r, errors.BatchIsCancelled)
    ]
    assert not wrong, wrong[:3]


def test_client_names_not_designated_pharmacy_for_a_pharmacy_that_lost_the_race_for_anothers_prescription(
    client, deployment, rpc, rpc_url, tmp_path, doctor, pharmacy, other_pharmacy, block_room
):
    """Prescriptions designated for ``pharmacy``: in one block the other pharmacy tries to redeem
    each first (with a valid claim signature for itself), then the designated one does. The EVM
    refuses the other with NotDesignatedPharmacy where its transaction stood; the client must name
    that reason, not what the block's end state would say (AlreadyRedeemed)."""
    n = 20
    planned = plan("designated race", doctor.address, n, pharmacy=pharmacy.address)
    pipeline = Pipeline(client)
    assert not pipeline.run(
        [pipeline.sign(doctor, "issue", p.issue_args(rpc.latest_time() + 86400)) for p in planned]
    ).failed
    designated, other = parties([pharmacy, other_pharmacy], rpc_url, deployment, tmp_path, "designated")
    with one_block(rpc):
        other.send(
            [p.redeem_call(client.domain, other_pharmacy.address, 1, FAR) for p in planned], [p.rx_id for p in planned]
        )
        designated.send(
            [p.redeem_call(client.domain, pharmacy.address, 1, FAR) for p in planned], [p.rx_id for p in planned]
        )
    assert all(_int(receipt["status"]) == 1 for _, receipt, _ in designated.outcomes())
    lost = [(rx_id, other, tx) for rx_id, receipt, tx in other.outcomes() if _int(receipt["status"]) != 1]
    assert len(lost) == n

    explained(lost, rpc, "NotDesignatedPharmacy", traced=n)


def test_four_pharmacies_racing_for_the_same_box_in_one_block(
    client, deployment, rpc, rpc_url, tmp_path, ids, pharmacies, block_room
):
    """Issue 14: four pharmacies, each holding its own dispensed prescription and the same box's code and
    scratched secret, each with its own client and outbox, record the box from their own threads; one
    block. Exactly one wins; each loser's client names BoxAlreadyDispensed, as the EVM itself said."""
    from rxchain.chain.boxes import BoxesClient
    from rxchain.core import boxes as core
    from rxchain.dev.demo import demo_document
    from rxchain.workflow import issue_prescription, redeem_payload

    boxes = BoxesClient.for_deployment(client, deployment)
    made = [core.Box(i, f"{87_000_000_000_000_000_000 + i:020d}", core.new_secret()) for i in range(6)]
    lot = core.Lot.from_boxes(made, rpc.latest_time() + 365 * 86_400)
    boxes.register_lot(ids["manufacturer"], lot)
    held = []
    for pharmacy in pharmacies:
        issued = issue_prescription(client, ids["doctor"], demo_document(ids["doctor"].address, rpc.latest_time()))
        redeem_payload(client, pharmacy, issued.payload_text)
        held.append(issued.rx_id)
    racers = []
    for i, pharmacy in enumerate(pharmacies):
        own = RegistryClient(
            Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 120})),
            deployment.registry,
            deploy_block=deployment.deploy_block,
            outbox=Outbox(tmp_path / f"box-racer-{i}.sqlite"),
        )
        racers.append(BoxesClient.for_deployment(own, deployment))
    box = made[4]

    def run(k: int):
        try:
            return racers[k].dispense(pharmacies[k], held[k], [(box.code, box.secret)], [lot])[0]
        except errors.RxError as exc:
            return exc

    rpc.automine(False)
    try:
        with ThreadPoolExecutor(len(racers)) as pool:
            futures = [pool.submit(run, k) for k in range(len(racers))]
            deadline = time.monotonic() + 60
            while int(rpc.call("txpool_status")["pending"], 16) < len(racers):
                assert time.monotonic() < deadline, "the four dispenses never reached the node's pool"
                time.sleep(0.05)
            rpc.mine()
            outcomes = [f.result() for f in futures]
    finally:
        rpc.automine(True)
    won = [o for o in outcomes if not isinstance(o, Exception)]
    lost = [o for o in outcomes if isinstance(o, Exception)]
    assert len(won) == 1 and len(lost) == 3, outcomes
    assert {o.block_number for o in won} == {rpc.block_number()}
    for exc in lost:
        assert isinstance(exc, errors.BoxAlreadyDispensed), repr(exc)
        assert (bytes(exc.error_args["lot"]), exc.error_args["index"]) == (lot.root, 4)
    winner = outcomes.index(won[0])
    assert boxes.fill(held[winner], 0).pharmacy == pharmacies[winner].address
    assert [boxes.fill(rx_id, 0).boxes for rx_id in held].count(1) == 1
    report(f"box race: 4 pharmacies, one box, one block: pharmacy {winner} won, 3 refused BoxAlreadyDispensed")
