"""The index database: SQLite (embedded, the default) or PostgreSQL (a URL), one schema for both.

Every statement is written once, with ``?`` placeholders and SQL that both engines run (upserts with
``ON CONFLICT``, integer division for days, 0/1 for booleans); :class:`Connection` translates the
placeholders for psycopg. Nothing here knows events: :mod:`rxchain.indexer.projection` and
:mod:`rxchain.indexer.queries` do.

Database URLs::

    sqlite:///abs/path/index.sqlite    sqlite:relative/path.sqlite    path/to/index.sqlite
    postgresql://user:password@host:5432/dbname   (postgres:// too)
"""

from __future__ import annotations

import queue
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from rxchain.errors import Unavailable
from rxchain.sqlitewal import use_wal

#: Bumped when the tables change: a database of another version is rebuilt from the chain.
#: 2: DrugBoxes' lots, fills' boxes and nullifiers, claims and duplicate scans.
SCHEMA_VERSION = "2"

#: The tables, in the order they are created. Every derived row names the event(s) it comes from
#: (block number + log index, transaction hash), and every event row its block hash and time.
SCHEMA: list[str] = [
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # Blocks the indexer has seen: every block with a registry event, and every range end (a
    # checkpoint). Their hashes let a later run notice a restarted chain or a reorganisation.
    """CREATE TABLE IF NOT EXISTS blocks (
        number BIGINT PRIMARY KEY,
        hash TEXT NOT NULL,
        time BIGINT NOT NULL,
        events INTEGER NOT NULL
    )""",
    # Every registry event with its provenance. subject = the first indexed argument (the
    # prescription id, batch root or account), lower-case hex; args = every argument as JSON.
    """CREATE TABLE IF NOT EXISTS events (
        block_number BIGINT NOT NULL,
        log_index INTEGER NOT NULL,
        block_hash TEXT NOT NULL,
        block_time BIGINT NOT NULL,
        tx_hash TEXT NOT NULL,
        tx_index INTEGER NOT NULL,
        name TEXT NOT NULL,
        subject TEXT,
        args TEXT NOT NULL,
        PRIMARY KEY (block_number, log_index)
    )""",
    "CREATE INDEX IF NOT EXISTS events_subject ON events (subject)",
    "CREATE INDEX IF NOT EXISTS events_tx ON events (tx_hash)",
    # One row per prescription: where it stands as of the last indexed block.
    """CREATE TABLE IF NOT EXISTS prescriptions (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        doctor TEXT,
        hospital TEXT,
        batch_root TEXT,
        doc_hash TEXT,
        designated_pharmacy TEXT,
        expires_at BIGINT,
        fills INTEGER,
        fills_left INTEGER,
        status TEXT NOT NULL,
        redemptions INTEGER NOT NULL,
        issued_at BIGINT NOT NULL,
        issued_block BIGINT NOT NULL,
        issued_log INTEGER NOT NULL,
        issued_tx TEXT NOT NULL,
        redeemed_by TEXT,
        redeemed_at BIGINT,
        last_pharmacy TEXT,
        courier TEXT,
        dispatched_at BIGINT,
        delivered_at BIGINT,
        received_at BIGINT,
        cancelled_at BIGINT,
        cancelled_by TEXT,
        cancel_kind TEXT,
        updated_block BIGINT NOT NULL,
        updated_log INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS prescriptions_hospital ON prescriptions (hospital)",
    "CREATE INDEX IF NOT EXISTS prescriptions_batch ON prescriptions (batch_root)",
    "CREATE INDEX IF NOT EXISTS prescriptions_status ON prescriptions (status, expires_at)",
    # One row per fill (redemption) of a prescription, with its delivery trail.
    """CREATE TABLE IF NOT EXISTS fills (
        id TEXT NOT NULL,
        fill INTEGER NOT NULL,
        pharmacy TEXT NOT NULL,
        fills_left INTEGER NOT NULL,
        redeemed_at BIGINT NOT NULL,
        redeemed_block BIGINT NOT NULL,
        redeemed_tx TEXT NOT NULL,
        courier TEXT,
        dispatched_at BIGINT,
        dispatched_tx TEXT,
        delivered_by TEXT,
        delivered_at BIGINT,
        delivered_tx TEXT,
        in_store INTEGER NOT NULL,
        received_at BIGINT,
        received_by TEXT,
        received_tx TEXT,
        PRIMARY KEY (id, fill)
    )""",
    "CREATE INDEX IF NOT EXISTS fills_pharmacy ON fills (pharmacy)",
    """CREATE TABLE IF NOT EXISTS members (
        account TEXT PRIMARY KEY,
        roles_mask INTEGER NOT NULL,
        regulator INTEGER NOT NULL,
        valid_until BIGINT,
        hospital TEXT,
        admitted_by TEXT,
        admitted_at BIGINT,
        updated_at BIGINT NOT NULL,
        updated_block BIGINT NOT NULL,
        updated_log INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS batches (
        root TEXT PRIMARY KEY,
        hospital TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        fills INTEGER NOT NULL,
        count INTEGER NOT NULL,
        issued_at BIGINT NOT NULL,
        issued_block BIGINT NOT NULL,
        issued_tx TEXT NOT NULL,
        cancelled_at BIGINT,
        cancelled_by TEXT
    )""",
    # DrugBoxes (when the deployment has it, its events are indexed beside the registry's): one row per
    # lot (LotRegistered, LotRecalled).
    """CREATE TABLE IF NOT EXISTS lots (
        root TEXT PRIMARY KEY,
        manufacturer TEXT NOT NULL,
        count INTEGER NOT NULL,
        expires_at BIGINT NOT NULL,
        registered_at BIGINT NOT NULL,
        registered_block BIGINT NOT NULL,
        registered_tx TEXT NOT NULL,
        recalled_at BIGINT,
        recalled_by TEXT,
        recalled_tx TEXT
    )""",
    # One row per fill whose boxes were recorded (FillBoxesRecorded), keyed as DrugBoxes keys it: the
    # prescription id and the fills left after the fill. Its claim is on the same row, as in the
    # contract's word: claim = none, filed, approved, paid, rejected or void (FillVoided).
    """CREATE TABLE IF NOT EXISTS box_fills (
        id TEXT NOT NULL,
        fills_left INTEGER NOT NULL,
        pharmacy TEXT NOT NULL,
        boxes INTEGER NOT NULL,
        recorded_at BIGINT NOT NULL,
        recorded_block BIGINT NOT NULL,
        recorded_log INTEGER NOT NULL,
        recorded_tx TEXT NOT NULL,
        claim TEXT NOT NULL,
        insurer TEXT,
        commitment TEXT,
        filed_at BIGINT,
        filed_tx TEXT,
        approved_at BIGINT,
        approved_tx TEXT,
        paid_at BIGINT,
        payment_reference TEXT,
        paid_tx TEXT,
        rejected_at BIGINT,
        reason INTEGER,
        rejected_tx TEXT,
        voided_at BIGINT,
        voided_by TEXT,
        voided_tx TEXT,
        PRIMARY KEY (id, fills_left)
    )""",
    "CREATE INDEX IF NOT EXISTS box_fills_pharmacy ON box_fills (pharmacy)",
    "CREATE INDEX IF NOT EXISTS box_fills_insurer ON box_fills (insurer)",
    # Each recorded box's nullifier, in the order its fill recorded them: a nullifier is looked up here
    # (two fills listing one nullifier: the same box registered in two lots).
    """CREATE TABLE IF NOT EXISTS box_nullifiers (
        id TEXT NOT NULL,
        fills_left INTEGER NOT NULL,
        position INTEGER NOT NULL,
        nullifier TEXT NOT NULL,
        PRIMARY KEY (id, fills_left, position)
    )""",
    "CREATE INDEX IF NOT EXISTS box_nullifiers_nullifier ON box_nullifiers (nullifier)",
    # One row per DuplicateBoxScanned (the returned-drug alarm), with the fill that first sold the box
    # (the earliest indexed fill listing its nullifier) when the index has it.
    """CREATE TABLE IF NOT EXISTS duplicate_scans (
        block_number BIGINT NOT NULL,
        log_index INTEGER NOT NULL,
        lot TEXT NOT NULL,
        box_index BIGINT NOT NULL,
        nullifier TEXT NOT NULL,
        pharmacy TEXT NOT NULL,
        scanned_at BIGINT NOT NULL,
        tx_hash TEXT NOT NULL,
        first_id TEXT,
        first_fills_left INTEGER,
        first_pharmacy TEXT,
        first_at BIGINT,
        PRIMARY KEY (block_number, log_index)
    )""",
    "CREATE INDEX IF NOT EXISTS duplicate_scans_pharmacy ON duplicate_scans (pharmacy)",
    # The console's whole-index figures as running totals (rxchain.indexer.totals): kept by the
    # indexer in the transaction that writes the rows they count. name -> count, and per series and
    # UTC day (day = unix time // 86400) -> count.
    """CREATE TABLE IF NOT EXISTS totals (
        name TEXT PRIMARY KEY,
        n BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS daily_totals (
        series TEXT NOT NULL,
        day BIGINT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (series, day)
    )""",
]

#: Tables derived from ``events`` (rebuilt by replaying the events after a reorganisation).
DERIVED_TABLES = (
    "prescriptions",
    "fills",
    "members",
    "batches",
    "lots",
    "box_fills",
    "box_nullifiers",
    "duplicate_scans",
    "totals",
    "daily_totals",
)
ALL_TABLES = ("meta", "blocks", "events", *DERIVED_TABLES)


class DatabaseError(Unavailable):
    """The index database cannot be opened or does not hold an index."""


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL."""

    kind: str  # "sqlite" or "postgres"
    target: str  # the file path, or the libpq URL

    @classmethod
    def parse(cls, url: str | Path) -> "DatabaseURL":
        text = str(url)
        if re.match(r"^postgres(ql)?(\+\w+)?://", text):
            return cls("postgres", re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", text))
        if text.startswith("sqlite:///"):
            return cls("sqlite", text[len("sqlite://") :])
        if text.startswith("sqlite:"):
            return cls("sqlite", text[len("sqlite:") :])
        if "://" in text:
            raise DatabaseError(
                f"unsupported database URL {text!r}: use a file path, sqlite:///PATH or postgresql://..."
            )
        return cls("sqlite", text)

    def display(self) -> str:
        """The URL without a password."""
        if self.kind == "sqlite":
            return f"sqlite:///{Path(self.target).resolve()}" if self.target != ":memory:" else "sqlite::memory:"
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.target)


class Connection:
    """One connection with the small API the indexer and the console use."""

    def __init__(self, raw: Any, kind: str):
        self.raw = raw
        self.kind = kind
        self._sql_cache: dict[str, str] = {}
        self._in_tx = False

    def _sql(self, sql: str) -> str:
        if self.kind == "sqlite":
            return sql
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = sql.replace("?", "%s")
        return cached

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cur = self.raw.execute(self._sql(sql), tuple(params))
        rows = cur.fetchall()
        if self.kind == "postgres" and not self._in_tx:
            self.raw.rollback()  # end the implicit read transaction: the next read sees new data
        return rows

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        cur = self.raw.execute(self._sql(sql), tuple(params))
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row)) for row in cur.fetchall()]
        if self.kind == "postgres" and not self._in_tx:
            self.raw.rollback()
        return rows

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.raw.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if not rows:
            return
        if self.kind == "sqlite":
            self.raw.executemany(sql, rows)
        else:
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator["Connection"]:
        """All or nothing: commits at the end, rolls back on any exception (including Ctrl-C)."""
        if self.kind == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield self
        except BaseException:
            self._in_tx = False
            self.raw.rollback()
            raise
        self._in_tx = False
        self.raw.commit()

    @contextmanager
    def reading(self) -> Iterator["Connection"]:
        """Several reads in one read transaction: they see one state of the database (an indexer's
        commit between them is not half seen), and on PostgreSQL they end with one rollback instead of
        one after each read. Inside a transaction already, nothing changes."""
        if self._in_tx or (self.kind == "sqlite" and self.raw.in_transaction):
            yield self
            return
        if self.kind == "sqlite":
            self.raw.execute("BEGIN")
        self._in_tx = True
        try:
            yield self
        finally:
            self._in_tx = False
            self.raw.rollback()

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # closing a broken connection
            pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Database:
    """An index database: opens connections, creates and resets the schema, reads and writes meta."""

    def __init__(self, url: str | Path):
        self.url = DatabaseURL.parse(url)
        self.kind = self.url.kind
        if self.kind == "sqlite" and self.url.target != ":memory:":
            Path(self.url.target).parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Database({self.url.display()!r})"

    def connect(self, *, readonly: bool = False) -> Connection:
        """A new connection. ``readonly`` ones cannot write (the console's)."""
        if self.kind == "sqlite":
            if readonly:
                path = Path(self.url.target).resolve()
                if not path.is_file():
                    raise DatabaseError(f"no index database at {path}: run the indexer first (rx index run)")
                raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
            else:
                raw = sqlite3.connect(self.url.target, check_same_thread=False, timeout=30, isolation_level=None)
                use_wal(raw)
                raw.execute("PRAGMA synchronous=NORMAL")
                raw.execute("PRAGMA cache_size=-65536")  # 64 MiB
            raw.execute("PRAGMA busy_timeout=30000")
            return Connection(raw, "sqlite")
        try:
            import psycopg
        except ImportError:
            raise DatabaseError("PostgreSQL needs the Python package psycopg (pip install 'psycopg[binary]')") from None
        try:
            raw = psycopg.connect(self.url.target, autocommit=False, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise DatabaseError(f"cannot connect to {self.url.display()}: {str(exc).strip().splitlines()[0]}") from None
        if readonly:
            raw.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            raw.commit()
        return Connection(raw, "postgres")

    # ------------------------------------------------------------------------------- schema

    def ensure_schema(self, conn: Connection) -> None:
        """Creates the tables that are missing."""
        with conn.transaction():
            for statement in SCHEMA:
                conn.execute(statement)

    def drop_all(self, conn: Connection) -> None:
        """Removes every index table (a reset)."""
        with conn.transaction():
            for table in reversed(ALL_TABLES):
                conn.execute(f"DROP TABLE IF EXISTS {table}")

    @staticmethod
    def has_schema(conn: Connection) -> bool:
        try:
            conn.query("SELECT key FROM meta WHERE key = ?", ("schema_version",))
            return True
        except Exception:  # no table yet (sqlite3.OperationalError / psycopg errors)
            if conn.kind == "postgres":
                conn.raw.rollback()
            return False


def read_meta(conn: Connection) -> dict[str, str]:
    """Every meta key (empty when the database holds no index)."""
    if not Database.has_schema(conn):
        return {}
    return {key: value for key, value in conn.query("SELECT key, value FROM meta")}


def write_meta(conn: Connection, values: dict[str, Any]) -> None:
    """Sets meta keys (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [(key, str(value)) for key, value in values.items()],
    )


class ConnectionPool:
    """A few read-only connections shared by the console's request threads."""

    def __init__(self, database: Database, size: int = 4):
        self.database = database
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._size = size
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self.database.connect(readonly=True)
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok and self._idle.qsize() < self._size:
                self._idle.put(conn)
            else:
                conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def placeholders(n: int) -> str:
    return ", ".join("?" * n)
