"""SQLite files that several processes share (the outbox, the index): WAL mode, switched safely.

Switching a file to WAL needs it to itself for a moment and SQLite does not wait for that (its busy
timeout does not apply), so two programs opening one new file at once can see "database is locked".
:func:`use_wal` retries the switch with a short back-off until a deadline.
"""

from __future__ import annotations

import sqlite3
import time

from rxchain.errors import Unavailable


class DatabaseLocked(Unavailable):
    """A SQLite file stayed locked by another program."""


def use_wal(conn: sqlite3.Connection, *, deadline: float = 30.0) -> None:
    """Puts ``conn``'s file in WAL mode (a no-op when it already is; ``:memory:`` stays as it is)."""
    give_up = time.monotonic() + deadline
    pause = 0.005
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            if mode in ("wal", "memory"):
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() > give_up:
            raise DatabaseLocked(
                f"the SQLite file stayed locked for {deadline:.0f} s while switching it to WAL mode: is another "
                "program holding it open in a transaction?"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
