"""Following the registry's events from a node into the index database.

One block range at a time, each in one database transaction: the range's logs (one ``eth_getLogs``),
their decoded events with provenance, the derived rows, the blocks seen and the new last block with
its hash. Stopping at any moment (Ctrl-C, a crash, a killed process) loses at most the range in
flight, and the next run resumes after the last committed block; running again adds nothing.

Before each range the indexer checks that the node still has the last indexed block with the hash it
stored. When it does not:

- some recent blocks were replaced (a reorganisation): the newest stored block the node still has is
  the fork point; events after it are removed, the derived tables are rebuilt from the remaining
  events, and indexing resumes from there;
- the deploy block itself differs, or no stored block matches (the devnet was restarted and the
  registry deployed again): the whole index is reset and rebuilt from the deploy block, with a message
  that says so.

With DrugBoxes beside the registry (``boxes``, the deployment record's field), each range's one log
query asks for both contracts' logs (an address list), so its events follow the same ranges, the
same checks and the same rebuilds; the address is kept in the index's meta, and an index that did not
follow it is rebuilt from the deploy block once it is given. Without it the index is the registry's
alone, as before.

Range sizes adapt: they grow while ranges hold few logs and halve when a range holds too many or the
node refuses it (Besu limits eth_getLogs to ``--rpc-max-logs-range`` blocks).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from eth_utils import to_checksum_address

from rxchain.chain.deployment import BOXES_CONTRACT, load_abi
from rxchain.errors import Unavailable
from rxchain.indexer import totals
from rxchain.indexer.db import SCHEMA_VERSION, Connection, Database, placeholders, read_meta, write_meta
from rxchain.indexer.node import EventDecoder, Header, Node, NodeError
from rxchain.indexer.projection import EVENT_COLUMNS, Projection, event_row, rebuild


class IndexerError(Unavailable):
    """The index cannot be (re)built as asked."""


class _Moved(Exception):
    """The range's starting point changed before it was written."""


@dataclass
class IndexStats:
    """What one :func:`index` call did."""

    chain_id: int = 0
    registry: str = ""
    database: str = ""
    first_block: int | None = None  # first block indexed by this call
    last_block: int | None = None  # last block indexed (overall)
    head: int | None = None  # the node's head when last looked at
    blocks: int = 0
    events: int = 0
    ranges: int = 0
    seconds: float = 0.0
    resets: int = 0
    reorgs: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return round(self.events / self.seconds, 1) if self.seconds else 0.0

    def as_json(self) -> dict:
        return {**asdict(self), "events_per_s": self.events_per_s}


class Indexer:
    """Indexes one registry from one node into one database."""

    def __init__(
        self,
        rpc_url: str,
        registry: str,
        deploy_block: int,
        db_url: str,
        *,
        abi: list[dict] | None = None,
        boxes: str | None = None,
        confirmations: int = 0,
        initial_range: int = 1000,
        max_range: int = 5000,
        target_logs: int = 5000,
        reset: bool = False,
        log: Callable[[str], None] | None = None,
    ):
        self.node = Node(rpc_url)
        self.registry = to_checksum_address(registry)
        self.deploy_block = int(deploy_block)
        self.database = Database(db_url)
        self._abi = abi if abi is not None else load_abi()
        self.boxes = to_checksum_address(boxes) if boxes else None
        self.decoder = EventDecoder(self._abi)
        self.confirmations = confirmations
        self.max_range = max(1, max_range)
        self.range = max(1, min(initial_range, self.max_range))
        self.target_logs = target_logs
        self.log = log or (lambda message: None)
        self.stats = IndexStats(registry=self.registry, database=self.database.url.display())
        self._want_reset = reset
        self.conn: Connection | None = None

    # ---------------------------------------------------------------------------- lifecycle

    def open(self) -> "Indexer":
        if self.conn is None:
            self.conn = self.database.connect()
            self._prepare()
        return self

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> "Indexer":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, message: str) -> None:
        self.stats.messages.append(message)
        self.log(message)

    def _prepare(self) -> None:
        """Checks the database belongs to this chain and registry (or makes it so)."""
        conn = self.conn
        chain_id = self.node.chain_id()
        self.stats.chain_id = chain_id
        meta = read_meta(conn)
        if self._want_reset and meta:
            self._say(f"reset asked: dropping the index in {self.stats.database}")
            self.database.drop_all(conn)
            meta = {}
        if meta and meta.get("schema_version") != SCHEMA_VERSION:
            self._say(
                f"the index was built by another version (schema {meta.get('schema_version')}, now {SCHEMA_VERSION})"
                ": rebuilding it"
            )
            self.database.drop_all(conn)
            meta = {}
        if meta and (meta.get("registry") != self.registry or int(meta.get("chain_id", 0)) != chain_id):
            old_registry, old_chain = meta.get("registry"), int(meta.get("chain_id", 0))
            still_there = old_chain == chain_id and self.node.code(old_registry) not in ("0x", "", None)
            if still_there:
                raise IndexerError(
                    f"{self.stats.database} indexes registry {old_registry} (chain {old_chain}), which is still live "
                    f"on this node; this is registry {self.registry}: use another database, or reset this one "
                    "(rx index run --reset)"
                )
            self._say(
                f"the indexed registry {old_registry} (chain {old_chain}) is not on this node any more (a restarted "
                f"devnet?): resetting the index for registry {self.registry} on chain {chain_id}"
            )
            self.stats.resets += 1
            self.database.drop_all(conn)
            meta = {}
        if meta and self.boxes is None and meta.get("boxes"):
            self.boxes = meta["boxes"]  # the index follows DrugBoxes already: it goes on doing so
        elif meta and self.boxes is not None and meta.get("boxes") != self.boxes:
            self._say(
                f"the index did not follow DrugBoxes {self.boxes} (it followed {meta.get('boxes') or 'none'}): "
                f"rebuilding it from block {self.deploy_block} with DrugBoxes' events"
            )
            self.stats.resets += 1
            self.database.drop_all(conn)
            meta = {}
        if self.boxes is not None:
            self.decoder = EventDecoder(self._abi + load_abi(BOXES_CONTRACT))
        self.database.ensure_schema(conn)
        if not meta and not self._initialise(chain_id):
            self._prepare()  # another indexer initialised the same new database first: check what it wrote
        elif meta and totals.ensure(conn):
            self._say("the index had no running totals (built by an earlier version): counted them from its rows")

    def _initialise(self, chain_id: int) -> bool:
        """Writes the new index's meta; False (nothing written) when another indexer got there first."""
        header = self.node.header(self.deploy_block)
        parent = self.node.header(self.deploy_block - 1) if self.deploy_block > 0 else None
        if header is None:
            raise IndexerError(
                f"the node has no block {self.deploy_block} (the registry's deploy block): wrong node or deployment?"
            )
        if self.node.code(self.registry) in ("0x", "", None):
            raise IndexerError(
                f"no contract at {self.registry} on chain {chain_id}: the devnet was reset? deploy again"
            )
        with self.conn.transaction():
            if self.conn.kind == "postgres":  # SQLite's BEGIN IMMEDIATE already keeps other writers out
                self.conn.execute("LOCK TABLE meta IN SHARE ROW EXCLUSIVE MODE")
            if self.conn.query_one("SELECT value FROM meta WHERE key = 'schema_version'") is not None:
                return False
            write_meta(
                self.conn,
                {
                    "schema_version": SCHEMA_VERSION,
                    "chain_id": chain_id,
                    "registry": self.registry,
                    "deploy_block": self.deploy_block,
                    "deploy_block_hash": header.hash,
                    "last_block": self.deploy_block - 1,
                    "last_block_hash": header.parent_hash,
                    "last_block_time": parent.time if parent else header.time,
                    "paused": 0,
                    totals.MARK: 1,
                    **({"boxes": self.boxes} if self.boxes else {}),
                },
            )
        return True

    # ------------------------------------------------------------------------------ running

    def run(
        self,
        *,
        to_block: int | None = None,
        follow: bool = False,
        stop: threading.Event | None = None,
        poll_interval: float = 1.0,
        progress: Callable[[IndexStats], None] | None = None,
    ) -> IndexStats:
        """Indexes up to ``to_block`` (default: the head less confirmations); with ``follow``, keeps
        following new blocks until ``stop`` is set."""
        self.open()
        started = time.perf_counter()
        stop = stop or threading.Event()
        moved = 0
        try:
            while not stop.is_set():
                head = self.node.block_number() - self.confirmations
                self.stats.head = head
                target = head if to_block is None else min(head, to_block)
                self._check_continuity()
                if self.last_block() < target and not self._catch_up(target, stop, progress):
                    moved += 1  # the chain changed under a range: look again (a reorganisation, a restart)
                    if moved > 10:
                        raise IndexerError("the node's chain keeps changing under the indexer: is it the right node?")
                    stop.wait(min(0.1 * moved, 1.0))
                    continue
                moved = 0
                if not follow or (to_block is not None and self.last_block() >= to_block):
                    break
                stop.wait(poll_interval)
        finally:
            self.stats.seconds += time.perf_counter() - started
            if self.conn is not None:
                self.stats.last_block = self.last_block()
        return self.stats

    @property
    def addresses(self) -> list[str]:
        """The contracts whose logs are indexed: the registry, and DrugBoxes when followed."""
        return [self.registry, self.boxes] if self.boxes else [self.registry]

    def last_block(self) -> int:
        row = self.conn.query_one("SELECT value FROM meta WHERE key = 'last_block'")
        return int(row[0]) if row else self.deploy_block - 1

    def _catch_up(self, target: int, stop: threading.Event, progress) -> bool:
        """Indexes ranges up to ``target``; False when a range found the chain changed (nothing written)."""
        start = self.last_block() + 1
        while start <= target and not stop.is_set():
            end = min(start + self.range - 1, target)
            try:
                logs = self.node.get_logs(self.addresses, start, end)
            except NodeError as exc:
                if end > start and _too_much(exc):
                    self.range = max(1, (end - start + 1) // 2)
                    continue
                raise
            # a big answer is written in slices of whole blocks (each its own transaction), not re-read
            for slice_start, slice_end, part in _slices(start, end, logs, self.target_logs):
                if not self._commit_range(slice_start, slice_end, part):
                    return False
                self.stats.ranges += 1
                self.stats.blocks += slice_end - slice_start + 1
                self.stats.events += len(part)
                if self.stats.first_block is None:
                    self.stats.first_block = slice_start
                self.stats.last_block = slice_end
                if progress is not None:
                    progress(self.stats)
                if stop.is_set():
                    return True
            if len(logs) < self.target_logs // 2:
                self.range = min(self.max_range, self.range * 2)
            elif len(logs) > self.target_logs:
                self.range = max(1, self.range // 2)
            start = end + 1
        return True

    def _commit_range(self, start: int, end: int, logs: list[dict]) -> bool:
        """Writes one range in one transaction; False (nothing written) if the chain moved under it, or
        another indexer wrote it first."""
        try:
            return self._write_range(start, end, logs)
        except _Moved:
            return False

    def _write_range(self, start: int, end: int, logs: list[dict]) -> bool:
        events = [self.decoder.decode(log) for log in logs if not log.get("removed")]
        events.sort(key=lambda e: (e["block_number"], e["log_index"]))
        stored_last = self.conn.query_one("SELECT value FROM meta WHERE key = 'last_block_hash'")[0]
        need = {start - 1, end} | {e["block_number"] for e in events if e["block_time"] is None}
        headers = self.node.headers(sorted(n for n in need if n >= 0))
        last = headers.get(end)
        if last is None:
            return False
        if start > 0:
            before = headers.get(start - 1)
            if before is None or before.hash != stored_last:
                return False
        blocks: dict[int, tuple[str, int, int]] = {}
        for e in events:
            if e["block_time"] is None:
                header = headers[e["block_number"]]
                if header is None or header.hash != e["block_hash"]:
                    return False
                e["block_time"] = header.time
            known = blocks.get(e["block_number"])
            if known is not None and known[0] != e["block_hash"]:
                return False
            blocks[e["block_number"]] = (e["block_hash"], e["block_time"], (known[2] if known else 0) + 1)
        if end in blocks and blocks[end][0] != last.hash:
            return False
        blocks.setdefault(end, (last.hash, last.time, 0))
        conn = self.conn
        with conn.transaction():
            # another indexer on the same database may have committed this range meanwhile: then skip it
            # (SQLite's BEGIN IMMEDIATE and PostgreSQL's row lock make this read-and-write atomic)
            lock = " FOR UPDATE" if conn.kind == "postgres" else ""
            current = conn.query_one(f"SELECT value FROM meta WHERE key = 'last_block'{lock}")
            if current is None or int(current[0]) != start - 1:
                raise _Moved()
            conn.executemany(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({placeholders(9)}) ON CONFLICT DO NOTHING",
                [event_row(e) for e in events],
            )
            conn.executemany(
                "INSERT INTO blocks (number, hash, time, events) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (number) DO UPDATE SET "
                "hash = excluded.hash, time = excluded.time, events = excluded.events",
                [(n, h, t, c) for n, (h, t, c) in sorted(blocks.items())],
            )
            projection = Projection(conn)
            projection.apply_all(events)
            projection.flush()
            counted = totals.Delta()
            counted.add(("events", None), len(events))
            counted.write(conn)
            write_meta(
                conn,
                {
                    "last_block": end,
                    "last_block_hash": last.hash,
                    "last_block_time": last.time,
                    "indexed_at": int(time.time()),
                },
            )
            if self.stats.ranges % 200 == 199:  # keep the newest checkpoints of empty ranges only
                conn.execute(
                    "DELETE FROM blocks WHERE events = 0 AND number < (SELECT MIN(number) FROM "
                    "(SELECT number FROM blocks WHERE events = 0 ORDER BY number DESC LIMIT 256) AS recent)"
                )
        return True

    # ---------------------------------------------------------------------- continuity, reorgs

    def _check_continuity(self) -> None:
        meta = read_meta(self.conn)
        last, last_hash = int(meta["last_block"]), meta["last_block_hash"]
        indexed_from = int(meta["deploy_block"])
        deploy_header = self.node.header(indexed_from)
        if deploy_header is None or deploy_header.hash != meta["deploy_block_hash"]:
            self._reset(
                f"the chain's block {indexed_from} (where the index starts) no longer has the indexed hash "
                f"{meta['deploy_block_hash'][:18]}… (a restarted devnet?): resetting the index and reindexing from "
                f"block {self.deploy_block}"
            )
            return
        if indexed_from != self.deploy_block:  # same chain, same registry: the index keeps its own start
            self.deploy_block = indexed_from
        if last < self.deploy_block:
            return
        header = self.node.header(last)
        if header is not None and header.hash == last_hash:
            return
        # Some blocks were replaced: the newest stored block the node still has is where they forked.
        stored = self.conn.query(
            "SELECT number, hash FROM blocks WHERE number <= ? ORDER BY number DESC LIMIT 256", (last,)
        )
        fork = None
        for start in range(0, len(stored), 64):
            chunk = stored[start : start + 64]
            headers = self.node.headers([n for n, _ in chunk])
            for number, stored_hash in chunk:
                found = headers.get(number)
                if found is not None and found.hash == stored_hash:
                    fork = found
                    break
            if fork is not None:
                break
        if fork is None:
            self._reset(
                f"none of the last {len(stored)} indexed blocks is on the node's chain any more (a restarted devnet?): "
                f"resetting the index and reindexing from block {self.deploy_block}"
            )
            return
        removed = self.conn.query_one("SELECT COUNT(*) FROM events WHERE block_number > ?", (fork.number,))[0]
        with self.conn.transaction():
            self.conn.execute("DELETE FROM events WHERE block_number > ?", (fork.number,))
            self.conn.execute("DELETE FROM blocks WHERE number > ?", (fork.number,))
            rebuild(self.conn)
            write_meta(
                self.conn, {"last_block": fork.number, "last_block_hash": fork.hash, "last_block_time": fork.time}
            )
        self.stats.reorgs += 1
        self._say(
            f"reorganisation: the blocks after {fork.number} were replaced (indexed up to {last}); removed {removed} "
            f"events from them, rebuilt the tables, and reindexing from block {fork.number + 1}"
        )

    def _reset(self, message: str) -> None:
        self._say(message)
        self.stats.resets += 1
        self.database.drop_all(self.conn)
        self.database.ensure_schema(self.conn)
        self._initialise(self.stats.chain_id or self.node.chain_id())


def _slices(start: int, end: int, logs: list[dict], target: int):
    """[start, end] cut at block boundaries into pieces of about ``target`` logs (a block is never split)."""
    if len(logs) <= target:
        yield start, end, logs
        return
    piece: list[dict] = []
    piece_start = start
    for i, log in enumerate(logs):
        piece.append(log)
        number = int(log["blockNumber"], 16)
        following = int(logs[i + 1]["blockNumber"], 16) if i + 1 < len(logs) else None
        if len(piece) >= target and following is not None and following != number:
            yield piece_start, number, piece
            piece, piece_start = [], number + 1
    yield piece_start, end, piece


def _too_much(exc: NodeError) -> bool:
    text = str(exc.error.get("message", "")).lower()
    return any(
        word in text for word in ("range", "limit", "too many", "exceed", "more than", "too large", "timeout", "size")
    )


def index(
    rpc_url: str,
    registry: str,
    deploy_block: int,
    db_url: str,
    *,
    follow: bool = False,
    to_block: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[IndexStats], None] | None = None,
    log: Callable[[str], None] | None = None,
    reset: bool = False,
    confirmations: int = 0,
    poll_interval: float = 1.0,
    max_range: int = 5000,
    abi: list[dict] | None = None,
    boxes: str | None = None,
) -> IndexStats:
    """Indexes ``registry``'s events from the node at ``rpc_url`` into ``db_url`` (SQLite path or
    postgresql:// URL), from the last indexed block (or ``deploy_block``) to the head (or ``to_block``).

    ``follow`` keeps following new blocks until ``stop`` is set (or Ctrl-C). ``progress(stats)`` is
    called after each committed range, ``log(message)`` for each notice (resets, reorganisations).
    ``reset`` drops the index first. ``boxes``: DrugBoxes' address, whose events are indexed beside the
    registry's (an index that followed it keeps following it without being told again).
    """
    with Indexer(
        rpc_url,
        registry,
        deploy_block,
        db_url,
        abi=abi,
        boxes=boxes,
        confirmations=confirmations,
        max_range=max_range,
        reset=reset,
        log=log,
    ) as indexer:
        return indexer.run(to_block=to_block, follow=follow, stop=stop, poll_interval=poll_interval, progress=progress)


__all__ = ["Header", "IndexStats", "Indexer", "IndexerError", "index"]
