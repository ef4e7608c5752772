"""``rx bench``: a scripted hospital-scale workload through the pipelined driver, with figures.

N prescriptions — part issued one by one by several doctors, part in batches of 256 by their
hospital — are redeemed by several pharmacies, dispatched to several couriers, delivered and their
receipts confirmed: five transactions per prescription (a batch counts once). Every receipt is
checked and every prescription's final state is read back at the end. The figures: transactions
and lifecycles per second over the whole run, batched issuance per second, peak memory, failures.

Documents are made from one validated template per doctor, varied only in the fields that make each
unique (salt and patient pseudonym) and hashed in full, as a hospital system would prepare them
through the day; their preparation is timed apart from the chain work.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import resource
import socket
import subprocess
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

from rxchain.batch import merkle_proofs, merkle_root
from rxchain.claims import receipt_digest, redeem_digest, sign_digest
from rxchain.client import RegistryClient
from rxchain.deploy import deploy_registry
from rxchain.document import canonical_bytes, document_hash, validate
from rxchain.driver import Pipeline, SignedTx
from rxchain.errors import RxError
from rxchain.identities import dev_accounts
from rxchain.lifecycle import demo_document, onboard
from rxchain.outbox import Outbox
from rxchain.paths import evm_version, tool_env
from rxchain.status import Status

ZERO = "0x" + "00" * 20
BATCH_SIZE = 256


class BenchFailed(RxError):
    """The workload did not end in exactly the intended state."""


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


@dataclass
class BenchResult:
    """The figures of one run."""

    figures: dict
    phases: list[tuple[str, int, float]]


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
) -> BenchResult:
    """Runs the workload against ``client``'s registry (already onboarded with the dev consortium).

    With ``issue_only`` every prescription is issued in batches and nothing more happens: the
    hospital-scale issuance figure (e.g. 600,000 prescriptions), with every batch checked on chain.
    """
    console = console or Console(stderr=True)
    ids = dev_accounts()
    pipeline = Pipeline(client)
    staff = _staff(seed, doctors, pharmacies, couriers)
    phases: list[tuple[str, int, float]] = []
    started = time.perf_counter()

    with _progress(console) as progress:
        now = client.latest_block_time()
        until = now + 365 * 86400
        admit = [pipeline.sign(ids["regulator"], "admitMember", [a.address, keccak(text=f"{role.upper()}_ROLE"), until])
                 for role in ("pharmacy", "courier") for a in staff[role]]  # fmt: skip
        phases.append(_phase(progress, pipeline, "onboard pharmacies, couriers", admit))
        doctor_until = min(until, client.member(ids["hospital"].address).valid_until)  # not past its hospital's
        admit = [pipeline.sign(ids["hospital"], "admitMember", [a.address, keccak(text="DOCTOR_ROLE"), doctor_until])
                 for a in staff["doctor"]]  # fmt: skip
        phases.append(_phase(progress, pipeline, "onboard doctors", admit))

        if issue_only:
            phase, roots = _issue_streaming(client, pipeline, staff["doctor"], ids["hospital"], prescriptions, now, seed, progress)
            phases.append(phase)
            _verify_batches(client, pipeline, roots, progress)
            figures = _figures(phases, prescriptions, range(prescriptions), phase, phase[2], started, True)
            figures["document_prep_per_s"] = None  # interleaved with sending: see issued_per_s_batched
            return BenchResult(figures, phases)

        prep_started = time.perf_counter()
        workload = _prepare(staff["doctor"], prescriptions, now, seed)
        prep_seconds = time.perf_counter() - prep_started
        expires_at = now + 86400

        n_batched = int(prescriptions * batched_fraction)
        single, batched = workload[n_batched:], workload[:n_batched]
        doctor_by_address = {a.address: a for a in staff["doctor"]}
        txs = [pipeline.sign(doctor_by_address[p.doctor], "issue", [p.doc_hash, p.claim_address, ZERO, expires_at, 1]) for p in single]
        phases.append(_phase(progress, pipeline, "issue (single)", txs))

        txs = []
        for start in range(0, len(batched), BATCH_SIZE):
            group = batched[start : start + BATCH_SIZE]
            leaves = [p.rx_id for p in group]
            root = merkle_root(leaves)
            for p, proof in zip(group, merkle_proofs(leaves)):
                p.root, p.proof = root, proof
            txs.append(pipeline.sign(ids["hospital"], "issueBatch", [leaves, expires_at, 1]))
        batch_phase = _phase(progress, pipeline, "issue (batches of 256)", txs, counts_as=len(batched))
        phases.append(batch_phase)

        deadline = now + 7 * 86400
        redeemer = {p.rx_id: staff["pharmacy"][i % pharmacies] for i, p in enumerate(workload)}
        carrier = {p.rx_id: staff["courier"][i % couriers] for i, p in enumerate(workload)}
        txs = []
        for p in workload:
            pharmacy = redeemer[p.rx_id]
            signature = sign_digest(p.claim_key, redeem_digest(client.domain, p.rx_id, pharmacy.address, 1, deadline))
            args = [p.doctor, p.doc_hash, ZERO, p.claim_address, deadline, signature]
            txs.append(pipeline.sign(pharmacy, "redeemBatched", args + [p.root, p.proof]) if p.root else pipeline.sign(pharmacy, "redeem", args))
        phases.append(_phase(progress, pipeline, "redeem", txs))
        txs = [pipeline.sign(redeemer[p.rx_id], "dispatch", [p.rx_id, carrier[p.rx_id].address]) for p in workload]
        phases.append(_phase(progress, pipeline, "dispatch", txs))
        txs = [pipeline.sign(carrier[p.rx_id], "deliver", [p.rx_id]) for p in workload]
        phases.append(_phase(progress, pipeline, "deliver", txs))
        txs = []
        for p in workload:
            signature = sign_digest(p.claim_key, receipt_digest(client.domain, p.rx_id, 0, deadline))
            txs.append(pipeline.sign(carrier[p.rx_id], "confirmReceipt", [p.rx_id, p.terms, deadline, signature]))
        phases.append(_phase(progress, pipeline, "confirm receipt", txs))

        _verify(client, pipeline, workload, progress)

    return BenchResult(_figures(phases, prescriptions, batched, batch_phase, prep_seconds, started, False), phases)


def _issue_streaming(client, pipeline, doctors, hospital, n, now, seed, progress) -> tuple[tuple[str, int, float], list[bytes]]:
    """Prepares, signs and sends batches of 256 a chunk at a time, keeping only hashes and roots, so
    memory stays flat however large ``n`` is; the node mines while the next chunk is prepared."""
    task = progress.add_task("issue (batches, streamed)", total=n)
    started = time.perf_counter()
    expires_at = now + 86400
    roots: list[bytes] = []
    sent: list[SignedTx] = []
    chunk: list[SignedTx] = []
    group: list[bytes] = []

    def flush() -> None:
        pipeline.submit(chunk)
        sent.extend(dataclasses.replace(tx, raw=b"") for tx in chunk)  # the outbox keeps the bytes
        chunk.clear()

    for p in _prepare_iter(doctors, n, now, seed):
        group.append(p.rx_id)
        if len(group) == BATCH_SIZE:
            roots.append(merkle_root(group))
            chunk.append(pipeline.sign(hospital, "issueBatch", [group, expires_at, 1]))
            progress.advance(task, len(group))
            group = []
            if len(chunk) == 32:
                flush()
    if group:
        roots.append(merkle_root(group))
        chunk.append(pipeline.sign(hospital, "issueBatch", [group, expires_at, 1]))
        progress.advance(task, len(group))
    if chunk:
        flush()
    result = pipeline.collect(sent)
    if result.failed:
        raise BenchFailed(f"{len(result.failed)} of {len(sent)} batches reverted (first: {_why(pipeline, result.failed[0])})")
    return ("issue (batches of 256, streamed)", len(sent), time.perf_counter() - started), roots


def _figures(phases, prescriptions, batched, batch_phase, prep_seconds, started, issue_only) -> dict:
    chain_seconds = sum(seconds for _, _, seconds in phases)
    work_seconds = sum(seconds for name, _, seconds in phases if not name.startswith("onboard"))
    return {
        "tx_per_s": round(_tx_count(phases) / chain_seconds, 1),
        "lifecycles_per_s": 0.0 if issue_only else round(prescriptions / work_seconds, 1),
        "issued_per_s_batched": round(len(batched) / batch_phase[2], 1) if batched else 0.0,
        "transactions": _tx_count(phases),
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "failed": 0,
        "prescriptions": prescriptions,
        "batched": len(batched),
        "document_prep_per_s": round(prescriptions / prep_seconds, 1),
    }


def bench_table(result: BenchResult) -> Table:
    """Phases with transactions, seconds and rate."""
    table = Table(title="rx bench")
    for col in ("phase", "transactions", "seconds", "tx/s"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for name, count, seconds in result.phases:
        table.add_row(name, f"{count:,}", f"{seconds:.2f}", f"{count / seconds:,.0f}" if seconds else "-")
    return table


@dataclass
class EphemeralChain:
    """A throwaway anvil with the devnet's settings (free gas, 1 s blocks, the project's hardfork)."""

    url: str
    process: subprocess.Popen

    @classmethod
    def start(cls, block_time: int = 1, chain_id: int = 31339) -> "EphemeralChain":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = subprocess.Popen(
            ["anvil", "--port", str(port), "--chain-id", str(chain_id), "--hardfork", evm_version(), "--gas-price", "0",
             "--base-fee", "0", "--disable-min-priority-fee", "--block-time", str(block_time), "--gas-limit", "2000000000",
             "--accounts", "10", "--mnemonic", "test test test test test test test test test test test junk",
             "--no-request-size-limit"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tool_env(),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        w3 = Web3(Web3.HTTPProvider(url))
        for _ in range(200):
            if w3.is_connected():
                return cls(url, process)
            time.sleep(0.05)
        process.kill()
        raise BenchFailed("the ephemeral anvil did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def bench_client(url: str, outbox_path: str) -> RegistryClient:
    """Deploys a fresh registry on ``url``, onboards the development consortium, returns its client."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    ids = dev_accounts()
    deployment = deploy_registry(w3, ids["regulator"], network="bench", record=False)
    client = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=Outbox(outbox_path))
    onboard(client, ids)
    return client


# ------------------------------------------------------------------------------------ helpers


def _staff(seed: str, doctors: int, pharmacies: int, couriers: int) -> dict[str, list[LocalAccount]]:
    def make(role: str, n: int) -> list[LocalAccount]:
        return [Account.from_key(keccak(text=f"{seed}:{role}:{i}")) for i in range(n)]

    return {"doctor": make("doctor", doctors), "pharmacy": make("pharmacy", pharmacies), "courier": make("courier", couriers)}


def _prepare(doctors: list[LocalAccount], n: int, now: int, seed: str) -> list[Prescription]:
    return list(_prepare_iter(doctors, n, now, seed))


def _prepare_iter(doctors: list[LocalAccount], n: int, now: int, seed: str):
    """The workload's prescriptions, one at a time."""
    templates = {d.address: _DocumentTemplate(d.address, now) for d in doctors}
    zero_word = bytes(32)
    draw = random.Random(seed).randbytes  # reproducible workload; the keys are throwaway
    for i in range(n):
        doctor = doctors[i % len(doctors)].address
        salt = draw(16).hex()
        pseudonym = draw(11).hex()
        doc_hash = templates[doctor].hash(salt, pseudonym, check=i < len(doctors))
        claim_key = draw(32)
        claim_address = _address(claim_key)
        terms = keccak(bytes(12) + bytes.fromhex(doctor[2:]) + doc_hash + zero_word)
        rx_id = keccak(bytes(12) + bytes.fromhex(claim_address[2:]) + terms)
        yield Prescription(doctor, doc_hash, claim_key, claim_address, rx_id, terms)


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
        data = self.canonical.replace(self._SALT.encode(), salt.encode()).replace(self._PSEUDONYM.encode(), pseudonym.encode())
        digest = keccak(data)
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
    return "0x" + keccak(public)[-20:].hex()


def _phase(progress: Progress, pipeline: Pipeline, name: str, txs: list[SignedTx], counts_as: int | None = None) -> tuple[str, int, float]:
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
        raise BenchFailed(f"{len(result.failed)} of {len(txs)} {name} transactions reverted (first: {first.function} from "
                          f"{first.sender}: {_why(pipeline, first)})")  # fmt: skip
    return name, len(txs), time.perf_counter() - started


def _why(pipeline: Pipeline, tx: SignedTx) -> str:
    """The named reason a pipelined transaction reverted (the node's trace, else a replay)."""
    try:
        return str(pipeline.client.explain(tx.tx_hash))
    except Exception as exc:  # noqa: BLE001 - the report must not hide the failure it explains
        return f"reason unknown ({exc.__class__.__name__}: {exc})"


def _verify(client: RegistryClient, pipeline: Pipeline, workload: list[Prescription], progress: Progress) -> None:
    task = progress.add_task("verify final states", total=len(workload))
    calls = []
    for p in workload:
        calls.append(("eth_call", [{"to": client.address, "data": pipeline.encode_call("prescription", [p.rx_id])}, "latest"]))
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


def _verify_batches(client: RegistryClient, pipeline: Pipeline, roots: list[bytes], progress: Progress) -> None:
    task = progress.add_task("verify batches", total=len(roots))
    missing = 0
    for start in range(0, len(roots), 1000):
        chunk = roots[start : start + 1000]
        calls = [("eth_call", [{"to": client.address, "data": pipeline.encode_call("batch", [r])}, "latest"]) for r in chunk]
        for reply in pipeline._batch(calls):
            missing += int(reply["result"][2:66] or "0", 16) == 0
        progress.advance(task, len(chunk))
    if missing:
        raise BenchFailed(f"{missing} of {len(roots)} batches are not on chain")


def _tx_count(phases: list[tuple[str, int, float]]) -> int:
    return sum(count for _, count, _ in phases)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


__all__ = ["BenchResult", "EphemeralChain", "bench_client", "bench_table", "run_bench"]
