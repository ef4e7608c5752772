"""The client's outbox: every transaction it signs is kept until its receipt is final.

A small SQLite file. A transaction is written (signed bytes, sender, nonce, what it does and an
idempotency key) BEFORE it is sent, and marked with its outcome once mined. A process or node that
dies mid-way leaves rows in ``pending``; re-running resends exactly those bytes (same hash, so never
a duplicate) and waits for them, and an operation whose key already succeeded is not sent again.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from rxchain.errors import OutboxConflict
from rxchain.sqlitewal import use_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    tx_hash     TEXT PRIMARY KEY,
    op_key      TEXT NOT NULL,
    sender      TEXT NOT NULL,
    nonce       INTEGER NOT NULL,
    chain_id    INTEGER NOT NULL,
    raw         BLOB NOT NULL,
    description TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'mined', 'failed', 'dropped')),
    block       INTEGER,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state);
CREATE INDEX IF NOT EXISTS outbox_op ON outbox(op_key);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_sender_nonce ON outbox(chain_id, sender, nonce) WHERE state != 'dropped';
"""


@dataclass(frozen=True)
class OutboxEntry:
    """One signed transaction and what became of it."""

    tx_hash: str
    op_key: str
    sender: str
    nonce: int
    chain_id: int
    raw: bytes
    description: str
    state: str
    block: int | None


class Outbox:
    """A durable record of signed transactions (SQLite, one file; ``:memory:`` for throwaway use)."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        use_wal(self._db)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def record(self, entries: list[OutboxEntry]) -> None:
        """Stores signed transactions as pending, all or none, before any is sent. Raises
        OutboxConflict (nothing stored) when one reuses a sender's nonce the outbox already holds."""
        now = time.time()
        try:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?)",
                    [
                        (e.tx_hash, e.op_key, e.sender, e.nonce, e.chain_id, e.raw, e.description, now, now)
                        for e in entries
                    ],
                )
        except sqlite3.IntegrityError:
            clash = self._first_clash(entries)
            raise OutboxConflict(
                f"nonce {clash.nonce} of {clash.sender} is already used by {clash.tx_hash} in the outbox {self.path}, "
                "which the node does not count: it lost blocks, or another process signs with this key. "
                "RegistryClient.resume_pending() re-sends what the node lost; then sign again"
            ) from None

    def _first_clash(self, entries: list[OutboxEntry]) -> OutboxEntry:
        for e in entries:
            row = self._db.execute(
                "SELECT * FROM outbox WHERE (chain_id = ? AND sender = ? AND nonce = ? AND state != 'dropped') "
                "OR tx_hash = ?",
                (e.chain_id, e.sender, e.nonce, e.tx_hash),
            ).fetchone()
            if row is not None:
                return OutboxEntry(*row[:9])
        return entries[0]

    def settle(self, tx_hash: str, state: str, block: int | None = None) -> None:
        """Marks a transaction mined, failed (mined but reverted) or dropped (never to be mined)."""
        self._db.execute(
            "UPDATE outbox SET state = ?, block = ?, updated_at = ? WHERE tx_hash = ?",
            (state, block, time.time(), tx_hash),
        )

    def settle_many(self, outcomes: list[tuple[str, str, int | None]]) -> None:
        """Settles many transactions at once, as (tx_hash, state, block), in one database transaction."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "UPDATE outbox SET state = ?, block = ?, updated_at = ? WHERE tx_hash = ?",
                [(state, block, now, tx_hash) for tx_hash, state, block in outcomes],
            )

    def pending(self, chain_id: int | None = None, *, sender: str | None = None) -> list[OutboxEntry]:
        """Signed transactions whose outcome is not known yet, oldest first per sender."""
        sql = "SELECT * FROM outbox WHERE state = 'pending'"
        params: tuple = ()
        if chain_id is not None:
            sql += " AND chain_id = ?"
            params = (chain_id,)
        if sender is not None:
            sql += " AND sender = ?"
            params += (sender,)
        return [OutboxEntry(*row[:9]) for row in self._db.execute(sql + " ORDER BY sender, nonce", params)]

    def senders(self, chain_id: int) -> list[str]:
        """Every sender with a transaction in the outbox on ``chain_id``."""
        rows = self._db.execute("SELECT DISTINCT sender FROM outbox WHERE chain_id = ? ORDER BY sender", (chain_id,))
        return [row[0] for row in rows]

    def has_sender(self, chain_id: int, sender: str) -> bool:
        """Whether the outbox holds any transaction of ``sender`` on ``chain_id``."""
        return (
            self._db.execute(
                "SELECT 1 FROM outbox WHERE chain_id = ? AND sender = ? LIMIT 1", (chain_id, sender)
            ).fetchone()
            is not None
        )

    def settled_from_nonce(self, chain_id: int, sender: str, nonce: int) -> list[OutboxEntry]:
        """The sender's entries recorded as mined or failed with ``nonce`` or above, in nonce order. A
        node whose transaction count for the sender is ``nonce`` cannot hold any of them: it lost the
        blocks they were mined in."""
        rows = self._db.execute(
            "SELECT * FROM outbox WHERE chain_id = ? AND sender = ? AND nonce >= ? AND state IN ('mined', 'failed') "
            "ORDER BY nonce",
            (chain_id, sender, nonce),
        )
        return [OutboxEntry(*row[:9]) for row in rows]

    def reopen_many(self, tx_hashes: list[str]) -> None:
        """Marks transactions pending again (one database transaction): the node no longer has the
        blocks they were mined in."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "UPDATE outbox SET state = 'pending', block = NULL, updated_at = ? WHERE tx_hash = ?",
                [(now, h) for h in tx_hashes],
            )

    def succeeded(self, op_key: str) -> OutboxEntry | None:
        """The mined transaction that carried out ``op_key``, if any."""
        row = self._db.execute(
            "SELECT * FROM outbox WHERE op_key = ? AND state = 'mined' LIMIT 1", (op_key,)
        ).fetchone()
        return OutboxEntry(*row[:9]) if row else None

    def entries(
        self, states: tuple[str, ...] = ("pending", "failed", "dropped"), *, limit: int = 1000
    ) -> list[OutboxEntry]:
        """Entries in ``states``, newest first (at most ``limit``)."""
        marks = ", ".join("?" for _ in states)
        rows = self._db.execute(
            f"SELECT * FROM outbox WHERE state IN ({marks}) ORDER BY updated_at DESC, sender, nonce DESC LIMIT ?",
            (*states, limit),
        )
        return [OutboxEntry(*row[:9]) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of entries in each state."""
        return dict(self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())

    def close(self) -> None:
        self._db.close()

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, exc, tb):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()
