"""``rx serve``'s foreground server with several uvicorn worker processes: a session opened on one
worker holds on the others (nonces and sessions are shared), a replay is refused whichever worker
gets it, and Ctrl-C (SIGINT) ends the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests
from eth_account import Account
from eth_account.messages import encode_defunct

from rxchain.dev.anvil import free_port


def test_workers_share_nonces_and_sessions(deployment, rpc_url, indexed, ids, tmp_path):
    port = free_port()
    options = dict(
        network="local",
        host="127.0.0.1",
        port=port,
        dapp=False,
        console=True,
        workers=2,
        rpc_url=rpc_url,
        registry=deployment.registry,
        chain_id=deployment.chain_id,
        db_url=indexed,
        follow=False,
    )
    code = f"from rxchain.web.service import ServeOptions, serve; serve(ServeOptions(**{options!r}))"
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/console/api/whoami", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "rx serve did not come up"
            time.sleep(0.2)
        workers = _children(process.pid)
        assert len(workers) >= 2, workers

        message = requests.post(base + "/auth/message", json={"address": ids["regulator"].address}, timeout=10).json()[
            "message"
        ]
        signature = "0x" + Account.sign_message(
            encode_defunct(text=message), ids["regulator"].key
        ).signature.hex().removeprefix("0x")
        signed = requests.post(base + "/auth/sign-in", json={"message": message, "signature": signature}, timeout=10)
        assert signed.status_code == 200, signed.text
        cookie = {"rx_session": signed.cookies["rx_session"]}
        for _ in range(12):  # new connections each time: both workers answer
            assert (
                requests.get(
                    base + "/console/api/summary", cookies=cookie, timeout=10, headers={"Connection": "close"}
                ).status_code
                == 200
            )
            replay = requests.post(
                base + "/auth/sign-in",
                json={"message": message, "signature": signature},
                timeout=10,
                headers={"Connection": "close"},
            )
            assert replay.status_code == 401 and replay.json()["reason"] == "nonce"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            log.close()
    assert process.returncode is not None


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_rx_serve_refuses_what_it_must_not_do():
    from click.testing import CliRunner

    from rxchain.cli.main import cli

    runner = CliRunner()
    patient_offline = runner.invoke(cli, ["serve", "--patient", "--console", "--offline", "--no-sign-in"])
    assert patient_offline.exit_code == 2 and "--offline serves the console's database alone" in patient_offline.output
    assert "--patient" in runner.invoke(cli, ["serve", "--help"]).output
    open_to_all = runner.invoke(cli, ["serve", "--no-sign-in", "--host", "0.0.0.0"])
    assert open_to_all.exit_code == 2 and "loopback address only" in open_to_all.output
    offline = runner.invoke(cli, ["console", "--offline"])
    assert offline.exit_code == 2 and "--no-sign-in" in offline.output
    no_workers = runner.invoke(cli, ["serve", "--workers", "0"])
    assert no_workers.exit_code == 2 and "--workers" in no_workers.output
    for alias in ("dapp", "console", "serve"):
        assert runner.invoke(cli, [alias, "--help"]).exit_code == 0


def test_a_figure_is_computed_once_per_indexed_block(indexed, tmp_path):
    """Concurrent requests for a figure compute it once; when the index moves on (a new last block),
    it is computed again."""
    import shutil
    import sqlite3
    import threading

    from rxchain.indexer import queries
    from rxchain.web.console import make_console

    db = tmp_path / "index.sqlite"
    shutil.copy(indexed, db)
    console = make_console(str(db))
    calls = []

    def summary(conn):
        calls.append(1)
        time.sleep(0.2)  # long enough for the other requests to arrive meanwhile
        return queries.summary(conn)

    answers = []

    def ask():
        with console.pool.connection() as conn:
            answers.append(console.cached(conn, ("summary",), summary))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(answers) == 6 and all(a == answers[0] for a in answers)

    with sqlite3.connect(db) as raw:  # the indexer records a new last block
        raw.execute("UPDATE meta SET value = ? WHERE key = 'last_block_hash'", ("0x" + "ee" * 32,))
    ask()
    assert len(calls) == 2
    console.stop()
