"""A hospital's bulk issuance job, for the crash tests: issues deterministic prescriptions with the
pipelined driver and an outbox file, resumable after a crash.

    python bulk_issue.py RPC_URL REGISTRY DEPLOY_BLOCK OUTBOX COUNT EXPIRES_AT [CHUNK]

Prescription i (i < COUNT) is the same on every run (its document hash and claim key come from i).
A run first resumes what the outbox holds as pending (RegistryClient.resume_pending: the same signed
bytes again), then reads which prescriptions are on chain, and signs and sends only the missing
ones, CHUNK at a time. It prints "resumed N", "missing M", then "sent chunk k" and "mined chunk k"
per chunk, and "done" at the end; a node that does not answer ends it with "node unavailable: ..."
and exit code 3.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script too: the suite's package is importable

from web3 import Web3

from rxchain import errors
from rxchain.chain.client import RegistryClient
from rxchain.chain.pipeline import Pipeline
from rxchain.chain.signers import dev_account
from rxchain.chain.outbox import Outbox
from security.chainkit import Rpc, read_registry
from security.workload import plan

TAG = "bulk issuance"


def planned(count: int):
    return plan(TAG, dev_account("doctor").address, count)


def run(url: str, registry: str, deploy_block: int, outbox: str, count: int, expires_at: int, chunk: int = 50) -> None:
    client = RegistryClient(
        Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30})),
        registry,
        deploy_block=deploy_block,
        outbox=Outbox(outbox),
    )
    outcomes = client.resume_pending()
    failed = [o for o in outcomes if isinstance(o, errors.RxError)]
    print(f"resumed {len(outcomes)} ({len(failed)} failed)", flush=True)
    for problem in failed:
        print(f"resume problem: {problem}", flush=True)

    everything = planned(count)
    rpc = Rpc(url, timeout=30)
    views = read_registry(rpc, client, [p.rx_id for p in everything]).prescriptions
    missing = [p for p in everything if views[p.rx_id][3] == 0]
    print(f"missing {len(missing)}", flush=True)

    doctor = dev_account("doctor")
    pipeline = Pipeline(client)
    for k in range(0, len(missing), chunk):
        txs = [
            pipeline.sign(doctor, "issue", p.issue_args(expires_at), op_key=f"bulk:{p.index}")
            for p in missing[k : k + chunk]
        ]
        pipeline.submit(txs)
        print(f"sent chunk {k // chunk}", flush=True)
        result = pipeline.collect(txs)
        print(f"mined chunk {k // chunk} ({len(result.failed)} failed)", flush=True)
    print("done", flush=True)


def main() -> None:
    url, registry, deploy_block, outbox, count, expires_at = sys.argv[1:7]
    chunk = int(sys.argv[7]) if len(sys.argv) > 7 else 50
    try:
        run(url, registry, int(deploy_block), outbox, int(count), int(expires_at), chunk)
    except errors.NodeUnavailable as exc:
        print(f"node unavailable: {exc}", flush=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
