"""Shared SQLite files: several programs opening one new outbox at once all get it, in WAL mode,
while the others already write to it."""

from __future__ import annotations

import threading

from rxchain.chain.outbox import Outbox, OutboxEntry

SENDERS = 4


def test_outboxes_opening_one_new_file_at_once_all_work(tmp_path):
    failures: list[BaseException] = []
    for attempt in range(60):
        path = tmp_path / f"outbox-{attempt}.sqlite"
        barrier = threading.Barrier(SENDERS)

        def open_it(n: int) -> None:
            try:
                barrier.wait()
                outbox = Outbox(path)
                assert outbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                for nonce in range(5):
                    tx_hash = f"0x{n:02x}{nonce:062x}"
                    outbox.record(
                        [
                            OutboxEntry(
                                tx_hash, f"op:{n}:{nonce}", f"sender-{n}", nonce, 1, b"raw", "issue", "pending", None
                            )
                        ]
                    )
                outbox.close()
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=open_it, args=(n,)) for n in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert Outbox(path).counts() == {"pending": 5 * SENDERS}
    assert failures == []
