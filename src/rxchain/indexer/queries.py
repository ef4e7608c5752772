"""The regulator's figures, read from the index database (never from the chain).

Every function takes a read connection and returns plain JSON-able data. "Now" is the chain time of
the last indexed block (``meta.last_block_time``): a prescription is expired when ``expires_at < now``,
as the registry judges it, and a figure is reproducible from the database alone. Days are UTC days of
block times.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone


from rxchain.audit import TRAIL_EVENTS
from rxchain.errors import BadInput, InvalidValue
from rxchain.indexer import totals as _totals
from rxchain.indexer.db import Connection, placeholders, read_meta
from rxchain.core.roles import ROLE_BITS

DAY = 86400
#: A member whose credential ends within this many days is "expiring soon".
EXPIRING_SOON_DAYS = 30
_TRAIL_NAMES = tuple(TRAIL_EVENTS)
_ACTOR_KEY = {
    "opened from batch": "doctor",
    "custody reassigned": "by",
    "custody voided": "by",
    "issued": "doctor",
    "cancelled": "by",
    "redeemed": "pharmacy",
    "dispatched": "pharmacy",
    "delivered": "by",
    "received": "relayer",
}

_STATUSES = ("active", "cancelled", "dispensed", "dispatched", "delivered", "completed", "refillable")
# An unfilled prescription: never redeemed, not cancelled.
_UNFILLED = "status = 'active' AND redemptions = 0"


class NotIndexed(BadInput, LookupError):
    """The database holds no index yet."""


def now(conn: Connection) -> int:
    """The chain time of the last indexed block."""
    try:
        row = conn.query_one("SELECT value FROM meta WHERE key = 'last_block_time'")
    except Exception as exc:  # sqlite3.OperationalError / psycopg.errors.UndefinedTable
        if "meta" in str(exc) and ("no such table" in str(exc) or "does not exist" in str(exc)):
            raise NotIndexed("the database holds no index yet: run the indexer") from None
        raise
    if row is None:
        raise NotIndexed("the database holds no index yet: run the indexer")
    return int(row[0])


def status(conn: Connection) -> dict:
    """Which chain, registry and block the figures are for."""
    meta = read_meta(conn)
    if not meta:
        raise NotIndexed("the database holds no index yet: run the indexer")
    events = (
        _totals.scalars(conn).get("events", 0)
        if meta.get(_totals.MARK) == "1"
        else conn.query_one("SELECT COUNT(*) FROM events")[0]
    )
    return {
        "chainId": int(meta["chain_id"]),
        "registry": meta["registry"],
        "boxes": meta.get("boxes") or None,
        "deployBlock": int(meta["deploy_block"]),
        "lastBlock": int(meta["last_block"]),
        "lastBlockHash": meta["last_block_hash"],
        "lastBlockTime": int(meta["last_block_time"]),
        "indexedAt": int(meta["indexed_at"]) if meta.get("indexed_at") else None,
        "events": events,
        "paused": meta.get("paused") == "1",
        "limits": {"maxValiditySeconds": int(meta["max_validity_seconds"]), "maxFills": int(meta["max_fills"])}
        if meta.get("max_fills")
        else None,
    }


def summary(conn: Connection, *, soon_days: int = EXPIRING_SOON_DAYS) -> dict:
    """The headline counts: from the running totals the indexer keeps (:mod:`rxchain.indexer.totals`),
    or by scanning the tables (:func:`summary_scan`) in a database without them."""
    with conn.reading():
        t, kept = _now_and_totals(conn)
        if not kept:
            return summary_scan(conn, soon_days=soon_days)
        counts = _totals.scalars(conn)
        expiry = _totals.expired(conn, t)
        members = _member_counts(conn, soon_days, t)
    (expired, unfilled), (refillable_expired, _) = expiry["unfilled"], expiry["refillable"]
    issued, batched = counts.get("issued", 0), counts.get("issuedBatched", 0)
    return {
        "now": t,
        "issued": issued,
        "issuedBatched": batched,
        "issuedSingle": issued - batched,
        "redeemed": counts.get("redeemed", 0),
        "fills": counts.get("fills", 0),
        "cancelled": counts.get("cancelled", 0),
        "expiredUnfilled": expired,
        "activeUnfilled": unfilled - expired,
        "refillableExpired": refillable_expired,
        "byStatus": {s: counts.get(f"status:{s}", 0) for s in _STATUSES},
        "dispatched": counts.get("dispatched", 0),
        "handedOverInStore": counts.get("handedOverInStore", 0),
        "received": counts.get("received", 0),
        "batches": counts.get("batches", 0),
        "batchesCancelled": counts.get("batchesCancelled", 0),
        **members,
    }


def _now_and_totals(conn: Connection) -> tuple[int, bool]:
    """(:func:`now`, whether the database keeps the running totals), in one read."""
    try:
        meta = dict(conn.query("SELECT key, value FROM meta WHERE key IN ('last_block_time', ?)", (_totals.MARK,)))
    except Exception:  # no meta table: now() says what is wrong
        if conn.kind == "postgres":
            conn.raw.rollback()
        return now(conn), False
    if "last_block_time" not in meta:
        raise NotIndexed("the database holds no index yet: run the indexer")
    return int(meta["last_block_time"]), meta.get(_totals.MARK) == "1"


def summary_scan(conn: Connection, *, soon_days: int = EXPIRING_SOON_DAYS) -> dict:
    """The headline counts, by scanning the prescriptions, fills and batches."""
    with conn.reading():
        return _summary_scan(conn, soon_days)


def _summary_scan(conn: Connection, soon_days: int) -> dict:
    t = now(conn)
    row = conn.query_one(
        f"""SELECT COUNT(*),
            COALESCE(SUM(CASE WHEN kind = 'batched' THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN redemptions > 0 THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(redemptions), 0),
            COALESCE(SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN {_UNFILLED} AND expires_at < ? THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN {_UNFILLED} AND expires_at >= ? THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN status = 'refillable' AND expires_at < ? THEN 1 ELSE 0 END), 0)
        FROM prescriptions""",
        (t, t, t),
    )
    by_status = {s: n for s, n in conn.query("SELECT status, COUNT(*) FROM prescriptions GROUP BY status")}
    fills = conn.query_one(
        """SELECT COUNT(*),
            COALESCE(SUM(CASE WHEN dispatched_at IS NOT NULL THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN in_store = 1 THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(CASE WHEN received_at IS NOT NULL THEN 1 ELSE 0 END), 0)
        FROM fills"""
    )
    batches = conn.query_one(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN cancelled_at IS NOT NULL THEN 1 ELSE 0 END), 0) FROM batches"
    )
    return {
        "now": t,
        "issued": row[0],
        "issuedBatched": row[1],
        "issuedSingle": row[0] - row[1],
        "redeemed": row[2],
        "fills": row[3],
        "cancelled": row[4],
        "expiredUnfilled": row[5],
        "activeUnfilled": row[6],
        "refillableExpired": row[7],
        "byStatus": {s: by_status.get(s, 0) for s in _STATUSES},
        "dispatched": fills[1],
        "handedOverInStore": fills[2],
        "received": fills[3],
        "batches": batches[0],
        "batchesCancelled": batches[1],
        **_member_counts(conn, soon_days, t),
    }


def _member_counts(conn: Connection, soon_days: int, t: int) -> dict:
    members = _members(conn, soon_days, t)
    return {
        "members": sum(1 for m in members if m["roles"] and m["roles"] != ["regulator"]),
        "membersExpiringSoon": sum(1 for m in members if m["standing"] == "expiring"),
        "membersExpired": sum(1 for m in members if m["standing"] == "expired"),
        "expiringSoonDays": soon_days,
    }


def daily(conn: Connection) -> list[dict]:
    """Per UTC day: prescriptions issued, fills redeemed, prescriptions cancelled, and unfilled ones
    that expired that day (by their expiry). From the running totals (:mod:`rxchain.indexer.totals`),
    or by scanning (:func:`daily_scan`) in a database without them."""
    with conn.reading():
        t, kept = _now_and_totals(conn)
        return _days(_totals.daily(conn, t)) if kept else daily_scan(conn)


def daily_scan(conn: Connection) -> list[dict]:
    """:func:`daily` by scanning the prescriptions and fills."""
    t = now(conn)
    series: dict[str, dict[int, int]] = {
        "issued": dict(conn.query("SELECT issued_at / 86400, COUNT(*) FROM prescriptions GROUP BY issued_at / 86400")),
        "redeemed": dict(conn.query("SELECT redeemed_at / 86400, COUNT(*) FROM fills GROUP BY redeemed_at / 86400")),
        "cancelled": dict(
            conn.query(
                "SELECT cancelled_at / 86400, COUNT(*) FROM prescriptions WHERE status = 'cancelled' "
                "GROUP BY cancelled_at / 86400"
            )
        ),
        "expired": dict(
            conn.query(
                f"SELECT expires_at / 86400, COUNT(*) FROM prescriptions WHERE {_UNFILLED} AND expires_at < ? "
                "GROUP BY expires_at / 86400",
                (t,),
            )
        ),
    }
    return _days(series)


def _days(series: dict[str, dict[int, int]]) -> list[dict]:
    days = set().union(*(s.keys() for s in series.values()))
    if not days:
        return []
    first, last = int(min(days)), int(max(days))
    return [{"day": _day(d), **{name: int(s.get(d, 0)) for name, s in series.items()}} for d in range(first, last + 1)]


def hospitals(conn: Connection) -> list[dict]:
    """Per issuing hospital: issued (of them batched), redeemed, cancelled, expired unfilled, still open."""
    t = now(conn)
    rows = conn.query(
        f"""SELECT hospital, COUNT(*),
            SUM(CASE WHEN kind = 'batched' THEN 1 ELSE 0 END),
            SUM(CASE WHEN redemptions > 0 THEN 1 ELSE 0 END),
            SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END),
            SUM(CASE WHEN {_UNFILLED} AND expires_at < ? THEN 1 ELSE 0 END),
            SUM(CASE WHEN {_UNFILLED} AND expires_at >= ? THEN 1 ELSE 0 END),
            COUNT(DISTINCT doctor)
        FROM prescriptions GROUP BY hospital""",
        (t, t),
    )
    out = [
        {
            "hospital": h,
            "issued": n,
            "batched": int(b),
            "redeemed": int(r),
            "cancelled": int(c),
            "expiredUnfilled": int(x),
            "activeUnfilled": int(a),
            "doctors": int(d),
        }
        for h, n, b, r, c, x, a, d in rows
    ]
    out.sort(key=lambda r: (-r["issued"], r["hospital"] or ""))
    return out


def pharmacies(conn: Connection) -> list[dict]:
    """Per pharmacy: fills redeemed, prescriptions filled, dispatched, handed over in store, receipts
    confirmed, and the median dispatch-to-receipt time of its deliveries."""
    rows = conn.query(
        """SELECT pharmacy, COUNT(*), COUNT(DISTINCT id),
            SUM(CASE WHEN dispatched_at IS NOT NULL THEN 1 ELSE 0 END),
            SUM(in_store),
            SUM(CASE WHEN received_at IS NOT NULL THEN 1 ELSE 0 END)
        FROM fills GROUP BY pharmacy"""
    )
    durations: dict[str, list[int]] = {}
    for pharmacy, seconds in conn.query(
        "SELECT pharmacy, received_at - dispatched_at FROM fills "
        "WHERE dispatched_at IS NOT NULL AND received_at IS NOT NULL"
    ):
        durations.setdefault(pharmacy, []).append(int(seconds))
    designated = dict(
        conn.query(
            "SELECT designated_pharmacy, COUNT(*) FROM prescriptions WHERE designated_pharmacy IS NOT NULL "
            "GROUP BY designated_pharmacy"
        )
    )
    out = []
    for pharmacy, fills, filled, dispatched, in_store, received in rows:
        spans = sorted(durations.get(pharmacy, []))
        out.append(
            {
                "pharmacy": pharmacy,
                "fills": fills,
                "prescriptions": filled,
                "dispatched": int(dispatched),
                "handedOverInStore": int(in_store),
                "received": int(received),
                "deliveries": len(spans),
                "medianDeliverySeconds": _percentile(spans, 50),
                "designated": int(designated.get(pharmacy, 0)),
            }
        )
    for pharmacy, n in designated.items():
        if not any(r["pharmacy"] == pharmacy for r in out):
            out.append(
                {
                    "pharmacy": pharmacy,
                    "fills": 0,
                    "prescriptions": 0,
                    "dispatched": 0,
                    "handedOverInStore": 0,
                    "received": 0,
                    "deliveries": 0,
                    "medianDeliverySeconds": None,
                    "designated": int(n),
                }
            )
    out.sort(key=lambda r: (-r["fills"], r["pharmacy"]))
    return out


#: Histogram bin widths to choose from (seconds).
_BIN_WIDTHS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def delivery_times(conn: Connection, *, max_bins: int = 24) -> dict:
    """Dispatch-to-receipt times of delivered fills (the courier's part, until the patient's receipt):
    a histogram with round bin widths, and percentiles."""
    spans = sorted(
        int(s)
        for (s,) in conn.query(
            "SELECT received_at - dispatched_at FROM fills WHERE dispatched_at IS NOT NULL AND received_at IS NOT NULL"
        )
    )
    if not spans:
        return {
            "count": 0,
            "bins": [],
            "binSeconds": None,
            "min": None,
            "p50": None,
            "p90": None,
            "max": None,
            "mean": None,
        }
    width = next((w for w in _BIN_WIDTHS if spans[-1] / w < max_bins), _BIN_WIDTHS[-1])
    n_bins = min(max_bins, spans[-1] // width + 1)
    counts = [0] * n_bins
    for s in spans:
        counts[min(s // width, n_bins - 1)] += 1
    return {
        "count": len(spans),
        "binSeconds": width,
        "bins": [{"from": i * width, "to": (i + 1) * width, "count": c} for i, c in enumerate(counts)],
        "min": spans[0],
        "p50": _percentile(spans, 50),
        "p90": _percentile(spans, 90),
        "max": spans[-1],
        "mean": round(sum(spans) / len(spans), 1),
    }


def member_list(conn: Connection, *, soon_days: int = EXPIRING_SOON_DAYS) -> list[dict]:
    """Every account ever admitted (and the regulator), with roles and credential end, soonest first.
    standing: good, expiring (within ``soon_days``), expired, revoked (no role left)."""
    return _members(conn, soon_days, now(conn))


def _members(conn: Connection, soon_days: int, t: int) -> list[dict]:
    out = []
    for row in conn.query_dicts("SELECT * FROM members"):
        roles = [name for name, bit in ROLE_BITS.items() if row["roles_mask"] & bit]
        if row["regulator"]:
            roles.append("regulator")
        until = row["valid_until"]
        if not roles:
            standing = "revoked"
        elif until is None:
            standing = "good"  # the regulator alone: no credential end date
        elif until < t:
            standing = "expired"
        elif until - t <= soon_days * DAY:
            standing = "expiring"
        else:
            standing = "good"
        out.append(
            {
                "account": row["account"],
                "roles": roles,
                "validUntil": until,
                "hospital": row["hospital"],
                "admittedAt": row["admitted_at"],
                "admittedBy": row["admitted_by"],
                "standing": standing,
                "daysLeft": None if until is None else round((until - t) / DAY, 1),
                "updatedBlock": row["updated_block"],
            }
        )
    order = {"expired": 0, "expiring": 1, "good": 2, "revoked": 3}
    out.sort(
        key=lambda m: (order[m["standing"]], m["validUntil"] if m["validUntil"] is not None else 2**62, m["account"])
    )
    return out


def expired_unfilled(conn: Connection, *, limit: int = 200) -> dict:
    """Prescriptions past expiry that were never filled (not cancelled), most recently expired first."""
    t = now(conn)
    total = conn.query_one(f"SELECT COUNT(*) FROM prescriptions WHERE {_UNFILLED} AND expires_at < ?", (t,))[0]
    rows = conn.query_dicts(
        f"""SELECT id, kind, hospital, doctor, designated_pharmacy, batch_root, issued_at, expires_at,
            issued_tx, issued_block
        FROM prescriptions WHERE {_UNFILLED} AND expires_at < ? ORDER BY expires_at DESC, id LIMIT ?""",
        (t, int(limit)),
    )
    return {"total": total, "rows": [_camel(r) for r in rows]}


def prescription(conn: Connection, rx_id: str) -> dict | None:
    """One prescription's indexed record (with its fills), or None."""
    rx_id = normalize_id(rx_id)
    row = conn.query_dicts("SELECT * FROM prescriptions WHERE id = ?", (rx_id,))
    if not row:
        return None
    record = _camel(row[0])
    t = now(conn)
    record["expired"] = (
        row[0]["status"] in ("active", "refillable") and row[0]["expires_at"] is not None and row[0]["expires_at"] < t
    )
    record["fillsDetail"] = [
        _camel(f) for f in conn.query_dicts("SELECT * FROM fills WHERE id = ? ORDER BY fill", (rx_id,))
    ]
    return record


def trail(conn: Connection, rx_id: str) -> list[dict]:
    """The prescription's trail from the indexed events: the same steps, actors, blocks, times,
    transactions and details as :func:`rxchain.audit.trail` reads from the chain (``TrailStep.as_json``)."""
    rx_id = normalize_id(rx_id)
    rows = conn.query(
        f"""SELECT name, args, block_number, block_hash, block_time, tx_hash, log_index FROM events
        WHERE subject = ? AND name IN ({placeholders(len(_TRAIL_NAMES))}) ORDER BY block_number, log_index""",
        (rx_id, *_TRAIL_NAMES),
    )
    steps: list[dict] = []
    for name, args_json, block_number, block_hash, block_time, tx_hash, log_index in rows:
        args = {k: v for k, v in json.loads(args_json).items() if k != "id"}
        label = TRAIL_EVENTS[name]
        if label == "issued in batch":
            # The hospital of the BatchIssued of the same transaction: two hospitals may announce one root.
            found = conn.query_one(
                "SELECT args FROM events WHERE name = 'BatchIssued' AND subject = ? AND tx_hash = ?",
                (args["root"], tx_hash),
            )
            actor = json.loads(found[0])["hospital"] if found else None
        else:
            actor = args.pop(_ACTOR_KEY[label])
        if label == "delivered" and steps and steps[-1]["step"] == "redeemed":
            label = "handed over in store"
        steps.append(
            {
                "step": label,
                "actor": actor,
                "blockNumber": block_number,
                "blockHash": block_hash,
                "blockTime": block_time,
                "txHash": tx_hash,
                "logIndex": log_index,
                "details": args,
            }
        )
    return steps


# ------------------------------------------------------------------- one member's own records

#: A prescription's outcome, as its hospital follows it (first that holds, in this order).
_OUTCOME = f"""CASE
    WHEN status = 'cancelled' THEN 'cancelled'
    WHEN {_UNFILLED} AND expires_at < ? THEN 'expired unfilled'
    WHEN received_at IS NOT NULL THEN 'received'
    WHEN delivered_at IS NOT NULL THEN 'delivered'
    WHEN dispatched_at IS NOT NULL THEN 'dispatched'
    WHEN redemptions > 0 THEN 'redeemed'
    ELSE 'open' END"""


def hospital_outcomes(conn: Connection, hospital: str, *, limit: int = 500) -> dict:
    """What became of ``hospital``'s prescriptions (issued by its doctors, or in its batches): counts
    by outcome, and the most recent ``limit`` with where and when they were redeemed, dispatched,
    delivered, received or cancelled, or that they expired unfilled."""
    t = now(conn)
    counts = {
        outcome: 0
        for outcome in ("open", "redeemed", "dispatched", "delivered", "received", "cancelled", "expired unfilled")
    }
    counts.update(
        dict(conn.query(f"SELECT {_OUTCOME}, COUNT(*) FROM prescriptions WHERE hospital = ? GROUP BY 1", (t, hospital)))
    )
    rows = conn.query_dicts(
        f"""SELECT id, kind, doctor, designated_pharmacy, issued_at, expires_at, fills, redemptions,
            redeemed_by, redeemed_at, last_pharmacy, courier, dispatched_at, delivered_at, received_at, cancelled_at,
            cancelled_by, {_OUTCOME} AS outcome
        FROM prescriptions WHERE hospital = ? ORDER BY issued_at DESC, id LIMIT ?""",
        (t, hospital, int(limit)),
    )
    return {
        "hospital": hospital,
        "now": t,
        "issued": sum(counts.values()),
        "byOutcome": counts,
        "doctors": conn.query_one("SELECT COUNT(DISTINCT doctor) FROM prescriptions WHERE hospital = ?", (hospital,))[
            0
        ],
        "rows": [_camel(r) for r in rows],
    }


def pharmacy_activity(conn: Connection, pharmacy: str, *, limit: int = 500) -> dict:
    """``pharmacy``'s own fills and deliveries: counts, the median dispatch-to-receipt time, and the
    most recent ``limit`` fills."""
    t = now(conn)
    row = conn.query_one(
        """SELECT COUNT(*), COUNT(DISTINCT id),
            COALESCE(SUM(CASE WHEN dispatched_at IS NOT NULL THEN 1 ELSE 0 END), 0),
            COALESCE(SUM(in_store), 0),
            COALESCE(SUM(CASE WHEN received_at IS NOT NULL THEN 1 ELSE 0 END), 0)
        FROM fills WHERE pharmacy = ?""",
        (pharmacy,),
    )
    spans = sorted(
        int(s)
        for (s,) in conn.query(
            "SELECT received_at - dispatched_at FROM fills WHERE pharmacy = ? "
            "AND dispatched_at IS NOT NULL AND received_at IS NOT NULL",
            (pharmacy,),
        )
    )
    rows = conn.query_dicts(
        """SELECT id, fill, redeemed_at, redeemed_tx, courier, dispatched_at, delivered_by, delivered_at, in_store,
            received_at
        FROM fills WHERE pharmacy = ? ORDER BY redeemed_at DESC, id, fill LIMIT ?""",
        (pharmacy, int(limit)),
    )
    return {
        "pharmacy": pharmacy,
        "now": t,
        "fills": row[0],
        "prescriptions": row[1],
        "dispatched": int(row[2]),
        "handedOverInStore": int(row[3]),
        "received": int(row[4]),
        "deliveries": len(spans),
        "medianDeliverySeconds": _percentile(spans, 50),
        "rows": [_camel(r) for r in rows],
    }


def concerns(conn: Connection, rx_id: str, *, hospital: str | None = None, pharmacy: str | None = None) -> bool:
    """True if prescription ``rx_id`` is ``hospital``'s (it issued it) or ``pharmacy``'s (it filled it)."""
    rx_id = normalize_id(rx_id)
    if hospital is not None:
        return (
            conn.query_one("SELECT 1 FROM prescriptions WHERE id = ? AND hospital = ?", (rx_id, hospital)) is not None
        )
    if pharmacy is not None:
        return (
            conn.query_one("SELECT 1 FROM fills WHERE id = ? AND pharmacy = ? LIMIT 1", (rx_id, pharmacy)) is not None
        )
    return False


# ------------------------------------------------------------------ DrugBoxes: claims and alarms

#: A claim's statuses as the index names them (``box_fills.claim``), in the order a claim moves.
CLAIM_STATUSES = ("filed", "approved", "paid", "rejected", "void")

_CLAIM_COUNTS = """COUNT(*),
    COALESCE(SUM(CASE WHEN claim IN ('filed', 'approved', 'paid', 'rejected') THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN claim = 'filed' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN claim IN ('approved', 'paid') THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN claim = 'approved' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN claim = 'paid' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN claim = 'rejected' THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN claim = 'void' THEN 1 ELSE 0 END), 0)"""


def _claim_counts(row) -> dict:
    fills, filed, pending, approved, awaiting, paid, rejected, void = (int(v) for v in row)
    return {
        "fillsWithBoxes": fills,
        "unclaimed": fills - filed - void,
        "filed": filed,
        "pending": pending,
        "approved": approved,
        "awaitingPayment": awaiting,
        "paid": paid,
        "rejected": rejected,
        "void": void,
    }


def claims(conn: Connection, *, limit: int = 200) -> dict:
    """DrugBoxes' insurance claims: how many were filed, approved (of them still awaiting the payment's
    stamp, and paid), rejected, and how many fills the regulator voided (never claimable); per insurer
    and per pharmacy; and the ``limit`` most recently moved claims and voided fills, with their times,
    payment reference or rejection reason. ``filed`` counts every claim ever filed, whatever became
    of it; ``pending`` those awaiting the insurer."""
    with conn.reading():
        t = now(conn)
        totals = _claim_counts(conn.query_one(f"SELECT {_CLAIM_COUNTS} FROM box_fills"))
        by_insurer = [
            {"insurer": insurer, **_claim_counts(rest)}
            for insurer, *rest in conn.query(
                f"SELECT insurer, {_CLAIM_COUNTS} FROM box_fills WHERE insurer IS NOT NULL GROUP BY insurer"
            )
        ]
        by_pharmacy = [
            {"pharmacy": pharmacy, **_claim_counts(rest)}
            for pharmacy, *rest in conn.query(f"SELECT pharmacy, {_CLAIM_COUNTS} FROM box_fills GROUP BY pharmacy")
        ]
        moved = "COALESCE(b.voided_at, b.rejected_at, b.paid_at, b.approved_at, b.filed_at)"
        rows = conn.query_dicts(
            f"""SELECT b.id, f.fill, b.fills_left, b.pharmacy, b.insurer, b.claim AS status, b.boxes, b.commitment,
                b.recorded_at, b.filed_at, b.approved_at, b.paid_at, b.rejected_at, b.voided_at, b.voided_by,
                b.payment_reference, b.reason, {moved} AS updated_at,
                COALESCE(b.voided_tx, b.rejected_tx, b.paid_tx, b.approved_tx, b.filed_tx) AS updated_tx
            FROM box_fills b LEFT JOIN fills f ON f.id = b.id AND f.fills_left = b.fills_left
            WHERE b.claim <> 'none' ORDER BY {moved} DESC, b.id, b.fills_left LIMIT ?""",
            (int(limit),),
        )
    by_insurer.sort(key=lambda r: (-r["filed"], r["insurer"]))
    by_pharmacy.sort(key=lambda r: (-r["filed"], -r["fillsWithBoxes"], r["pharmacy"]))
    return {
        "now": t,
        **totals,
        "byInsurer": by_insurer,
        "byPharmacy": by_pharmacy,
        "total": totals["filed"] + totals["void"],
        "rows": [_camel(r) for r in rows],
    }


def box_alarms(conn: Connection, *, limit: int = 200) -> dict:
    """DrugBoxes' "returned drug" alarms: the duplicate scans pharmacies reported (a box scanned after
    its sale) by pharmacy and by UTC day, the ``limit`` most recent with the fill that first sold the
    box; the boxes whose nullifier two fills recorded (the same box registered in two lots: a cloned
    lot); and the recalled lots."""
    with conn.reading():
        t = now(conn)
        total = conn.query_one("SELECT COUNT(*) FROM duplicate_scans")[0]
        by_pharmacy = [
            {"pharmacy": p, "duplicates": int(n), "lastAt": int(last)}
            for p, n, last in conn.query(
                "SELECT pharmacy, COUNT(*), MAX(scanned_at) FROM duplicate_scans GROUP BY pharmacy"
            )
        ]
        by_day = dict(
            conn.query("SELECT scanned_at / 86400, COUNT(*) FROM duplicate_scans GROUP BY scanned_at / 86400")
        )
        recent = conn.query_dicts(
            """SELECT lot, box_index, nullifier, pharmacy, scanned_at, tx_hash, block_number, first_id,
                first_fills_left, first_pharmacy, first_at
            FROM duplicate_scans ORDER BY block_number DESC, log_index DESC LIMIT ?""",
            (int(limit),),
        )
        cloned_rows = conn.query(
            """SELECT n.nullifier, n.id, n.fills_left, f.pharmacy, f.recorded_at, f.recorded_tx, f.recorded_block,
                f.recorded_log
            FROM box_nullifiers n JOIN box_fills f ON f.id = n.id AND f.fills_left = n.fills_left
            WHERE n.nullifier IN (SELECT nullifier FROM box_nullifiers GROUP BY nullifier HAVING COUNT(*) > 1)
            ORDER BY n.nullifier, f.recorded_block, f.recorded_log"""
        )
        lots = conn.query_one("SELECT COUNT(*) FROM lots")[0]
        recalled = conn.query_dicts(
            """SELECT root, manufacturer, count, expires_at, registered_at, recalled_at, recalled_by, recalled_tx
            FROM lots WHERE recalled_at IS NOT NULL ORDER BY recalled_at DESC, root"""
        )
    cloned: dict[str, list[dict]] = {}
    for nullifier, rx_id, fills_left, pharmacy, at, tx_hash, _block, _log in cloned_rows:
        cloned.setdefault(nullifier, []).append(
            {"id": rx_id, "fillsLeft": fills_left, "pharmacy": pharmacy, "recordedAt": at, "txHash": tx_hash}
        )
    by_pharmacy.sort(key=lambda r: (-r["duplicates"], r["pharmacy"]))
    return {
        "now": t,
        "duplicates": total,
        "byPharmacy": by_pharmacy,
        "byDay": [{"day": d["day"], "duplicates": d["duplicates"]} for d in _days({"duplicates": by_day})],
        "rows": [
            {
                "lot": r["lot"],
                "index": r["box_index"],
                "nullifier": r["nullifier"],
                "pharmacy": r["pharmacy"],
                "scannedAt": r["scanned_at"],
                "txHash": r["tx_hash"],
                "blockNumber": r["block_number"],
                "firstSale": None
                if r["first_id"] is None
                else {
                    "id": r["first_id"],
                    "fillsLeft": r["first_fills_left"],
                    "pharmacy": r["first_pharmacy"],
                    "at": r["first_at"],
                },
            }
            for r in recent
        ],
        "clonedBoxes": len(cloned),
        "cloned": [{"nullifier": n, "fills": fills} for n, fills in cloned.items()],
        "lots": lots,
        "recalledLots": len(recalled),
        "recalled": [_camel(r) for r in recalled],
    }


def has_transaction(conn: Connection, tx_hash: str) -> bool:
    """True if an indexed event came from transaction ``tx_hash``."""
    return conn.query_one("SELECT 1 FROM events WHERE tx_hash = ? LIMIT 1", (tx_hash.lower(),)) is not None


def counts(conn: Connection) -> dict[str, int]:
    """Row counts of every table (for reports and tests)."""
    return {
        t: conn.query_one(f"SELECT COUNT(*) FROM {t}")[0]
        for t in (
            "events",
            "blocks",
            "prescriptions",
            "fills",
            "members",
            "batches",
            "lots",
            "box_fills",
            "box_nullifiers",
            "duplicate_scans",
        )
    }


def normalize_id(value: str) -> str:
    """``0x`` + 64 lower-case hex digits; ValueError otherwise."""
    text = value.strip().lower()
    raw = text[2:] if text.startswith("0x") else text
    if len(raw) != 64 or any(c not in "0123456789abcdef" for c in raw):
        raise InvalidValue(f"{value!r} is not a prescription id (0x + 64 hex digits)")
    return "0x" + raw


def _percentile(values: list[int], pct: float) -> float | None:
    """Nearest-rank-interpolated percentile of sorted ``values``."""
    if not values:
        return None
    k = (len(values) - 1) * pct / 100
    lo, hi = math.floor(k), math.ceil(k)
    return float(values[lo]) if lo == hi else round(values[lo] + (values[hi] - values[lo]) * (k - lo), 1)


def _day(day_number: int) -> str:
    return datetime.fromtimestamp(int(day_number) * DAY, timezone.utc).strftime("%Y-%m-%d")


def _camel(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        head, *rest = key.split("_")
        out[head + "".join(w.capitalize() for w in rest)] = value
    return out
