"""Re-checking the index against a node: does every figure still follow from the chain?

:func:`verify` compares, for a random sample of indexed blocks (or all of them):

- every registry log of the block on the node with the stored events (same log indexes, names,
  arguments, transactions, block hash and time) — a missing, extra or altered event is reported;
- the last indexed block's hash;
- a sample of prescriptions and members against the registry's views (``prescription(id)``,
  ``member(account)``) called at the last indexed block, where the node still has that state;
- with DrugBoxes followed, its logs with the registry's, and a sample of lots and of fills' boxes
  and claims against its views (``lot(root)``, ``fill(rxId, fillsLeft)``) at the last indexed block;
- the derived tables against a fresh replay of the stored events.

It returns the differences found, in words (an empty list: the index holds).
"""

from __future__ import annotations

import random
import sqlite3

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from rxchain.chain.deployment import BOXES_CONTRACT, load_abi
from rxchain.chain.logs import logs_in_windows
from rxchain.indexer.db import Connection, Database, chunks, placeholders, read_meta
from rxchain.indexer.node import EventDecoder, Node, NodeError
from rxchain.indexer.projection import (
    BATCH_COLUMNS,
    BOX_FILL_COLUMNS,
    DUPLICATE_COLUMNS,
    EVENT_COLUMNS,
    FILL_COLUMNS,
    LOT_COLUMNS,
    MEMBER_COLUMNS,
    NULLIFIER_COLUMNS,
    RX_COLUMNS,
    event_from_row,
    rebuild,
)
from rxchain.core.roles import ROLE_BITS
from rxchain.core.status import Status

_PRESCRIPTION = function_signature_to_4byte_selector("prescription(bytes32)")
_MEMBER = function_signature_to_4byte_selector("member(address)")
_LOT = function_signature_to_4byte_selector("lot(bytes32)")
_FILL = function_signature_to_4byte_selector("fill(bytes32,uint8)")
#: DrugBoxes' ClaimStatus by its index in the contract's enum, as the index names it.
_CLAIM_STATUS = ("none", "filed", "approved", "rejected", "paid", "void")


def verify(
    db_url: str,
    rpc_url: str,
    *,
    sample: int | None = 200,
    seed: int | None = None,
    abi: list[dict] | None = None,
    replay: bool = True,
) -> list[str]:
    """Compares the index in ``db_url`` with the node at ``rpc_url``; returns the differences.

    ``sample``: how many indexed blocks (with events), prescriptions and members to re-read; ``None``
    re-reads all of them. ``replay`` also rebuilds the derived tables from the stored events (in
    memory) and compares them.
    """
    database = Database(db_url)
    node = Node(rpc_url)
    rng = random.Random(seed)
    problems: list[str] = []
    with database.connect(readonly=True) as conn:
        meta = read_meta(conn)
        if not meta:
            return [f"{database.url.display()} holds no index"]
        chain_id = node.chain_id()
        if int(meta["chain_id"]) != chain_id:
            return [f"the index is for chain {meta['chain_id']}, the node serves chain {chain_id}"]
        registry, last = meta["registry"], int(meta["last_block"])
        header = node.header(last)
        if header is None or header.hash != meta["last_block_hash"]:
            problems.append(
                f"the node's block {last} is not the indexed one (hash {meta['last_block_hash']}): run the indexer "
                "again, it reindexes what changed"
            )
            return problems
        abi = abi if abi is not None else load_abi()
        boxes = meta.get("boxes") or None
        if boxes:
            abi = abi + load_abi(BOXES_CONTRACT)
        decoder = EventDecoder(abi)
        addresses = [registry, boxes] if boxes else registry
        problems += _check_events(conn, node, decoder, addresses, int(meta["deploy_block"]), last, sample, rng)
        problems += _check_prescriptions(conn, node, registry, last, sample, rng)
        problems += _check_members(conn, node, registry, last, sample, rng)
        if boxes:
            problems += _check_lots(conn, node, boxes, last, sample, rng)
            problems += _check_box_fills(conn, node, boxes, last, sample, rng)
        problems += check_totals(conn)
        if replay:
            problems += _check_replay(conn)
    return problems


def check_totals(conn: Connection) -> list[str]:
    """The summary and the daily series from the running totals against a scan of the rows."""
    from rxchain.indexer import queries, totals

    if not totals.has(conn):
        return []
    problems = []
    kept, scanned = queries.summary(conn), queries.summary_scan(conn)
    for key in sorted(k for k in scanned if kept.get(k) != scanned[k]):
        problems.append(f"running totals: {key} is {kept.get(key)}, a scan of the rows says {scanned[key]}")
    kept_days, scanned_days = queries.daily(conn), queries.daily_scan(conn)
    if kept_days != scanned_days:
        differ = [a["day"] for a, b in zip(kept_days, scanned_days) if a != b] or ["the days themselves"]
        problems.append(
            f"running totals: the daily series differs from a scan of the rows ({len(kept_days)} days kept, "
            f"{len(scanned_days)} scanned; first difference: {differ[0]})"
        )
    return problems


def _check_events(
    conn, node: Node, decoder: EventDecoder, registry: str | list[str], deploy: int, last: int, sample, rng
) -> list[str]:
    problems = []
    if sample is None:  # everything: the whole range again, in slices
        numbers = None
        # in windows, a window the node refuses as too large halved (Besu's --rpc-max-logs-range)
        logs = logs_in_windows(lambda start, end: node.get_logs(registry, start, end), deploy, last, max_range=2000)
    else:
        blocks = [n for (n,) in conn.query("SELECT number FROM blocks WHERE events > 0")]
        numbers = sorted(rng.sample(blocks, min(sample, len(blocks))))
        logs = []
        for chunk in chunks(numbers, 100):
            replies = node.batch(
                [("eth_getLogs", [{"address": registry, "fromBlock": hex(n), "toBlock": hex(n)}]) for n in chunk]
            )
            for reply in replies:
                logs += reply
    fresh = {}
    for log in logs:
        event = decoder.decode(log)
        fresh[(event["block_number"], event["log_index"])] = event
    missing_times = sorted({e["block_number"] for e in fresh.values() if e["block_time"] is None})
    if missing_times:
        headers = node.headers(missing_times)
        for e in fresh.values():
            if e["block_time"] is None:
                e["block_time"] = headers[e["block_number"]].time
    stored = {}
    if numbers is None:
        rows = conn.query(f"SELECT {EVENT_COLUMNS} FROM events")
    else:
        rows = []
        for chunk in chunks(numbers, 500):
            rows += conn.query(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE block_number IN ({placeholders(len(chunk))})", chunk
            )
    for row in rows:
        event = event_from_row(row)
        stored[(event["block_number"], event["log_index"])] = event
    for key in sorted(set(fresh) - set(stored)):
        problems.append(
            f"block {key[0]} log {key[1]}: {fresh[key]['name']} (tx {fresh[key]['tx_hash']})"
            " is on chain but not in the index"
        )
    for key in sorted(set(stored) - set(fresh)):
        problems.append(
            f"block {key[0]} log {key[1]}: {stored[key]['name']} (tx {stored[key]['tx_hash']})"
            " is in the index but not on chain"
        )
    for key in sorted(set(stored) & set(fresh)):
        a, b = stored[key], fresh[key]
        diff = [
            field
            for field in ("block_hash", "block_time", "tx_hash", "tx_index", "name", "subject", "args")
            if a[field] != b[field]
        ]
        if diff:
            problems.append(f"block {key[0]} log {key[1]}: {a['name']} differs from the chain in {', '.join(diff)}")
    return problems


def _call_at(node: Node, registry: str, calls: list[bytes], block: int) -> list[str] | None:
    """eth_call results at ``block``; None when the node no longer keeps that state."""
    replies = node.batch_raw([("eth_call", [{"to": registry, "data": "0x" + c.hex()}, hex(block)]) for c in calls])
    if any("error" in r for r in replies):
        text = str(next(r for r in replies if "error" in r)["error"].get("message", "")).lower()
        if any(w in text for w in ("state", "trie", "pruned", "missing", "not available", "historical")):
            return None
        raise NodeError("eth_call", next(r for r in replies if "error" in r)["error"])
    return [r["result"] for r in replies]


def _check_prescriptions(conn, node: Node, registry: str, last: int, sample, rng) -> list[str]:
    rows = conn.query(
        "SELECT id, kind, status, fills_left, redemptions, expires_at, batch_root, cancel_kind FROM prescriptions"
    )
    if sample is not None:
        rows = rng.sample(rows, min(sample, len(rows)))
    problems = []
    for chunk in chunks(rows, 200):
        results = _call_at(node, registry, [_PRESCRIPTION + bytes.fromhex(r[0][2:]) for r in chunk], last)
        if results is None:
            return [] if not problems else problems  # state pruned: the event check stands alone
        for (rx_id, kind, status, fills_left, redemptions, expires_at, root, cancel_kind), result in zip(
            chunk, results
        ):
            _custodian, _issued, chain_expiry, chain_status, chain_left = abi_decode(
                ["address", "uint40", "uint40", "uint8", "uint8"], bytes.fromhex(result[2:])
            )
            label = Status(chain_status).label
            if chain_status == Status.NONE:  # a batched prescription the registry has not opened yet
                if (
                    kind != "batched"
                    or redemptions
                    or status not in ("active", "cancelled")
                    or (status == "cancelled" and cancel_kind != "batch")
                ):
                    problems.append(f"prescription {rx_id}: the registry does not know it, the index says {status}")
                continue
            if label != status or chain_left != fills_left or chain_expiry != expires_at:
                problems.append(
                    f"prescription {rx_id}: the registry says {label} ({chain_left} fills left, expires "
                    f"{chain_expiry}), the index {status} ({fills_left} left, expires {expires_at})"
                )
    return problems


def _check_members(conn, node: Node, registry: str, last: int, sample, rng) -> list[str]:
    rows = conn.query("SELECT account, roles_mask, valid_until, hospital FROM members WHERE admitted_at IS NOT NULL")
    if sample is not None:
        rows = rng.sample(rows, min(sample, len(rows)))
    problems = []
    for chunk in chunks(rows, 200):
        results = _call_at(node, registry, [_MEMBER + bytes(12) + bytes.fromhex(r[0][2:]) for r in chunk], last)
        if results is None:
            return problems
        for (account, mask, until, hospital), result in zip(chunk, results):
            roles, valid_until, chain_hospital = abi_decode(["uint8", "uint40", "address"], bytes.fromhex(result[2:]))
            chain_hospital = None if int(chain_hospital, 16) == 0 else to_checksum_address(chain_hospital)
            if roles != mask or valid_until != until or chain_hospital != hospital:
                names = lambda m: ",".join(n for n, b in ROLE_BITS.items() if m & b) or "none"
                problems.append(
                    f"member {account}: the registry says roles {names(roles)} until {valid_until} (hospital "
                    f"{chain_hospital}), the index {names(mask)} until {until} (hospital {hospital})"
                )
    return problems


def _check_lots(conn, node: Node, boxes: str, last: int, sample, rng) -> list[str]:
    rows = conn.query("SELECT root, manufacturer, count, expires_at, recalled_at FROM lots")
    if sample is not None:
        rows = rng.sample(rows, min(sample, len(rows)))
    problems = []
    for chunk in chunks(rows, 200):
        results = _call_at(node, boxes, [_LOT + bytes.fromhex(r[0][2:]) for r in chunk], last)
        if results is None:
            return problems
        for (root, manufacturer, count, expires_at, recalled_at), result in zip(chunk, results):
            chain = abi_decode(["address", "uint40", "uint32", "uint8", "bool"], bytes.fromhex(result[2:]))
            chain_manufacturer, chain_expiry, chain_count, _depth, chain_recalled = chain
            if (to_checksum_address(chain_manufacturer), chain_count, chain_expiry, chain_recalled) != (
                manufacturer,
                count,
                expires_at,
                recalled_at is not None,
            ):
                problems.append(
                    f"lot {root}: DrugBoxes says {chain_count} boxes by {to_checksum_address(chain_manufacturer)} "
                    f"until {chain_expiry}{', recalled' if chain_recalled else ''}; the index {count} by "
                    f"{manufacturer} until {expires_at}{', recalled' if recalled_at is not None else ''}"
                )
    return problems


def _check_box_fills(conn, node: Node, boxes: str, last: int, sample, rng) -> list[str]:
    rows = conn.query("SELECT id, fills_left, pharmacy, boxes, claim, reason FROM box_fills")
    if sample is not None:
        rows = rng.sample(rows, min(sample, len(rows)))
    problems = []
    for chunk in chunks(rows, 200):
        calls = [_FILL + bytes.fromhex(r[0][2:]) + int(r[1]).to_bytes(32, "big") for r in chunk]
        results = _call_at(node, boxes, calls, last)
        if results is None:
            return problems
        for (rx_id, fills_left, pharmacy, count, claim, reason), result in zip(chunk, results):
            chain_pharmacy, chain_boxes, chain_claim, chain_reason = abi_decode(
                ["address", "uint8", "uint8", "uint8"], bytes.fromhex(result[2:])
            )
            chain = (to_checksum_address(chain_pharmacy), chain_boxes, _CLAIM_STATUS[chain_claim], chain_reason)
            if chain != (pharmacy, count, claim, reason or 0):
                problems.append(
                    f"fill {fills_left} of {rx_id}: DrugBoxes says {chain[1]} boxes by {chain[0]}, claim {chain[2]} "
                    f"(reason {chain[3]}); the index {count} boxes by {pharmacy}, claim {claim} (reason {reason or 0})"
                )
    return problems


def _check_replay(conn: Connection) -> list[str]:
    """Replays the stored events into an in-memory database and compares the derived tables."""
    from rxchain.indexer.db import SCHEMA, Connection as Conn

    memory = Conn(sqlite3.connect(":memory:", isolation_level=None), "sqlite")
    for statement in SCHEMA:
        memory.execute(statement)
    after = -1
    while True:
        rows = conn.query(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE block_number > ? ORDER BY block_number, log_index LIMIT 50000",
            (after,),
        )
        if not rows:
            break
        memory.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({placeholders(9)})", rows)
        after = rows[-1][0]
        if len(rows) == 50000 and rows[0][0] != after:  # the last block may continue on the next page: take it whole
            memory.execute("DELETE FROM events WHERE block_number = ?", (after,))
            after -= 1
    with memory.transaction():
        rebuild(memory)
    problems = []
    tables = [
        ("prescriptions", RX_COLUMNS, 1),
        ("fills", FILL_COLUMNS, 2),
        ("members", MEMBER_COLUMNS, 1),
        ("batches", BATCH_COLUMNS, 1),
        ("lots", LOT_COLUMNS, 1),
        ("box_fills", BOX_FILL_COLUMNS, 2),
        ("box_nullifiers", NULLIFIER_COLUMNS, 3),
        ("duplicate_scans", DUPLICATE_COLUMNS, 2),
    ]
    from rxchain.indexer import totals

    if totals.has(conn):
        tables += [("totals", ("name", "n"), 1), ("daily_totals", ("series", "day", "n"), 2)]
    for table, columns, key in tables:
        cols = ", ".join(columns)
        order = ", ".join(columns[:key])
        mine = conn.query(f"SELECT {cols} FROM {table} ORDER BY {order}")
        replayed = memory.query(f"SELECT {cols} FROM {table} ORDER BY {order}")
        if len(mine) != len(replayed):
            problems.append(f"{table}: {len(mine)} rows in the index, {len(replayed)} from replaying its events")
            continue
        bad = [a[:key] for a, b in zip(mine, replayed) if tuple(a) != tuple(b)]
        if bad:
            problems.append(f"{table}: {len(bad)} rows differ from a replay of the events (first: {bad[0]})")
    memory.close()
    return problems
