"""``rx bench``: a scripted hospital-scale workload through the pipelined driver, with figures.

First the node's own ceiling on the same node: pre-signed transactions blasted at it while the client
does nothing else. Then N prescriptions — part issued one by one by several doctors, part in batches
of 256 by their hospital — are redeemed by several pharmacies, dispatched to several couriers,
delivered and their receipts confirmed: five transactions per prescription (a batch counts once),
STREAMED: each prescription's next step is sent as soon as its previous one is mined, receipts read
per block, at most ``max_in_flight`` unmined transactions per sender (what Besu's pool keeps).
With ``--boxes K`` each fill also records K drug boxes in DrugBoxes (lots registered by a
manufacturer in set-up; one ``dispense`` by the pharmacy between redeem and dispatch, in the same
stream), and every box and fill record is read back at the end too.
Every receipt is checked and every prescription's final state is read back at the end. The
figures: transactions and lifecycles per second, the node's ceiling and the ratio between them (the
figure that compares across machines), peak memory, failures; ``--issue-only`` gives the batched
issuance rate.

Documents are made from one validated template per doctor, varied only in the fields that make each
unique (salt and patient pseudonym) and hashed in full, as a hospital system would prepare them
through the day; their preparation is timed apart from the chain work.
"""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import itertools
import multiprocessing
import os
import random
import resource
import time
from dataclasses import dataclass, field

import coincurve
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from web3 import Web3

from rxchain.core import boxes as box_core
from rxchain.core.batch import merkle_proofs, merkle_root
from rxchain.core.hashing import keccak256
from rxchain.core.claims import receipt_digest, redeem_digest, sign_digest
from rxchain.chain.client import RegistryClient
from rxchain.chain.deploy import deploy_registry
from rxchain.core.document import canonical_bytes, document_hash, validate
from rxchain.core.ids import ZERO_ADDRESS, RxId
from rxchain.chain.pipeline import DEFAULT_MAX_IN_FLIGHT, STALL_SECONDS, Pipeline, SignedTx
from rxchain.errors import InvalidValue, SendFailed
from rxchain.chain.signers import dev_accounts
from rxchain.dev.demo import demo_document, onboard
from rxchain.chain.outbox import Outbox
from rxchain.core.status import Status

BATCH_SIZE = 256
#: Most boxes one fill records (DrugBoxes' limit per dispense).
MAX_FILL_BOXES = 255
#: How long the bench's lots stay dispensable.
LOT_LIFETIME = 2 * 365 * 86400


class BenchFailed(SendFailed):
    """The workload did not end in exactly the intended state."""


class BadBoxesPerFill(InvalidValue):
    """``--boxes`` is not a number of boxes one fill can record, or does not fit the run asked for."""


def check_boxes_per_fill(boxes: int, *, issue_only: bool = False) -> int:
    """``boxes`` if it is 0 (boxes off) or 1 to :data:`MAX_FILL_BOXES`; else :class:`BadBoxesPerFill`."""
    if not isinstance(boxes, int) or not 0 <= boxes <= MAX_FILL_BOXES:
        raise BadBoxesPerFill(
            f"--boxes {boxes}: a fill records 1 to {MAX_FILL_BOXES} boxes in one dispense (0 leaves boxes off)"
        )
    if boxes and issue_only:
        raise BadBoxesPerFill(
            "--boxes needs fills to record them in: --issue-only only issues; drop one of the two options"
        )
    return boxes


@dataclass
class Prescription:
    """One prescription of the workload and what the steps need to know of it."""

    doctor: str
    doc_hash: bytes
    claim_key: bytes
    claim_address: str
    rx_id: bytes
    terms: bytes
    root: bytes | None = None
    proof: list[bytes] = field(default_factory=list)
    #: The fill's boxes as dispense() takes them, one LotBoxes (lot, indexes, nullifiers, multiproof); None: no boxes.
    boxes: tuple | None = None
    #: dispense()'s calldata for them, made before the clock starts (None: encoded when signed).
    box_call: bytes | None = None


@dataclass
class BenchResult:
    """The figures of one run."""

    figures: dict
    phases: list[tuple[str, int, float]]
    #: (transactions, seconds) of the node's own ceiling, measured first on the same node.
    ceiling: tuple[int, float] = (0, 1.0)


def run_bench(
    client: RegistryClient,
    *,
    prescriptions: int = 2000,
    batched_fraction: float = 0.5,
    doctors: int = 4,
    pharmacies: int = 4,
    couriers: int = 4,
    console: Console | None = None,
    seed: str = "rxchain-bench",
    issue_only: bool = False,
    ceiling_transactions: int = 3000,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    workers: int | None = None,
    boxes: int = 0,
    boxes_contract: str | None = None,
    lot_size: int = box_core.MAX_LOT,
) -> BenchResult:
    """Runs the workload against ``client``'s registry (already onboarded with the dev consortium).

    With ``issue_only`` every prescription is issued in batches and nothing more happens: the
    hospital-scale issuance figure (e.g. 600,000 prescriptions), with every batch checked on chain.

    First it measures the node's own ceiling on the same node (:func:`node_ceiling`): the figures'
    ``ratio`` is the workload's transactions per second over it, the figure that compares across
    machines.

    With ``boxes`` (1 to 255) every fill records that many drug boxes in DrugBoxes at
    ``boxes_contract``: a manufacturer registers lots of up to ``lot_size`` boxes (codes and secrets
    drawn from ``seed``) and each prescription's pharmacy sends one ``dispense`` between redeem and
    dispatch, in the same stream; afterwards every box must read spent and every fill's record name
    its pharmacy and box count.
    """
    check_boxes_per_fill(boxes, issue_only=issue_only)
    console = console or Console(stderr=True)
    ids = dev_accounts()
    pipeline = Pipeline(client, max_in_flight=max_in_flight)  # the ceiling run and the onboarding keep it too
    staff = _staff(seed, doctors, pharmacies, couriers)
    if boxes:
        boxes_contract = _boxes_contract(client, pipeline, boxes_contract)
    phases: list[tuple[str, int, float]] = []
    started = time.perf_counter()

    with _progress(console) as progress:
        now = client.latest_block_time()
        until = now + 365 * 86400
        roles = ("pharmacy", "courier", "manufacturer") if boxes else ("pharmacy", "courier")
        admit = [
            pipeline.sign(ids["regulator"], "admitMember", [a.address, keccak(text=f"{role.upper()}_ROLE"), until])
            for role in roles
            for a in staff[role]
        ]
        named = {"pharmacy": "pharmacies", "courier": "couriers", "manufacturer": "a manufacturer"}
        phases.append(_phase(progress, pipeline, "onboard " + ", ".join(named[r] for r in roles), admit))
        licence = min(
            until, client.member(ids["hospital"].address).valid_until
        )  # a doctor's never outlives its hospital's
        # The ceiling's own doctors, enough that no sender waits for the pool's per-sender limit: the
        # node's figure is what it mines when nothing on the client's side holds it back.
        ceiling_doctors = _staff(f"{seed}:ceiling", -(-ceiling_transactions // max_in_flight), 0, 0)["doctor"]
        admit = [
            pipeline.sign(ids["hospital"], "admitMember", [a.address, keccak(text="DOCTOR_ROLE"), licence])
            for a in staff["doctor"] + ceiling_doctors
        ]
        phases.append(_phase(progress, pipeline, "onboard doctors", admit))
        ceiling = node_ceiling(pipeline, ceiling_doctors, now, count=ceiling_transactions, progress=progress)

        if issue_only:
            # A batch's receipt carries 512 logs: a block of hundreds of batches answers tens of
            # megabytes, so fewer stay unmined than the pool would allow; 64 keep the node busy.
            max_in_flight = min(max_in_flight, BATCHES_IN_FLIGHT)
            phase, roots = _issue_streaming(
                client,
                pipeline,
                staff["doctor"],
                ids["hospital"],
                prescriptions,
                now,
                seed,
                progress,
                max_in_flight,
                workers,
            )
            phases.append(phase)
            _verify_batches(client, pipeline, ids["hospital"].address, roots, progress)
            figures = _figures(
                phases, prescriptions, range(prescriptions), phase, phase[2], started, True, ceiling, max_in_flight
            )
            figures["document_prep_per_s"] = None  # interleaved with sending: see issued_per_s_batched
            return BenchResult(figures, phases, ceiling)

        prep_started = time.perf_counter()
        workload = _prepare(staff["doctor"], prescriptions, now, seed)
        prep_seconds = time.perf_counter() - prep_started
        plan = None
        if boxes:
            plan = plan_boxes(seed, prescriptions, boxes, lot_size=lot_size, expires_at=now + LOT_LIFETIME)
            encoding = time.perf_counter()
            for p, fill in zip(workload, plan.fills, strict=True):
                p.boxes, p.box_call = fill, dispense_calldata(p.rx_id, [fill])
            plan.seconds += time.perf_counter() - encoding
            phases.append(register_lots(pipeline, staff["manufacturer"][0], plan, boxes_contract, progress))

        n_batched = int(prescriptions * batched_fraction)
        single, batched = workload[n_batched:], workload[:n_batched]
        for first in range(0, len(batched), BATCH_SIZE):
            group = batched[first : first + BATCH_SIZE]
            leaves = [p.rx_id for p in group]
            root = merkle_root(leaves)
            for p, proof in zip(group, merkle_proofs(leaves), strict=True):
                p.root, p.proof = root, proof
        stream = _Stream(
            client, pipeline, staff, ids["hospital"], now, max_in_flight=max_in_flight, boxes_contract=boxes_contract
        )
        phases.append(stream.run(single, batched, progress))
        batch_phase = None  # issued as part of the stream: the batched-issuance figure is --issue-only's
        _verify(client, pipeline, workload, progress)
        if plan is not None:
            expected = {rx_id: pharmacy.address for rx_id, (pharmacy, _) in stream.roles.items()}
            verify_boxes(pipeline, boxes_contract, workload, expected, progress)

    figures = _figures(
        phases, prescriptions, batched, batch_phase, prep_seconds, started, False, ceiling, max_in_flight
    )
    figures.update(_box_figures(plan, stream, phases[-1][2]))
    return BenchResult(figures, phases, ceiling)


class _Stream:
    """Every prescription's next step is signed and sent as soon as its previous step is mined: a
    prescription issued in block n is redeemed in block n+1, dispatched in n+2 …, so every block
    carries every kind of step and the node's pool never runs dry. Receipts are read per block;
    each sender has at most ``max_in_flight`` unmined transactions (its nonces stay gap-free: a
    transaction is signed only when it is sent); a revert is recorded with its prescription and the
    rest go on."""

    STEPS = ("issue", "redeem", "boxes", "dispatch", "deliver", "confirm")

    def __init__(
        self,
        client,
        pipeline: Pipeline,
        staff,
        hospital,
        now: int,
        *,
        max_in_flight: int,
        boxes_contract: str | None = None,
    ):
        self.client, self.pipeline, self.hospital = client, pipeline, hospital
        #: DrugBoxes, where a prescription with boxes has them recorded between redeem and dispatch.
        self.boxes_contract = boxes_contract
        #: dispense transactions mined (successful), the boxes they recorded and the gas they used.
        self.box_transactions = self.boxes_dispensed = self.box_gas = 0
        self.doctors = {a.address: a for a in staff["doctor"]}
        self.pharmacies, self.couriers = staff["pharmacy"], staff["courier"]
        self.expires_at, self.deadline = now + 86400, now + 7 * 86400
        self.max_in_flight = max_in_flight
        self.queues: dict[str, list] = {}  # sender -> [(prescription or batch, step)] waiting to be signed
        self.in_flight: dict[str, int] = {}
        self.sent: dict[str, tuple] = {}  # tx hash -> (what, step, sender)
        self.failures: list[tuple[str, str, str]] = []  # (what, step, tx hash)
        self.transactions = 0

    def run(
        self, single: list[Prescription], batched: list[Prescription], progress: Progress
    ) -> tuple[str, int, float]:
        with_boxes = sum(p.boxes is not None for p in single + batched)
        task = progress.add_task(
            "lifecycles, streamed (issue → redeem → "
            + ("boxes → " if with_boxes else "")
            + "dispatch → deliver → confirm)",
            total=len(single) * 5 + len(batched) * 4 + -(-len(batched) // BATCH_SIZE) + with_boxes,
        )
        self.roles = {}
        for i, p in enumerate(single + batched):
            self.roles[p.rx_id] = (self.pharmacies[i % len(self.pharmacies)], self.couriers[i % len(self.couriers)])
        started = time.perf_counter()
        for p in single:
            self._queue(self.doctors[p.doctor], p, "issue")
        for first in range(0, len(batched), BATCH_SIZE):
            self._queue(self.hospital, batched[first : first + BATCH_SIZE], "issueBatch")
        next_block = self.pipeline.head()
        self._send_what_fits()
        stalled_since = time.monotonic()
        while self.sent:
            head = self.pipeline.head()
            if head < next_block:
                if time.monotonic() - stalled_since > STALL_SECONDS:  # the node holds some without mining
                    self.pipeline._send_again(entry[3] for entry in self.sent.values())
                    stalled_since = time.monotonic()
                time.sleep(0.01)
                continue
            stalled_since = time.monotonic()
            outcomes = []
            for receipt in self.pipeline.block_receipts_of(range(next_block, head + 1)):
                entry = self.sent.pop(receipt.transactionHash, None)
                if entry is None:
                    continue
                what, step, sender, _ = entry
                self.in_flight[sender] -= 1
                ok = int(receipt.status, 16) == 1
                outcomes.append((receipt.transactionHash, "mined" if ok else "failed", int(receipt.blockNumber, 16)))
                progress.advance(task)
                if ok and step == "boxes":
                    self.box_transactions += 1
                    self.boxes_dispensed += len(what.boxes[1])
                    self.box_gas += int(receipt.gasUsed, 16)
                if ok:
                    self._next(what, step)
                else:
                    self.failures.append((_name(what), step, receipt.transactionHash))
            next_block = head + 1
            self.pipeline.settle(outcomes)
            self._send_what_fits()
        seconds = time.perf_counter() - started
        if self.failures:
            shown = "; ".join(
                f"{what} at {step}: {_why(self.pipeline, _Hash(tx))}" for what, step, tx in self.failures[:3]
            )
            raise BenchFailed(f"{len(self.failures)} steps reverted, the rest went on (first: {shown})")
        return "lifecycles, streamed: every step sent when the previous one is mined", self.transactions, seconds

    def _queue(self, sender: LocalAccount, what, step: str) -> None:
        self.queues.setdefault(sender.address, []).append((sender, what, step))

    def _next(self, what, step: str) -> None:
        if step == "issueBatch":
            for p in what:
                self._queue(self.roles[p.rx_id][0], p, "redeem")
            return
        pharmacy, courier = self.roles[what.rx_id]
        following = {
            "issue": (pharmacy, "redeem"),
            "redeem": (pharmacy, "boxes") if what.boxes is not None else (pharmacy, "dispatch"),
            "boxes": (pharmacy, "dispatch"),
            "dispatch": (courier, "deliver"),
            "deliver": (courier, "confirm"),
        }.get(step)
        if following:
            self._queue(following[0], what, following[1])

    def _send_what_fits(self) -> None:
        out = []
        for address, queue in self.queues.items():
            room = self.max_in_flight - self.in_flight.get(address, 0)
            take, self.queues[address] = queue[:room], queue[room:]
            for sender, what, step in take:
                tx = self._sign(sender, what, step)
                self.sent[tx.tx_hash] = (what, step, address, tx)
                out.append(tx)
            self.in_flight[address] = self.in_flight.get(address, 0) + len(take)
        if out:
            self.pipeline.send(out)
            self.transactions += len(out)

    def _sign(self, sender: LocalAccount, what, step: str) -> SignedTx:
        sign = self.pipeline.sign
        if step == "issueBatch":
            return sign(sender, "issueBatch", [[p.rx_id for p in what], self.expires_at, 1])
        p = what
        if step == "issue":
            return sign(sender, "issue", [p.doc_hash, p.claim_address, ZERO_ADDRESS, self.expires_at, 1])
        if step == "redeem":
            signature = sign_digest(
                p.claim_key, redeem_digest(self.client.domain, p.rx_id, sender.address, 1, self.deadline)
            )
            args = [p.doctor, p.doc_hash, ZERO_ADDRESS, p.claim_address, self.deadline, signature]
            return sign(sender, "redeemBatched", args + [p.root, p.proof]) if p.root else sign(sender, "redeem", args)
        if step == "boxes":  # the pharmacy that redeemed records the fill's boxes, proved off chain
            gas = dispense_gas(len(p.boxes[1]))
            if p.box_call is not None:
                return self.pipeline.sign_encoded(sender, "dispense", p.box_call, to=self.boxes_contract, gas=gas)
            return sign(sender, "dispense", [p.rx_id, [p.boxes]], to=self.boxes_contract, gas=gas)
        if step == "dispatch":
            return sign(sender, "dispatch", [p.rx_id, self.roles[p.rx_id][1].address])
        if step == "deliver":
            return sign(sender, "deliver", [p.rx_id])
        courier = self.roles[p.rx_id][1].address  # who delivered: the receipt names the hand-over
        signature = sign_digest(p.claim_key, receipt_digest(self.client.domain, p.rx_id, courier, 0, self.deadline))
        return sign(sender, "confirmReceipt", [p.rx_id, p.terms, self.deadline, signature])


@dataclass(frozen=True)
class _Hash:
    tx_hash: str


def _name(what) -> str:
    if isinstance(what, list):
        return f"batch of {len(what)} from 0x{what[0].rx_id.hex()[:12]}…"
    return f"prescription {RxId(what.rx_id)}"


def _issue_streaming(
    client,
    pipeline,
    doctors,
    hospital,
    n,
    now,
    seed,
    progress,
    max_in_flight=DEFAULT_MAX_IN_FLIGHT,
    workers: int | None = None,
) -> tuple[tuple[str, int, float], list[bytes]]:
    """Prepares, signs and sends batches of 256 a chunk at a time, keeping only hashes and roots, so
    memory stays flat however large ``n`` is. The preparation (documents hashed, claim keys drawn and
    their addresses derived, ids and Merkle roots: all Python CPU) runs in ``workers`` processes
    while this one signs, sends and settles and the node mines. The hospital never has more than
    ``max_in_flight`` batches unmined (Besu's pool limit per sender)."""
    task = progress.add_task("issue (batches, streamed)", total=n)
    started = time.perf_counter()
    expires_at = now + 86400
    roots: list[bytes] = []
    window: list[SignedTx] = []  # sent, not yet seen mined
    count = 0

    def settle(oldest: int) -> None:
        """Waits for the ``oldest`` of the window (the lowest nonces: mined first) while the node still
        has the rest to mine."""
        result = pipeline.collect(window[:oldest])
        if result.failed:
            raise BenchFailed(
                f"{len(result.failed)} of {oldest} batches reverted (first: {_why(pipeline, result.failed[0])})"
            )
        del window[:oldest]

    addresses = [d.address for d in doctors]
    chunks = [(start, min(CHUNK, n - start)) for start in range(0, n, CHUNK)]
    for batches in _prepared(addresses, chunks, now, seed, workers):
        signed = [pipeline.sign(hospital, "issueBatch", [ids, expires_at, 1]) for ids, _ in batches]
        roots.extend(root for _, root in batches)
        while signed:
            if len(window) >= max_in_flight:
                settle(max(1, len(window) // 2))
            room = max_in_flight - len(window)
            piece, signed = signed[:room], signed[room:]
            pipeline.submit(piece)
            window.extend(piece)  # never more than max_in_flight: their bytes stay for a re-send after a stall
            count += len(piece)
        progress.advance(task, sum(len(ids) for ids, _ in batches))
    if window:
        settle(len(window))
    return ("issue (batches of 256, streamed)", count, time.perf_counter() - started), roots


#: Prescriptions one worker prepares at a time: 32 batches of 256.
CHUNK = 32 * BATCH_SIZE
#: Most batches unmined at once in --issue-only (the per-sender limit applies too, if lower).
BATCHES_IN_FLIGHT = 64


def _prepared(doctors: list[str], chunks: list[tuple[int, int]], now: int, seed: str, workers: int | None):
    """The chunks' batches, in order. With more than one core, worker processes (spawned: the parent
    holds threads and sockets a fork would copy) prepare the next chunks while the caller sends; at
    most two chunks per worker wait, so memory stays flat."""
    workers = _default_workers() if workers is None else workers
    if workers < 1 or len(chunks) < 2:
        for start, size in chunks:
            yield _batches(doctors, start, size, now, seed)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: collections.deque = collections.deque()
        queued = iter(chunks)
        for start, size in itertools.islice(queued, 2 * workers):
            pending.append(pool.submit(_batches, doctors, start, size, now, seed))
        while pending:
            batches = pending.popleft().result()
            for start, size in itertools.islice(queued, 1):
                pending.append(pool.submit(_batches, doctors, start, size, now, seed))
            yield batches


def _default_workers() -> int:
    """Worker processes for preparation: one per core. The node, this process and the workers share
    the cores; measured on 2 cores, two workers issue 600,000 in batches ~13% faster than one (the
    node does not use a whole core while it waits for the next batches)."""
    return os.cpu_count() or 1


def node_ceiling(
    pipeline: Pipeline, doctors: list[LocalAccount], now: int, *, count: int = 3000, progress: Progress | None = None
) -> tuple[int, float]:
    """How fast the node mines pre-signed transactions when the client does nothing else: ``count``
    ``issue`` transactions of the bench's doctors, signed before the clock starts, sent in JSON-RPC
    batches and awaited per block. Returns (transactions, seconds). Not recorded in the outbox: they
    are the node's figure, not work of the bench's."""
    txs = []
    for i in range(count):
        doctor = doctors[i % len(doctors)]
        txs.append(
            pipeline.sign(
                doctor,
                "issue",
                [
                    keccak(text=f"ceiling:{i}:{now}"),
                    _address(keccak(text=f"claim:{i}:{now}")),
                    ZERO_ADDRESS,
                    now + 86400,
                    1,
                ],
            )
        )
    task = progress.add_task("node ceiling (pre-signed issues, nothing else)", total=count) if progress else None
    started = time.perf_counter()
    mined = pipeline.blast(txs)
    seconds = time.perf_counter() - started
    if progress is not None:
        progress.update(task, completed=count)
    if mined != count:
        raise BenchFailed(f"the node ceiling run mined {mined} of {count} transactions (some reverted)")
    return count, seconds


def _figures(
    phases, prescriptions, batched, batch_phase, prep_seconds, started, issue_only, ceiling, max_in_flight=None
) -> dict:
    work = [(count, seconds) for name, count, seconds in phases if not name.startswith("onboard")]
    work_seconds = sum(seconds for _, seconds in work)
    tx_per_s = sum(count for count, _ in work) / work_seconds  # the workload's rate: onboarding is set-up
    node_per_s = ceiling[0] / ceiling[1]
    return {
        "tx_per_s": round(tx_per_s, 1),
        "node_ceiling_tx_per_s": round(node_per_s, 1),
        "ratio": round(tx_per_s / node_per_s, 3),
        "lifecycles_per_s": 0.0 if issue_only else round(prescriptions / work_seconds, 1),
        "issued_per_s_batched": round(len(batched) / batch_phase[2], 1) if batched and batch_phase else None,
        "transactions": _tx_count(phases),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "failed": 0,
        "prescriptions": prescriptions,
        "batched": len(batched),
        "document_prep_per_s": round(prescriptions / prep_seconds, 1),
        "max_in_flight_per_sender": max_in_flight,
    }


def bench_table(result: BenchResult) -> Table:
    """Phases with transactions, seconds and rate."""
    table = Table(title="rx bench")
    for col in ("phase", "transactions", "seconds", "tx/s"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for name, count, seconds in result.phases:
        table.add_row(name, f"{count:,}", f"{seconds:.2f}", f"{count / seconds:,.0f}" if seconds else "-")
    count, seconds = result.ceiling
    table.add_section()
    table.add_row(
        "[dim]node ceiling: pre-signed issues, the client idle[/]",
        f"{count:,}",
        f"{seconds:.2f}",
        f"{count / seconds:,.0f}",
    )
    table.add_row("[bold]all phases / node ceiling[/]", "", "", f"[bold]{result.figures['ratio']:.0%}[/]")
    figures = result.figures
    if figures.get("boxes_per_fill"):
        stream_seconds = next(s for name, _, s in result.phases if name.startswith("lifecycles"))
        table.add_section()
        table.add_row(
            f"dispense ({figures['boxes_per_fill']} boxes a fill), within the lifecycles",
            f"{figures['box_transactions']:,}",
            f"{stream_seconds:.2f}",
            f"{figures['box_tx_per_s']:,.0f}",
        )
        table.add_row(
            f"boxes dispensed (prepared at {figures['box_prep_per_s']:,.0f}/s)",
            f"{figures['boxes_dispensed']:,}",
            f"{stream_seconds:.2f}",
            f"{figures['boxes_per_s']:,.0f}",
        )
    return table


def bench_client(url: str, outbox_path: str) -> tuple[RegistryClient, str | None]:
    """Deploys a fresh registry (and DrugBoxes beside it) on ``url``, onboards the development
    consortium; returns the registry's client and DrugBoxes' address."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    ids = dev_accounts()
    deployment = deploy_registry(w3, ids["regulator"], network="bench", record=False)
    client = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=Outbox(outbox_path))
    onboard(client, ids)
    return client, deployment.boxes


# ------------------------------------------------------------------------------------- boxes


@dataclass
class BoxPlan:
    """The drug boxes of a run, made once before the clock starts: the lots (their trees built) and,
    per prescription in workload order, the fill's boxes as ``dispense`` takes them."""

    per_fill: int
    lots: list[box_core.Lot]
    #: per lot, its boxes' nullifiers by index
    nullifiers: list[list[bytes]]
    #: per prescription: (lot root, indexes, nullifiers, multiproof)
    fills: list[tuple[bytes, list[int], list[bytes], list[bytes]]]
    #: seconds spent making codes, secrets, nullifiers, trees and multiproofs
    seconds: float

    @property
    def boxes(self) -> int:
        return sum(lot.count for lot in self.lots)


def plan_boxes(
    seed: str, prescriptions: int, per_fill: int, *, lot_size: int = box_core.MAX_LOT, expires_at: int = 0
) -> BoxPlan:
    """The boxes for ``prescriptions`` fills of ``per_fill`` boxes each, reproducible from ``seed``.

    A fill's boxes are consecutive in one lot, as they leave a carton: a lot holds as many whole fills
    as fit ``lot_size`` boxes (at most 65,536). Codes are 20 digits (a prefix from the seed, the lot,
    the box); secrets are drawn from a stream seeded by (seed, lot), so the same seed gives the same
    lots, roots, nullifiers and proofs on every run. Each lot's tree is built once; the fills'
    multiproofs are cut from it here, so the stream only signs."""
    check_boxes_per_fill(per_fill)
    if per_fill == 0:
        raise BadBoxesPerFill("plan_boxes needs 1 to 255 boxes per fill")
    if not per_fill <= lot_size <= box_core.MAX_LOT:
        raise BadBoxesPerFill(
            f"a lot of {lot_size} boxes cannot hold a fill of {per_fill}: lots hold {per_fill} to {box_core.MAX_LOT}"
        )
    started = time.perf_counter()
    fills_per_lot = lot_size // per_fill
    prefix = int.from_bytes(keccak256(f"{seed}:box-codes".encode()), "big") % 10**11
    if -(-prescriptions // fills_per_lot) > 10**4:  # the lot's 4 digits of each code
        raise BadBoxesPerFill(
            f"{prescriptions:,} fills of {per_fill} boxes need more than 10,000 lots: fewer prescriptions or boxes"
        )
    lots, nullifiers, fills = [], [], []
    for number, first in enumerate(range(0, prescriptions, fills_per_lot)):
        in_lot = min(fills_per_lot, prescriptions - first)
        draw = random.Random(f"{seed}:boxes:{number}")  # reproducible; these secrets guard nothing
        made = [
            box_core.Box(i, f"{prefix:011d}{number:04d}{i:05d}", f"{draw.randrange(10**20):020d}")
            for i in range(in_lot * per_fill)
        ]
        spent = [box.nullifier for box in made]
        lot = box_core.Lot([box_core.box_leaf(n) for n in spent], expires_at)
        lots.append(lot)
        nullifiers.append(spent)
        for f in range(in_lot):
            indexes = list(range(f * per_fill, (f + 1) * per_fill))
            fills.append((lot.root, indexes, spent[indexes[0] : indexes[-1] + 1], lot.multiproof(indexes)))
    return BoxPlan(per_fill, lots, nullifiers, fills, time.perf_counter() - started)


#: dispense(bytes32 rxId, LotBoxes[] lots)'s selector.
DISPENSE_SELECTOR = keccak256(b"dispense(bytes32,(bytes32,uint256[],bytes32[],bytes32[])[])")[:4]


def dispense_calldata(rx_id: bytes, lots: list[tuple[bytes, list[int], list[bytes], list[bytes]]]) -> bytes:
    """``dispense(rxId, lots)``'s calldata, written directly: eth_abi takes ~660 µs for a fill of 5
    boxes (its encoders walk the nested dynamic arrays generically), this ~50; a test compares the
    two bytes for bytes, with several lots."""
    word = 32

    def uint(value: int) -> bytes:
        return value.to_bytes(word, "big")

    def array(items: list[bytes]) -> bytes:
        return uint(len(items)) + b"".join(items)

    tuples = []
    for lot, indexes, nullifiers, proof in lots:
        parts = [array([uint(i) for i in indexes]), array(list(nullifiers)), array(list(proof))]
        head, offset = [bytes(lot)], 4 * word
        for part in parts:
            head.append(uint(offset))
            offset += len(part)
        tuples.append(b"".join(head) + b"".join(parts))
    offsets, offset = [], len(tuples) * word
    for encoded in tuples:
        offsets.append(uint(offset))
        offset += len(encoded)
    return DISPENSE_SELECTOR + bytes(rx_id) + uint(2 * word) + uint(len(tuples)) + b"".join(offsets) + b"".join(tuples)


def dispense_gas(boxes: int) -> int:
    """The gas cap of one dispense of ``boxes`` consecutive boxes: about 88,000 per fill and 3,850 per
    box are used (docs/boxes-and-claims.md), a proof of 16 levels adds 8,000 of calldata."""
    return 120_000 + 8_000 * boxes


def register_lots(
    pipeline: Pipeline, manufacturer: LocalAccount, plan: BoxPlan, boxes_contract: str, progress: Progress
) -> tuple[str, int, float]:
    """The manufacturer registers the plan's lots (set-up: not counted in the workload's rate)."""
    txs = [
        pipeline.sign(
            manufacturer,
            "registerLot",
            [lot.root, lot.count, lot.expires_at],
            to=boxes_contract,
            gas=500_000 + 100 * lot.count,  # 94 gas per box is used, one bitmap word per 256 boxes
        )
        for lot in plan.lots
    ]
    return _phase(progress, pipeline, f"onboard lots ({plan.boxes:,} boxes)", txs)


def verify_boxes(
    pipeline: Pipeline,
    boxes_contract: str,
    workload: list[Prescription],
    pharmacies: dict[bytes, str],
    progress: Progress,
) -> None:
    """After the run: every box of every fill reads spent (``isUnsold`` false) and every fill's record
    (``fill(rxId, 0)``) names the pharmacy that redeemed it (``pharmacies``) and its box count. Raises
    :class:`BenchFailed` naming the first fills and boxes that are not so."""
    with_boxes = [p for p in workload if p.boxes is not None]
    task = progress.add_task("verify boxes", total=len(with_boxes))
    wrong_fills: list[str] = []
    unsold: list[str] = []
    per_request = max(1, 1000 // (1 + max((len(p.boxes[1]) for p in with_boxes), default=1)))  # ~1,000 calls
    for start in range(0, len(with_boxes), per_request):
        chunk = with_boxes[start : start + per_request]
        calls, asked = [], []
        for p in chunk:
            data = pipeline.encode_call("fill", [p.rx_id, 0], to=boxes_contract)
            calls.append(("eth_call", [{"to": boxes_contract, "data": data}, "latest"]))
            asked.append((p, None))
            root, indexes, _, _ = p.boxes
            for index in indexes:
                data = pipeline.encode_call("isUnsold", [root, index], to=boxes_contract)
                calls.append(("eth_call", [{"to": boxes_contract, "data": data}, "latest"]))
                asked.append((p, index))
        for (p, index), reply in zip(asked, pipeline._batch(calls), strict=True):
            if "result" not in reply:
                raise BenchFailed(f"the node did not answer a box check of {_name(p)}: {reply.get('error')}")
            word = bytes.fromhex(reply["result"][2:])
            if index is not None:
                if int.from_bytes(word[:32], "big") != 0:
                    unsold.append(f"lot 0x{p.boxes[0].hex()[:12]}… box {index} ({_name(p)})")
                continue
            pharmacy = "0x" + word[12:32].hex()
            count = int.from_bytes(word[32:64], "big")
            if int(pharmacy, 16) == 0:
                wrong_fills.append(f"{_name(p)}: no boxes recorded")
            elif pharmacy.lower() != pharmacies[p.rx_id].lower() or count != len(p.boxes[1]):
                wrong_fills.append(
                    f"{_name(p)}: {count} boxes recorded by {pharmacy}, not {len(p.boxes[1])} by {pharmacies[p.rx_id]}"
                )
        progress.advance(task, len(chunk))
    if wrong_fills or unsold:
        raise BenchFailed(
            f"{len(wrong_fills)} fills without their right box record"
            + (f" (first: {'; '.join(wrong_fills[:3])})" if wrong_fills else "")
            + f", {len(unsold)} boxes still unsold"
            + (f" (first: {'; '.join(unsold[:3])})" if unsold else "")
        )


def _boxes_contract(client: RegistryClient, pipeline: Pipeline, address: str | None) -> str:
    """DrugBoxes' address, its ABI known to the pipeline and its errors to the client's decoder."""
    from rxchain.chain.boxes import BoxesClient, BoxesNotDeployed

    if not address:
        raise BoxesNotDeployed("--boxes needs DrugBoxes beside the registry: deploy it (rx deploy deploys both)")
    contract = BoxesClient(client, address)  # teaches the client's revert decoder DrugBoxes' errors
    pipeline.add_contract(contract.address, contract.abi)
    return contract.address


def _box_figures(plan: BoxPlan | None, stream: _Stream, stream_seconds: float) -> dict:
    if plan is None:
        return {"boxes_per_fill": 0}
    return {
        "boxes_per_fill": plan.per_fill,
        "boxes_dispensed": stream.boxes_dispensed,
        "box_transactions": stream.box_transactions,
        "boxes_per_s": round(stream.boxes_dispensed / stream_seconds, 1),
        "box_tx_per_s": round(stream.box_transactions / stream_seconds, 1),
        "dispense_gas_mean": round(stream.box_gas / stream.box_transactions) if stream.box_transactions else None,
        "lots": len(plan.lots),
        "box_prep_seconds": round(plan.seconds, 3),
        "box_prep_per_s": round(plan.boxes / plan.seconds, 1) if plan.seconds else None,
    }


# ------------------------------------------------------------------------------------ helpers


def _staff(seed: str, doctors: int, pharmacies: int, couriers: int) -> dict[str, list[LocalAccount]]:
    def make(role: str, n: int) -> list[LocalAccount]:
        return [Account.from_key(keccak(text=f"{seed}:{role}:{i}")) for i in range(n)]

    return {
        "doctor": make("doctor", doctors),
        "pharmacy": make("pharmacy", pharmacies),
        "courier": make("courier", couriers),
        "manufacturer": make("manufacturer", 1),  # admitted only when the run records boxes
    }


def _prepare(doctors: list[LocalAccount], n: int, now: int, seed: str) -> list[Prescription]:
    return list(_prepare_iter([d.address for d in doctors], n, now, seed))


def _prepare_iter(doctors: list[str], n: int, now: int, seed: str, start: int = 0):
    """The workload's prescriptions ``start`` … ``start + n - 1``, one at a time. Each run of them is
    drawn from its own seeded stream (seed, start), so any worker can make any part of a workload and
    the whole stays reproducible."""
    templates = _templates(doctors, now)
    zero_word = bytes(32)
    draw = random.Random(f"{seed}:{start}").randbytes  # reproducible workload; the keys are throwaway
    for i in range(start, start + n):
        doctor = doctors[i % len(doctors)]
        salt = draw(16).hex()
        pseudonym = draw(11).hex()
        doc_hash = templates[doctor].hash(salt, pseudonym, check=i < len(doctors))
        claim_key = draw(32)
        claim_address = _address(claim_key)
        terms = keccak256(bytes(12) + bytes.fromhex(doctor[2:]) + doc_hash + zero_word)
        rx_id = keccak256(bytes(12) + bytes.fromhex(claim_address[2:]) + terms)
        yield Prescription(doctor, doc_hash, claim_key, claim_address, rx_id, terms)


_TEMPLATES: dict[tuple[str, int], _DocumentTemplate] = {}


def _templates(doctors: list[str], now: int) -> dict[str, _DocumentTemplate]:
    """One validated template per doctor, made once per process (a worker makes many chunks)."""
    for doctor in doctors:
        if (doctor, now) not in _TEMPLATES:
            _TEMPLATES[doctor, now] = _DocumentTemplate(doctor, now)
    return {doctor: _TEMPLATES[doctor, now] for doctor in doctors}


def _batches(doctors: list[str], start: int, n: int, now: int, seed: str) -> list[tuple[list[bytes], bytes]]:
    """Prescriptions ``start`` … ``start + n - 1`` as batches of :data:`BATCH_SIZE` ids, each with its
    Merkle root: the CPU work of a hospital's nightly batch, done in a worker process while the node
    mines what the parent already sent. Only ids and roots travel back (32 bytes each)."""
    ids = [p.rx_id for p in _prepare_iter(doctors, n, now, seed, start)]
    return [(ids[i : i + BATCH_SIZE], merkle_root(ids[i : i + BATCH_SIZE])) for i in range(0, len(ids), BATCH_SIZE)]


class _DocumentTemplate:
    """One doctor's validated prescription document, hashed for many patients.

    Documents of the workload differ only in their salt and patient pseudonym, strings of fixed
    length that RFC 8785 writes verbatim; so the canonical bytes of each are the template's with those
    two strings replaced. The first document per doctor is checked against the full canonicalisation.
    """

    _SALT = "a5" * 16
    _PSEUDONYM = "Zq" * 11

    def __init__(self, doctor: str, now: int):
        self.document = demo_document(doctor, now)
        self.document["identifier"]["value"] = self._SALT
        for entry in self.document["entry"]:
            entry["resource"]["subject"]["identifier"]["value"] = self._PSEUDONYM
        validate(self.document)
        self.canonical = canonical_bytes(self.document)
        if self.canonical.count(self._SALT.encode()) != 1:
            raise BenchFailed("the document template's salt is not unique in its canonical bytes")

    def hash(self, salt: str, pseudonym: str, *, check: bool = False) -> bytes:
        data = self.canonical.replace(self._SALT.encode(), salt.encode()).replace(
            self._PSEUDONYM.encode(), pseudonym.encode()
        )
        digest = keccak256(data)
        if check:
            document = copy.deepcopy(self.document)
            document["identifier"]["value"] = salt
            for entry in document["entry"]:
                entry["resource"]["subject"]["identifier"]["value"] = pseudonym
            if document_hash(document) != digest:
                raise BenchFailed("template hashing disagrees with the document's canonical hash")
        return digest


def _address(private_key: bytes) -> str:
    """The key's address, lower-case hex (what the ABI encoder takes; checksumming 600k costs seconds)."""
    public = coincurve.PublicKey.from_secret(private_key).format(compressed=False)[1:]
    return "0x" + keccak256(public)[-20:].hex()


def _phase(
    progress: Progress, pipeline: Pipeline, name: str, txs: list[SignedTx], counts_as: int | None = None
) -> tuple[str, int, float]:
    task = progress.add_task(name, total=len(txs))
    started = time.perf_counter()
    for start in range(0, len(txs), 2000):
        chunk = txs[start : start + 2000]
        pipeline.submit(chunk)
        progress.advance(task, len(chunk) / 2)
    result = pipeline.collect(txs)
    progress.update(task, completed=len(txs))
    if result.failed:
        first = result.failed[0]
        raise BenchFailed(
            f"{len(result.failed)} of {len(txs)} {name} transactions reverted (first: {first.function} from "
            f"{first.sender}: {_why(pipeline, first)})"
        )
    return name, len(txs), time.perf_counter() - started


def _why(pipeline: Pipeline, tx: SignedTx) -> str:
    """The named reason a pipelined transaction reverted (the node's trace, else a replay)."""
    try:
        return str(pipeline.client.explain(tx.tx_hash))
    except Exception as exc:  # the report must not hide the failure it explains
        return f"reason unknown ({exc.__class__.__name__}: {exc})"


def _verify(client: RegistryClient, pipeline: Pipeline, workload: list[Prescription], progress: Progress) -> None:
    task = progress.add_task("verify final states", total=len(workload))
    calls = []
    for p in workload:
        calls.append(
            ("eth_call", [{"to": client.address, "data": pipeline.encode_call("prescription", [p.rx_id])}, "latest"])
        )
    wrong = 0
    for start in range(0, len(calls), 1000):
        replies = pipeline._batch(calls[start : start + 1000])
        for reply in replies:
            word = bytes.fromhex(reply["result"][2:])
            status, fills_left = int.from_bytes(word[96:128], "big"), int.from_bytes(word[128:160], "big")
            wrong += status != Status.COMPLETED or fills_left != 0
        progress.advance(task, len(replies))
    if wrong:
        raise BenchFailed(f"{wrong} prescriptions did not end Completed")


def _verify_batches(
    client: RegistryClient, pipeline: Pipeline, hospital: str, roots: list[bytes], progress: Progress
) -> None:
    task = progress.add_task("verify batches", total=len(roots))
    missing = 0
    for start in range(0, len(roots), 1000):
        chunk = roots[start : start + 1000]
        calls = [
            ("eth_call", [{"to": client.address, "data": pipeline.encode_call("batch", [hospital, r])}, "latest"])
            for r in chunk
        ]
        for reply in pipeline._batch(calls):
            missing += int(reply["result"][2:66] or "0", 16) == 0
        progress.advance(task, len(chunk))
    if missing:
        raise BenchFailed(f"{missing} of {len(roots)} batches are not on chain")


def _tx_count(phases: list[tuple[str, int, float]]) -> int:
    return sum(count for _, count, _ in phases)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


__all__ = [
    "BadBoxesPerFill",
    "BenchResult",
    "BoxPlan",
    "bench_client",
    "bench_table",
    "check_boxes_per_fill",
    "plan_boxes",
    "run_bench",
    "verify_boxes",
]
