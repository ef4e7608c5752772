"""The index database on its own (no chain): opening one new SQLite file from several indexers at once."""

from __future__ import annotations

import threading

from rxchain.indexer.db import Database, read_meta


def test_two_connections_opening_one_new_file_both_get_it_in_wal_mode(tmp_path):
    # Switching a new file to WAL needs it to itself and SQLite does not wait for that; before the
    # retry, about one pair in ten failed here with "database is locked".
    failures: list[BaseException] = []
    for attempt in range(60):
        url = str(tmp_path / f"index-{attempt}.sqlite")
        barrier = threading.Barrier(2)

        def open_it() -> None:
            try:
                database = Database(url)
                barrier.wait()
                with database.connect() as conn:
                    assert conn.query_one("PRAGMA journal_mode")[0] == "wal"
                    database.ensure_schema(conn)
                    assert read_meta(conn) == {}
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
