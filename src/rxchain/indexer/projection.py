"""From events to the derived tables: prescriptions, fills, members, batches.

The derived tables are a pure function of the ``events`` table: the indexer applies each block
range's events here inside the range's transaction, and after a reorganisation the same code
replays the stored events. A :class:`Projection` loads the rows a range touches in a few queries,
applies the events in order in memory, and writes the changed rows back with batched upserts.

Statuses follow the registry (``rxchain.core.status.Status`` labels): active, cancelled, dispensed,
dispatched, delivered, completed, refillable. Two things the chain leaves implicit are made explicit:

- a batched prescription exists from its ``PrescriptionBatched`` event (the registry stores nothing
  for it until its first fill); its hospital, expiry and fills come from the batch's ``BatchIssued``;
- ``BatchCancelled`` voids the batch's unopened prescriptions: they become ``cancelled`` here with
  ``cancel_kind = 'batch'`` (the registry's view answers "unknown" for them, and refuses them).

DrugBoxes' events (indexed beside the registry's when the deployment has it) fill ``lots``,
``box_fills`` (a fill's boxes and its claim, keyed by the prescription id and the fills left after the
fill, as the contract keys it), ``box_nullifiers`` and ``duplicate_scans`` (with the fill that first
sold the box: the earliest indexed fill that lists its nullifier).

"Expired" is not a status: it is computed at query time against the chain time of the last indexed
block (``expires_at < now``), as the registry does.
"""

from __future__ import annotations

import json
from typing import Any

try:  # pinned in requirements.lock; the same compact JSON as json.dumps(separators=(",", ":")), faster
    from msgspec.json import encode as _encode

    def _dumps(value: Any) -> str:
        return _encode(value).decode()
except ImportError:  # pragma: no cover

    def _dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))


from rxchain.core.ids import ZERO_ADDRESS
from rxchain.indexer import totals
from rxchain.indexer.db import DERIVED_TABLES, Connection, chunks, placeholders, write_meta
from rxchain.core.roles import REGULATOR_ROLE, ROLE_BITS, ROLES

_ROLE_BIT_BY_ID = {"0x" + role.hex(): ROLE_BITS[name] for name, role in ROLES.items()}
_REGULATOR = "0x" + REGULATOR_ROLE.hex()

RX_COLUMNS = (
    "id",
    "kind",
    "doctor",
    "hospital",
    "batch_root",
    "doc_hash",
    "designated_pharmacy",
    "expires_at",
    "fills",
    "fills_left",
    "status",
    "redemptions",
    "issued_at",
    "issued_block",
    "issued_log",
    "issued_tx",
    "redeemed_by",
    "redeemed_at",
    "last_pharmacy",
    "courier",
    "dispatched_at",
    "delivered_at",
    "received_at",
    "cancelled_at",
    "cancelled_by",
    "cancel_kind",
    "updated_block",
    "updated_log",
)
FILL_COLUMNS = (
    "id",
    "fill",
    "pharmacy",
    "fills_left",
    "redeemed_at",
    "redeemed_block",
    "redeemed_tx",
    "courier",
    "dispatched_at",
    "dispatched_tx",
    "delivered_by",
    "delivered_at",
    "delivered_tx",
    "in_store",
    "received_at",
    "received_by",
    "received_tx",
)
MEMBER_COLUMNS = (
    "account",
    "roles_mask",
    "regulator",
    "valid_until",
    "hospital",
    "admitted_by",
    "admitted_at",
    "updated_at",
    "updated_block",
    "updated_log",
)
BATCH_COLUMNS = (
    "root",
    "hospital",
    "expires_at",
    "fills",
    "count",
    "issued_at",
    "issued_block",
    "issued_tx",
    "cancelled_at",
    "cancelled_by",
)

#: Events that touch a prescription row (their subject is the id).
RX_EVENTS = frozenset(
    {
        "PrescriptionIssued",
        "PrescriptionBatched",
        "PrescriptionOpened",
        "PrescriptionCancelled",
        "PrescriptionRedeemed",
        "PrescriptionDispatched",
        "PrescriptionDelivered",
        "ReceiptConfirmed",
        "CustodyReassigned",
        "CustodyVoided",
    }
)
#: DrugBoxes' events about a fill (their subject is the prescription id, ``fillsLeft`` names the fill).
BOX_FILL_EVENTS = frozenset(
    {"FillBoxesRecorded", "ClaimFiled", "ClaimApproved", "ClaimPaid", "ClaimRejected", "FillVoided"}
)
LOT_EVENTS = frozenset({"LotRegistered", "LotRecalled"})
LOT_COLUMNS = (
    "root",
    "manufacturer",
    "count",
    "expires_at",
    "registered_at",
    "registered_block",
    "registered_tx",
    "recalled_at",
    "recalled_by",
    "recalled_tx",
)
BOX_FILL_COLUMNS = (
    "id",
    "fills_left",
    "pharmacy",
    "boxes",
    "recorded_at",
    "recorded_block",
    "recorded_log",
    "recorded_tx",
    "claim",
    "insurer",
    "commitment",
    "filed_at",
    "filed_tx",
    "approved_at",
    "approved_tx",
    "paid_at",
    "payment_reference",
    "paid_tx",
    "rejected_at",
    "reason",
    "rejected_tx",
    "voided_at",
    "voided_by",
    "voided_tx",
)
NULLIFIER_COLUMNS = ("id", "fills_left", "position", "nullifier")
DUPLICATE_COLUMNS = (
    "block_number",
    "log_index",
    "lot",
    "box_index",
    "nullifier",
    "pharmacy",
    "scanned_at",
    "tx_hash",
    "first_id",
    "first_fills_left",
    "first_pharmacy",
    "first_at",
)
MEMBER_EVENTS = frozenset({"MemberAdmitted", "CredentialRenewed", "RoleGranted", "RoleRevoked"})
BATCH_EVENTS = frozenset({"BatchIssued", "BatchCancelled"})


def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders(len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_UPSERT_RX = _upsert("prescriptions", RX_COLUMNS, ("id",))
_UPSERT_FILL = _upsert("fills", FILL_COLUMNS, ("id", "fill"))
_UPSERT_MEMBER = _upsert("members", MEMBER_COLUMNS, ("account",))
_UPSERT_BATCH = _upsert("batches", BATCH_COLUMNS, ("root",))
_UPSERT_LOT = _upsert("lots", LOT_COLUMNS, ("root",))
_UPSERT_BOX_FILL = _upsert("box_fills", BOX_FILL_COLUMNS, ("id", "fills_left"))
_UPSERT_NULLIFIER = _upsert("box_nullifiers", NULLIFIER_COLUMNS, ("id", "fills_left", "position"))
_UPSERT_DUPLICATE = _upsert("duplicate_scans", DUPLICATE_COLUMNS, ("block_number", "log_index"))


def payment_reference(word: str) -> str | None:
    """A ``paymentReference`` (bytes32 hex) as the ASCII text the insurer stamped; None for zero."""
    raw = bytes.fromhex(word[2:])
    if not any(raw):
        return None
    text = raw.rstrip(b"\0")
    return text.decode("ascii") if text.isascii() and text.decode("ascii").isprintable() else word


class Projection:
    """Applies one block range's events to the derived tables (inside the caller's transaction)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.rx: dict[str, dict] = {}
        self.fills: dict[tuple[str, int], dict] = {}
        self.members: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.meta: dict[str, Any] = {}
        self._dirty_rx: set[str] = set()
        self._dirty_fills: set[tuple[str, int]] = set()
        self._dirty_members: set[str] = set()
        self._dirty_batches: set[str] = set()
        self._pending_batch: dict[str, list[str]] = {}
        self.lots: dict[str, dict] = {}
        self.box_fills: dict[tuple[str, int], dict] = {}
        self.nullifiers: list[tuple] = []
        self.duplicates: list[tuple] = []
        self._dirty_lots: set[str] = set()
        self._dirty_box_fills: set[tuple[str, int]] = set()
        # nullifier -> (id, fills left, pharmacy, time, block, log) of the earliest fill listing it
        self._first_sale: dict[str, tuple] = {}
        # What each stored row counts for in the running totals (rxchain.indexer.totals), as stored:
        # a row missing here is not in the database yet.
        self._stored_rx: dict[str, list] = {}
        self._stored_fills: dict[tuple[str, int], list] = {}
        self._stored_batches: dict[str, list] = {}

    # ------------------------------------------------------------------------------ loading

    def prefetch(self, events: list[dict]) -> None:
        """Loads every existing row the events touch, in a few queries."""
        ids = sorted({e["subject"] for e in events if e["name"] in RX_EVENTS} - set(self.rx))
        roots = sorted({e["subject"] for e in events if e["name"] in BATCH_EVENTS})
        accounts = sorted({str(e["args"]["account"]) for e in events if e["name"] in MEMBER_EVENTS} - set(self.members))
        for chunk in chunks(ids):
            for row in self.conn.query_dicts(
                f"SELECT * FROM prescriptions WHERE id IN ({placeholders(len(chunk))})", chunk
            ):
                self.rx[row["id"]] = row
                self._stored_rx[row["id"]] = totals.rx_parts(row)
            for row in self.conn.query_dicts(f"SELECT * FROM fills WHERE id IN ({placeholders(len(chunk))})", chunk):
                self.fills[(row["id"], row["fill"])] = row
                self._stored_fills[(row["id"], row["fill"])] = totals.fill_parts(row)
        for chunk in chunks(roots):
            for row in self.conn.query_dicts(
                f"SELECT * FROM batches WHERE root IN ({placeholders(len(chunk))})", chunk
            ):
                self.batches[row["root"]] = row
                self._stored_batches[row["root"]] = totals.batch_parts(row)
            for row in self.conn.query_dicts(
                f"SELECT * FROM prescriptions WHERE batch_root IN ({placeholders(len(chunk))})", chunk
            ):
                self._stored_rx[row["id"]] = totals.rx_parts(row)
                self.rx.setdefault(row["id"], row)
        for chunk in chunks(accounts):
            for row in self.conn.query_dicts(
                f"SELECT * FROM members WHERE account IN ({placeholders(len(chunk))})", chunk
            ):
                self.members[row["account"]] = row
        self._prefetch_boxes(events)

    def _prefetch_boxes(self, events: list[dict]) -> None:
        lots = sorted({e["subject"] for e in events if e["name"] in LOT_EVENTS} - set(self.lots))
        fill_ids = sorted({e["subject"] for e in events if e["name"] in BOX_FILL_EVENTS})
        scanned = sorted(
            {str(e["args"]["nullifier"]) for e in events if e["name"] == "DuplicateBoxScanned"} - set(self._first_sale)
        )
        for chunk in chunks(lots):
            for row in self.conn.query_dicts(f"SELECT * FROM lots WHERE root IN ({placeholders(len(chunk))})", chunk):
                self.lots[row["root"]] = row
        for chunk in chunks(fill_ids):
            for row in self.conn.query_dicts(
                f"SELECT * FROM box_fills WHERE id IN ({placeholders(len(chunk))})", chunk
            ):
                self.box_fills.setdefault((row["id"], row["fills_left"]), row)
        for chunk in chunks(scanned):
            for row in self.conn.query(
                "SELECT n.nullifier, f.id, f.fills_left, f.pharmacy, f.recorded_at, f.recorded_block, f.recorded_log "
                "FROM box_nullifiers n JOIN box_fills f ON f.id = n.id AND f.fills_left = n.fills_left "
                f"WHERE n.nullifier IN ({placeholders(len(chunk))})",
                chunk,
            ):
                known = self._first_sale.get(row[0])
                if known is None or (row[5], row[6]) < (known[4], known[5]):
                    self._first_sale[row[0]] = tuple(row[1:])

    # ----------------------------------------------------------------------------- applying

    def apply_all(self, events: list[dict]) -> None:
        self.prefetch(events)
        for event in events:
            self.apply(event)

    def apply(self, e: dict) -> None:
        handler = getattr(self, "_on_" + e["name"], None)
        if handler is not None:
            handler(e, e["args"])

    def _rx(self, e: dict, rx_id: str) -> dict:
        row = self.rx.get(rx_id)
        if row is None:  # an event for a prescription this index never saw issued: keep it, marked
            row = self.rx[rx_id] = self._new_rx(e, rx_id, "unknown")
        row["updated_block"], row["updated_log"] = e["block_number"], e["log_index"]
        self._dirty_rx.add(rx_id)
        return row

    @staticmethod
    def _new_rx(e: dict, rx_id: str, kind: str) -> dict:
        row = dict.fromkeys(RX_COLUMNS)
        row.update(
            id=rx_id,
            kind=kind,
            status="active",
            redemptions=0,
            issued_at=e["block_time"],
            issued_block=e["block_number"],
            issued_log=e["log_index"],
            issued_tx=e["tx_hash"],
            updated_block=e["block_number"],
            updated_log=e["log_index"],
        )
        return row

    def _fill(self, rx: dict) -> dict | None:
        n = rx["redemptions"]
        if not n:
            return None
        key = (rx["id"], n)
        self._dirty_fills.add(key)
        return self.fills.get(key)

    def _on_PrescriptionIssued(self, e: dict, a: dict) -> None:  # _on_<event>: named after the contract's events
        rx_id = e["subject"]
        existing = self.rx.get(rx_id)
        row = self.rx[rx_id] = self._new_rx(e, rx_id, "single")
        if existing is not None and existing["kind"] == "batched":  # the same id also in a batch
            row["batch_root"] = existing["batch_root"]
        row.update(
            doctor=a["doctor"],
            hospital=a["hospital"],
            doc_hash=a["docHash"],
            expires_at=a["expiresAt"],
            designated_pharmacy=None if a["designatedPharmacy"] == ZERO_ADDRESS else a["designatedPharmacy"],
            fills=a["fills"],
            fills_left=a["fills"],
        )
        self._dirty_rx.add(rx_id)

    def _on_PrescriptionBatched(self, e: dict, a: dict) -> None:
        rx_id = e["subject"]
        if rx_id in self.rx and self.rx[rx_id]["kind"] == "single":
            return  # issued singly before: the single issue is the one the registry stores
        row = self.rx[rx_id] = self._new_rx(e, rx_id, "batched")
        row["batch_root"] = a["root"]
        self._pending_batch.setdefault(a["root"], []).append(rx_id)
        self._dirty_rx.add(rx_id)

    def _on_BatchIssued(self, e: dict, a: dict) -> None:
        root = e["subject"]
        known = self.batches.get(root)
        if known is not None and known["hospital"] != a["hospital"]:
            return  # the same root announced by another hospital: a batch of its own; the first one is kept
        self.batches[root] = {
            "root": root,
            "hospital": a["hospital"],
            "expires_at": a["expiresAt"],
            "fills": a["fills"],
            "count": a["count"],
            "issued_at": e["block_time"],
            "issued_block": e["block_number"],
            "issued_tx": e["tx_hash"],
            "cancelled_at": None,
            "cancelled_by": None,
        }
        self._dirty_batches.add(root)
        for rx_id in self._pending_batch.pop(root, []):
            row = self.rx[rx_id]
            row.update(hospital=a["hospital"], expires_at=a["expiresAt"], fills=a["fills"], fills_left=a["fills"])

    def _on_PrescriptionOpened(self, e: dict, a: dict) -> None:
        # The registry names the doctor, and the doctor's hospital whose batch the record came from.
        row = self._rx(e, e["subject"])
        row.update(doctor=a["doctor"], hospital=a["hospital"], batch_root=a["root"])

    def _on_BatchCancelled(self, e: dict, a: dict) -> None:
        root = e["subject"]
        batch = self.batches.get(root)
        if batch is not None and batch["hospital"] != a["hospital"]:
            return  # another hospital's batch with the same root: this index keeps the first one per root
        if batch is not None:
            batch.update(cancelled_at=e["block_time"], cancelled_by=a["by"])
            self._dirty_batches.add(root)
        for row in self.rx.values():
            if (
                row["batch_root"] == root
                and row["kind"] == "batched"
                and row["status"] == "active"
                and row["redemptions"] == 0
            ):
                row.update(
                    status="cancelled",
                    cancelled_at=e["block_time"],
                    cancelled_by=a["by"],
                    cancel_kind="batch",
                    updated_block=e["block_number"],
                    updated_log=e["log_index"],
                )
                self._dirty_rx.add(row["id"])

    def _on_PrescriptionCancelled(self, e: dict, a: dict) -> None:
        row = self._rx(e, e["subject"])
        if row["kind"] == "batched" and row["redemptions"] == 0:
            row["fills_left"] = 0  # cancelBatched opens the record with no fills
        row.update(status="cancelled", cancelled_at=e["block_time"], cancelled_by=a["by"], cancel_kind="prescription")

    def _on_PrescriptionRedeemed(self, e: dict, a: dict) -> None:
        row = self._rx(e, e["subject"])
        row["redemptions"] += 1
        if row["redemptions"] == 1:
            row.update(redeemed_by=a["pharmacy"], redeemed_at=e["block_time"])
        row.update(
            status="dispensed",
            fills_left=a["fillsLeft"],
            last_pharmacy=a["pharmacy"],
            courier=None,
            dispatched_at=None,
            delivered_at=None,
        )
        key = (row["id"], row["redemptions"])
        fill = dict.fromkeys(FILL_COLUMNS)
        fill.update(
            id=row["id"],
            fill=row["redemptions"],
            pharmacy=a["pharmacy"],
            fills_left=a["fillsLeft"],
            redeemed_at=e["block_time"],
            redeemed_block=e["block_number"],
            redeemed_tx=e["tx_hash"],
            in_store=0,
        )
        self.fills[key] = fill
        self._dirty_fills.add(key)

    def _on_PrescriptionDispatched(self, e: dict, a: dict) -> None:
        row = self._rx(e, e["subject"])
        row.update(status="dispatched", courier=a["courier"], dispatched_at=e["block_time"])
        fill = self._fill(row)
        if fill is not None:
            fill.update(courier=a["courier"], dispatched_at=e["block_time"], dispatched_tx=e["tx_hash"])

    def _on_PrescriptionDelivered(self, e: dict, a: dict) -> None:
        row = self._rx(e, e["subject"])
        row.update(status="delivered", delivered_at=e["block_time"])
        fill = self._fill(row)
        if fill is not None:
            fill.update(
                delivered_by=a["by"],
                delivered_at=e["block_time"],
                delivered_tx=e["tx_hash"],
                in_store=1 if fill["dispatched_at"] is None else 0,
            )

    def _on_CustodyReassigned(self, e: dict, a: dict) -> None:
        # The regulator moved the drugs from a revoked or lapsed holder to another of the same role.
        row = self._rx(e, e["subject"])
        if row["status"] == "dispatched":
            row["courier"] = a["to"]
        else:
            row["last_pharmacy"] = a["to"]

    def _on_CustodyVoided(self, e: dict, a: dict) -> None:
        # The regulator voided the fill a revoked or lapsed holder had; the fills left stay redeemable.
        row = self._rx(e, e["subject"])
        row.update(status="refillable" if a["fillsLeft"] else "cancelled", courier=None)
        if not a["fillsLeft"]:
            row.update(cancelled_at=e["block_time"], cancelled_by=a["by"], cancel_kind="custody")

    def _on_ReceiptConfirmed(self, e: dict, a: dict) -> None:
        row = self._rx(e, e["subject"])
        row.update(status="completed" if a["fillsLeft"] == 0 else "refillable", received_at=e["block_time"])
        fill = self._fill(row)
        if fill is not None:
            fill.update(received_at=e["block_time"], received_by=a["relayer"], received_tx=e["tx_hash"])

    # ---------------------------------------------------------------------------- DrugBoxes

    def _on_LotRegistered(self, e: dict, a: dict) -> None:
        root = e["subject"]
        if root in self.lots:
            return  # the contract registers a root once; the first registration stands
        self.lots[root] = {
            "root": root,
            "manufacturer": a["manufacturer"],
            "count": a["count"],
            "expires_at": a["expiresAt"],
            "registered_at": e["block_time"],
            "registered_block": e["block_number"],
            "registered_tx": e["tx_hash"],
            "recalled_at": None,
            "recalled_by": None,
            "recalled_tx": None,
        }
        self._dirty_lots.add(root)

    def _on_LotRecalled(self, e: dict, a: dict) -> None:
        lot = self.lots.get(e["subject"])
        if lot is None or lot["recalled_at"] is not None:
            return
        lot.update(recalled_at=e["block_time"], recalled_by=a["by"], recalled_tx=e["tx_hash"])
        self._dirty_lots.add(lot["root"])

    def _box_fill(self, e: dict) -> dict | None:
        key = (e["subject"], e["args"]["fillsLeft"])
        row = self.box_fills.get(key)
        if row is not None:
            self._dirty_box_fills.add(key)
        return row

    def _on_FillBoxesRecorded(self, e: dict, a: dict) -> None:
        key = (e["subject"], a["fillsLeft"])
        row = dict.fromkeys(BOX_FILL_COLUMNS)
        row.update(
            id=key[0],
            fills_left=key[1],
            pharmacy=a["pharmacy"],
            boxes=len(a["nullifiers"]),
            recorded_at=e["block_time"],
            recorded_block=e["block_number"],
            recorded_log=e["log_index"],
            recorded_tx=e["tx_hash"],
            claim="none",
        )
        self.box_fills[key] = row
        self._dirty_box_fills.add(key)
        for position, nullifier in enumerate(a["nullifiers"]):
            self.nullifiers.append((key[0], key[1], position, nullifier))
            self._first_sale.setdefault(
                nullifier, (key[0], key[1], a["pharmacy"], e["block_time"], e["block_number"], e["log_index"])
            )

    def _on_ClaimFiled(self, e: dict, a: dict) -> None:
        row = self._box_fill(e)
        if row is not None:
            row.update(
                claim="filed",
                insurer=a["insurer"],
                commitment=a["commitment"],
                filed_at=e["block_time"],
                filed_tx=e["tx_hash"],
            )

    def _on_ClaimApproved(self, e: dict, a: dict) -> None:
        row = self._box_fill(e)
        if row is not None:
            row.update(claim="approved", approved_at=e["block_time"], approved_tx=e["tx_hash"])

    def _on_ClaimPaid(self, e: dict, a: dict) -> None:
        row = self._box_fill(e)
        if row is not None:
            row.update(
                claim="paid",
                paid_at=e["block_time"],
                payment_reference=payment_reference(a["paymentReference"]),
                paid_tx=e["tx_hash"],
            )

    def _on_ClaimRejected(self, e: dict, a: dict) -> None:
        row = self._box_fill(e)
        if row is not None:
            row.update(claim="rejected", rejected_at=e["block_time"], reason=a["reason"], rejected_tx=e["tx_hash"])

    def _on_FillVoided(self, e: dict, a: dict) -> None:
        row = self._box_fill(e)
        if row is not None:
            row.update(claim="void", voided_at=e["block_time"], voided_by=a["by"], voided_tx=e["tx_hash"])

    def _on_DuplicateBoxScanned(self, e: dict, a: dict) -> None:
        first = self._first_sale.get(a["nullifier"])
        self.duplicates.append(
            (
                e["block_number"],
                e["log_index"],
                e["subject"],
                a["index"],
                a["nullifier"],
                a["pharmacy"],
                e["block_time"],
                e["tx_hash"],
                *(first[:4] if first is not None else (None, None, None, None)),
            )
        )

    # ------------------------------------------------------------------------------ members

    def _member(self, e: dict, account: str) -> dict:
        row = self.members.get(account)
        if row is None:
            row = self.members[account] = dict.fromkeys(MEMBER_COLUMNS)
            row.update(account=account, roles_mask=0, regulator=0)
        row.update(updated_at=e["block_time"], updated_block=e["block_number"], updated_log=e["log_index"])
        self._dirty_members.add(account)
        return row

    def _on_MemberAdmitted(self, e: dict, a: dict) -> None:
        row = self._member(e, a["account"])
        row["roles_mask"] |= _ROLE_BIT_BY_ID.get(a["role"], 0)
        row["valid_until"] = a["validUntil"]
        if a["hospital"] != ZERO_ADDRESS:
            row["hospital"] = a["hospital"]
        if row["admitted_at"] is None:
            row.update(admitted_at=e["block_time"], admitted_by=a["admittedBy"])

    def _on_CredentialRenewed(self, e: dict, a: dict) -> None:
        self._member(e, a["account"])["valid_until"] = a["validUntil"]

    def _on_RoleGranted(self, e: dict, a: dict) -> None:
        if a["role"] == _REGULATOR:  # member roles are recorded from MemberAdmitted (same transaction)
            self._member(e, a["account"])["regulator"] = 1

    def _on_RoleRevoked(self, e: dict, a: dict) -> None:
        row = self._member(e, a["account"])
        if a["role"] == _REGULATOR:
            row["regulator"] = 0
        else:
            row["roles_mask"] &= ~_ROLE_BIT_BY_ID.get(a["role"], 0)

    def _on_Paused(self, e: dict, a: dict) -> None:
        self.meta.update(paused=1, paused_changed_block=e["block_number"])

    def _on_Unpaused(self, e: dict, a: dict) -> None:
        self.meta.update(paused=0, paused_changed_block=e["block_number"])

    def _on_LimitsChanged(self, e: dict, a: dict) -> None:
        self.meta.update(
            max_validity_seconds=a["maxValiditySeconds"], max_fills=a["maxFills"], limits_block=e["block_number"]
        )

    # ------------------------------------------------------------------------------ writing

    def flush(self) -> None:
        """Writes every changed row, and the change to the running totals (inside the caller's transaction)."""
        conn = self.conn
        delta = totals.Delta()
        for stored, rows, parts, dirty in (
            (self._stored_rx, self.rx, totals.rx_parts, self._dirty_rx),
            (self._stored_fills, self.fills, totals.fill_parts, self._dirty_fills),
            (self._stored_batches, self.batches, totals.batch_parts, self._dirty_batches),
        ):
            for key in dirty:
                if key in rows:
                    now = parts(rows[key])
                    delta.change(stored.get(key, ()), now)
                    stored[key] = now
        delta.write(conn)
        conn.executemany(_UPSERT_RX, [tuple(self.rx[k][c] for c in RX_COLUMNS) for k in sorted(self._dirty_rx)])
        conn.executemany(
            _UPSERT_FILL,
            [tuple(self.fills[k][c] for c in FILL_COLUMNS) for k in sorted(self._dirty_fills) if k in self.fills],
        )
        conn.executemany(
            _UPSERT_MEMBER, [tuple(self.members[k][c] for c in MEMBER_COLUMNS) for k in sorted(self._dirty_members)]
        )
        conn.executemany(
            _UPSERT_BATCH, [tuple(self.batches[k][c] for c in BATCH_COLUMNS) for k in sorted(self._dirty_batches)]
        )
        conn.executemany(_UPSERT_LOT, [tuple(self.lots[k][c] for c in LOT_COLUMNS) for k in sorted(self._dirty_lots)])
        conn.executemany(
            _UPSERT_BOX_FILL,
            [tuple(self.box_fills[k][c] for c in BOX_FILL_COLUMNS) for k in sorted(self._dirty_box_fills)],
        )
        conn.executemany(_UPSERT_NULLIFIER, self.nullifiers)
        conn.executemany(_UPSERT_DUPLICATE, self.duplicates)
        if self.meta:
            write_meta(conn, self.meta)
        self._dirty_lots.clear()
        self._dirty_box_fills.clear()
        self.nullifiers = []
        self.duplicates = []
        self._dirty_rx.clear()
        self._dirty_fills.clear()
        self._dirty_members.clear()
        self._dirty_batches.clear()
        self.meta = {}


def event_row(e: dict) -> tuple:
    """An event as an ``events`` row."""
    return (
        e["block_number"],
        e["log_index"],
        e["block_hash"],
        e["block_time"],
        e["tx_hash"],
        e["tx_index"],
        e["name"],
        e["subject"],
        _dumps(e["args"]),
    )


EVENT_COLUMNS = "block_number, log_index, block_hash, block_time, tx_hash, tx_index, name, subject, args"


def event_from_row(row: tuple) -> dict:
    """The inverse of :func:`event_row`."""
    block_number, log_index, block_hash, block_time, tx_hash, tx_index, name, subject, args = row
    return {
        "block_number": block_number,
        "log_index": log_index,
        "block_hash": block_hash,
        "block_time": block_time,
        "tx_hash": tx_hash,
        "tx_index": tx_index,
        "name": name,
        "subject": subject,
        "args": json.loads(args),
    }


def rebuild(conn: Connection, *, page: int = 20_000) -> int:
    """Empties the derived tables and replays every stored event (inside the caller's transaction).
    Pages end on block boundaries, so a batch's events are never split. Returns the events replayed."""
    for table in DERIVED_TABLES:
        conn.execute(f"DELETE FROM {table}")
    conn.execute(
        "DELETE FROM meta WHERE key IN ('paused', 'paused_changed_block', "
        "'max_validity_seconds', 'max_fills', 'limits_block')"
    )
    after, replayed = -1, 0
    while True:
        rows = conn.query(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE block_number > ? ORDER BY block_number, log_index LIMIT ?",
            (after, page),
        )
        if not rows:
            counted = totals.Delta()
            counted.add(("events", None), replayed)
            counted.write(conn)
            write_meta(conn, {totals.MARK: 1})
            return replayed
        if len(rows) == page:
            last = rows[-1][0]
            whole = [r for r in rows if r[0] != last]
            if not whole:  # one block holds more than a page: take it whole
                whole = conn.query(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE block_number = ? ORDER BY log_index", (last,)
                )
            rows = whole
        projection = Projection(conn)
        projection.apply_all([event_from_row(r) for r in rows])
        projection.flush()
        replayed += len(rows)
        after = rows[-1][0]
