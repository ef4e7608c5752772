"""The console's whole-index figures as running totals, kept by the indexer.

The summary and the daily series count over every prescription, fill and batch. Scanning those tables
costs time in proportion to the index (about 80 ms of one core on 20,000 prescriptions, seconds on
600,000); so the indexer keeps the counts in two tables instead:

    totals (name, n)               issued, issuedBatched, redeemed, fills, cancelled, status:<status>,
                                   dispatched, handedOverInStore, received, batches, batchesCancelled,
                                   events
    daily_totals (series, day, n)  per UTC day (unix time // 86400): issued (by issue time), redeemed
                                   (fills, by redemption time), cancelled (by cancellation time), and
                                   unfilled / refillable (by expiry day, see below)

When a range's events change rows, :class:`~rxchain.indexer.projection.Projection` takes what each
changed row counted for before (as it was stored) and after, and adds the difference in the same
transaction that writes the rows. The totals are therefore always those of the rows at the last
indexed block: a crash inside a range loses both together, a resume goes on from the committed ones,
and after a reorganisation :func:`~rxchain.indexer.projection.rebuild` empties them with the other
derived tables and the replay of the remaining events counts them again.

What a row counts for never depends on the time. What does — a prescription is expired when
``expires_at < now``, the chain time of the last indexed block — is kept as counts per expiry day of
the unfilled prescriptions (active, never redeemed) and of the refillable ones: the days before
today are summed from ``daily_totals``, and today's part is counted on the ``prescriptions_status``
index (one day's expiries at most). Every answer equals the scan's (:func:`check` compares them; the
tests do so on the scripted workload, after resuming and after a reorganisation).

An index built before the totals existed has no ``totals`` mark in its meta: the indexer computes them
from its rows once when it opens the database (:func:`ensure`); until then the queries scan.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from rxchain.indexer.db import Connection, write_meta

DAY = 86400
#: meta key (value "1") saying that totals and daily_totals hold the index's counts.
MARK = "totals"
#: The series kept per expiry day (``daily_totals``), and the rows they count.
EXPIRY_SERIES = {
    "unfilled": "status = 'active' AND redemptions = 0",
    "refillable": "status = 'refillable'",
}

Key = tuple[str, int | None]  # (name, None) for a total, (series, day) for a day's count


def rx_parts(row: dict | None) -> list[Key]:
    """What a prescriptions row counts for (each key once, but ``fills`` as many times as its redemptions)."""
    if row is None:
        return []
    status, redemptions, expires_at = row["status"], row["redemptions"] or 0, row["expires_at"]
    parts: list[Key] = [("issued", None), (f"status:{status}", None), ("issued", row["issued_at"] // DAY)]
    if row["kind"] == "batched":
        parts.append(("issuedBatched", None))
    if redemptions > 0:
        parts.append(("redeemed", None))
        parts += [("fills", None)] * redemptions
    if status == "cancelled":
        parts.append(("cancelled", None))
        if row["cancelled_at"] is not None:
            parts.append(("cancelled", row["cancelled_at"] // DAY))
    if expires_at is not None:
        if status == "active" and redemptions == 0:
            parts.append(("unfilled", expires_at // DAY))
        elif status == "refillable":
            parts.append(("refillable", expires_at // DAY))
    return parts


def fill_parts(row: dict | None) -> list[Key]:
    """What a fills row counts for."""
    if row is None:
        return []
    parts: list[Key] = [("redeemed", row["redeemed_at"] // DAY)]
    if row["dispatched_at"] is not None:
        parts.append(("dispatched", None))
    if row["in_store"] == 1:
        parts.append(("handedOverInStore", None))
    if row["received_at"] is not None:
        parts.append(("received", None))
    return parts


def batch_parts(row: dict | None) -> list[Key]:
    """What a batches row counts for."""
    if row is None:
        return []
    return [("batches", None)] + ([("batchesCancelled", None)] if row["cancelled_at"] is not None else [])


class Delta:
    """Changes to the totals, added up in memory and written at once."""

    def __init__(self) -> None:
        self.counts: dict[Key, int] = defaultdict(int)

    def change(self, before: Iterable[Key], after: Iterable[Key]) -> None:
        for key in before:
            self.counts[key] -= 1
        for key in after:
            self.counts[key] += 1

    def add(self, key: Key, n: int) -> None:
        self.counts[key] += n

    def write(self, conn: Connection) -> None:
        """Adds the changes to the tables (inside the caller's transaction); a count that reaches 0 is
        removed, so the tables hold the same rows however the index was built."""
        changed = {k: n for k, n in self.counts.items() if n}
        self.counts.clear()
        scalars = sorted((name, n) for (name, day), n in changed.items() if day is None)
        days = sorted((name, day, n) for (name, day), n in changed.items() if day is not None)
        conn.executemany(
            "INSERT INTO totals (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = totals.n + excluded.n",
            scalars,
        )
        conn.executemany(
            "INSERT INTO daily_totals (series, day, n) VALUES (?, ?, ?) ON CONFLICT (series, day) "
            "DO UPDATE SET n = daily_totals.n + excluded.n",
            days,
        )
        conn.executemany("DELETE FROM totals WHERE name = ? AND n = 0", [(name,) for name, _ in scalars])
        conn.executemany(
            "DELETE FROM daily_totals WHERE series = ? AND day = ? AND n = 0", [(s, d) for s, d, _ in days]
        )


# ------------------------------------------------------------------------------ building them


def has(conn: Connection) -> bool:
    """True when the database keeps the totals (its meta carries the mark)."""
    try:
        row = conn.query_one("SELECT value FROM meta WHERE key = ?", (MARK,))
    except Exception:  # no meta table yet
        if conn.kind == "postgres":
            conn.raw.rollback()
        return False
    return row is not None and row[0] == "1"


def compute(conn: Connection, *, page: int = 20_000) -> Delta:
    """The totals of the rows stored now (a scan of prescriptions, fills, batches), as a delta from zero."""
    from rxchain.indexer.projection import BATCH_COLUMNS, FILL_COLUMNS, RX_COLUMNS

    delta = Delta()
    for table, columns, key, parts in (
        ("prescriptions", RX_COLUMNS, ("id",), rx_parts),
        ("fills", FILL_COLUMNS, ("id", "fill"), fill_parts),
        ("batches", BATCH_COLUMNS, ("root",), batch_parts),
    ):
        cols = ", ".join(columns)
        order = ", ".join(key)
        after: tuple | None = None
        while True:
            where = f"WHERE ({order}) > ({', '.join('?' * len(key))}) " if after is not None else ""
            rows = conn.query(f"SELECT {cols} FROM {table} {where}ORDER BY {order} LIMIT ?", (*(after or ()), page))
            for row in rows:
                delta.change((), parts(dict(zip(columns, row))))
            if len(rows) < page:
                break
            record = dict(zip(columns, rows[-1]))
            after = tuple(record[k] for k in key)
    delta.add(("events", None), conn.query_one("SELECT COUNT(*) FROM events")[0])
    return delta


def ensure(conn: Connection) -> bool:
    """Computes the totals of an index that has none yet (built before they existed), in one
    transaction, and marks them kept; False (nothing to do) when they are kept already."""
    if has(conn):
        return False
    with conn.transaction():
        if conn.kind == "postgres":  # SQLite's BEGIN IMMEDIATE already keeps other writers out
            conn.execute("LOCK TABLE meta IN SHARE ROW EXCLUSIVE MODE")
        if conn.query_one("SELECT value FROM meta WHERE key = ?", (MARK,)) is not None:
            return False  # another indexer did it meanwhile
        conn.execute("DELETE FROM totals")
        conn.execute("DELETE FROM daily_totals")
        compute(conn).write(conn)
        write_meta(conn, {MARK: 1})
    return True


# ------------------------------------------------------------------------------ reading them


def scalars(conn: Connection) -> dict[str, int]:
    return {name: int(n) for name, n in conn.query("SELECT name, n FROM totals")}


def expired(conn: Connection, now: int) -> dict[str, tuple[int, int]]:
    """Per expiry series (unfilled, refillable): (its rows that expired before ``now``, all its rows)."""
    today = now // DAY
    out = {series: [0, 0] for series in EXPIRY_SERIES}
    for series, before, everything in conn.query(
        "SELECT series, COALESCE(SUM(CASE WHEN day < ? THEN n ELSE 0 END), 0), COALESCE(SUM(n), 0) FROM daily_totals "
        "WHERE series IN ('unfilled', 'refillable') GROUP BY series",
        (today,),
    ):
        out[series] = [int(before), int(everything)]
    unfilled, refillable = conn.query_one(
        f"""SELECT COALESCE(SUM(CASE WHEN {EXPIRY_SERIES["unfilled"]} THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN {EXPIRY_SERIES["refillable"]} THEN 1 ELSE 0 END), 0)
        FROM prescriptions WHERE status IN ('active', 'refillable') AND expires_at >= ? AND expires_at < ?""",
        (today * DAY, now),
    )  # today's part, on the prescriptions_status index
    out["unfilled"][0] += int(unfilled)
    out["refillable"][0] += int(refillable)
    return {series: (before, everything) for series, (before, everything) in out.items()}


def _today(conn: Connection, series: str, now: int) -> int:
    """Rows of ``series`` that expired today before ``now`` (on the prescriptions_status index)."""
    today = now // DAY
    return int(
        conn.query_one(
            f"SELECT COUNT(*) FROM prescriptions WHERE {EXPIRY_SERIES[series]} AND expires_at >= ? AND expires_at < ?",
            (today * DAY, now),
        )[0]
    )


def daily(conn: Connection, now: int) -> dict[str, dict[int, int]]:
    """Per series, day -> count: issued, redeemed, cancelled, and expired (unfilled prescriptions by
    the day they expired, up to ``now``)."""
    series: dict[str, dict[int, int]] = {"issued": {}, "redeemed": {}, "cancelled": {}, "expired": {}}
    today = now // DAY
    for name, day, n in conn.query(
        "SELECT series, day, n FROM daily_totals WHERE series IN ('issued', 'redeemed', 'cancelled') "
        "OR (series = 'unfilled' AND day < ?)",
        (today,),
    ):
        series["expired" if name == "unfilled" else name][int(day)] = int(n)
    partial = _today(conn, "unfilled", now)
    if partial:
        series["expired"][today] = partial
    return series
