"""Nothing sent is lost: a batch process killed with SIGKILL mid-way, then re-run, leaves the chain
holding every intended prescription exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from rxchain.audit import trail
from rxchain.core.document import document_hash
from rxchain.chain.signers import dev_account
from rxchain.chain.outbox import Outbox
from rxchain.core.status import Status

from .issue_batch import batch_item

SCRIPT = Path(__file__).with_name("issue_batch.py")
COUNT = 30


def run_batch(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )


def test_killed_batch_resumes_without_duplicates_or_gaps(client, deployment, rpc_url, tmp_path):
    outbox_file = tmp_path / "hospital-outbox.sqlite"
    valid_from = client.latest_block_time()
    args = [rpc_url, deployment.registry, str(deployment.deploy_block), str(outbox_file), str(COUNT), str(valid_from)]

    first = run_batch(args)
    done_before_kill = 0
    for line in first.stdout:
        done_before_kill += line.startswith("issued")
        if done_before_kill == COUNT // 3:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    second = run_batch(args)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    assert out.count("issued") == COUNT

    doctor = dev_account("doctor").address
    start = datetime.fromtimestamp(valid_from, timezone.utc)
    for i in range(COUNT):
        document, claim = batch_item(i, doctor, start)
        rx_id, _ = client.compute_id(doctor, document_hash(document), None, claim.address)
        assert client.prescription(rx_id).status is Status.ACTIVE, f"prescription {i} missing"
        assert [s.step for s in trail(client, rx_id)] == ["issued"], f"prescription {i} issued more than once"
    counts = Outbox(outbox_file).counts()
    assert counts.get("pending", 0) == 0
    assert counts["mined"] == COUNT
