"""``rx index bench``: how fast the indexer takes a registry's history into a database.

A throwaway anvil (the devnet's settings) gets a fresh registry and a generated workload — the varied
one of :mod:`rxchain.indexer.workload` (every state, several days of chain time) or ``rx bench``'s
pipelined all-completed one for volume — then the indexer reads it all into a fresh database (SQLite,
and PostgreSQL when a URL is given), timed; a sampled :func:`~rxchain.indexer.check.verify` and the
console's queries are timed too. The figures are printed, never asserted by a test.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

from web3 import Web3

from rxchain.dev.anvil import Anvil
from rxchain.chain.client import RegistryClient
from rxchain.chain.deploy import deploy_registry
from rxchain.chain.signers import dev_accounts
from rxchain.indexer import queries
from rxchain.indexer.core import index
from rxchain.indexer.db import Database
from rxchain.indexer.check import verify
from rxchain.dev.demo import onboard
from rxchain.chain.outbox import Outbox
from rxchain.errors import InvalidValue


def fresh_registry(url: str, outbox_path: str | Path | None = None) -> RegistryClient:
    """Deploys a registry on ``url`` and onboards the development consortium."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    ids = dev_accounts()
    deployment = deploy_registry(w3, ids["regulator"], network="bench", record=False)
    client = RegistryClient(
        w3,
        deployment.registry,
        deploy_block=deployment.deploy_block,
        outbox=Outbox(outbox_path) if outbox_path else None,
    )
    onboard(client, ids)
    return client


def bench(
    *,
    prescriptions: int = 2000,
    workload: str = "varied",
    days: int = 5,
    db_urls: list[str] | None = None,
    rpc_url: str | None = None,
    block_time: int | None = 1,
    keep_db: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Generates a workload of ``prescriptions`` on a fresh registry and times indexing it.

    ``workload``: "varied" (every state over ``days`` days of chain time) or "bench" (``rx bench``'s:
    all completed, half batched). ``db_urls``: databases to index into (default: one temporary SQLite
    file; each is reset first). ``rpc_url``: a running development
    node instead of a throwaway anvil (``block_time`` seconds between blocks for that anvil; None mines
    each transaction at once). ``keep_db``: also leave a SQLite index of the run at this path (for the
    console). Returns the figures (one dict per database under "runs").
    """
    log = log or (lambda message: None)
    chain = None if rpc_url else Anvil.start(block_time=block_time)
    url = rpc_url or chain.url
    figures: dict = {"workload": workload, "prescriptions": prescriptions, "blockTime": block_time if chain else None}
    try:
        with tempfile.TemporaryDirectory() as folder:
            client = fresh_registry(url, f"{folder}/outbox.sqlite")
            started = time.perf_counter()
            if workload == "varied":
                from rxchain.indexer.workload import run_workload

                per_day = max(2, prescriptions // days)
                result = run_workload(
                    client,
                    dev_accounts(),
                    days=days,
                    per_day=per_day,
                    batch_size=min(256, max(8, per_day // 8)),
                    extra_doctors=4,
                    extra_pharmacies=3,
                    extra_couriers=3,
                    log=log,
                )
                figures["transactions"] = result.transactions
                figures["prescriptions"] = len(result.prescriptions)
            elif workload == "bench":
                from rich.console import Console

                from rxchain.dev.bench import run_bench

                done = run_bench(client, prescriptions=prescriptions, console=Console(stderr=True, quiet=True))
                figures["transactions"] = done.figures["transactions"]
            else:
                raise InvalidValue(f"unknown workload {workload!r}: varied or bench")
            figures["workloadSeconds"] = round(time.perf_counter() - started, 1)
            head = client.w3.eth.block_number
            figures["blocks"] = head - client.deploy_block + 1
            log(
                f"workload done: {figures['transactions']} transactions in {figures['workloadSeconds']} s"
                f", {figures['blocks']} blocks"
            )
            targets = list(db_urls) if db_urls is not None else [f"{folder}/index.sqlite"]
            if keep_db:
                Path(keep_db).unlink(missing_ok=True)
                targets.append(str(keep_db))
            figures["runs"] = [_time_index(url, client, target, head, log) for target in targets]
    finally:
        if chain is not None:
            chain.stop()
    figures["peakRssMb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def _time_index(url: str, client: RegistryClient, db_url: str, head: int, log) -> dict:
    database = Database(db_url)
    stats = index(url, client.address, client.deploy_block, db_url, to_block=head, reset=True)
    run = {
        "database": database.url.display(),
        "kind": database.kind,
        "events": stats.events,
        "blocks": stats.blocks,
        "ranges": stats.ranges,
        "seconds": round(stats.seconds, 2),
        "eventsPerSecond": stats.events_per_s,
    }
    log(
        f"indexed {stats.events} events in {stats.seconds:.2f} s into {database.kind}"
        f": {stats.events_per_s:,.0f} events/s"
    )
    started = time.perf_counter()
    again = index(url, client.address, client.deploy_block, db_url, to_block=head)
    run["rerunSeconds"] = round(time.perf_counter() - started, 3)
    run["rerunEvents"] = again.events
    started = time.perf_counter()
    problems = verify(db_url, url, sample=200, seed=1)
    run["verifySample200Seconds"] = round(time.perf_counter() - started, 2)
    run["verifyProblems"] = len(problems)
    with database.connect(readonly=True) as conn:
        timings = {}
        for name, fn in (
            ("summary", queries.summary),
            ("daily", queries.daily),
            ("hospitals", queries.hospitals),
            ("pharmacies", queries.pharmacies),
            ("deliveryTimes", queries.delivery_times),
            ("members", queries.member_list),
            ("expired", queries.expired_unfilled),
        ):
            started = time.perf_counter()
            fn(conn)
            timings[name] = round((time.perf_counter() - started) * 1000, 1)
        run["queryMs"] = timings
        run["rows"] = queries.counts(conn)
    return run


__all__ = ["Anvil", "bench", "fresh_registry"]
