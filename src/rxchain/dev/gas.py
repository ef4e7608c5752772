"""Gas per operation, measured on a real chain, beside the budgets of the design and the floor.

The floor is what the EVM charges at the least for what an operation must do: 21,000 per transaction,
calldata (4 per zero byte, 16 per other byte), 22,100 for a new storage slot (cold) and 5,000 for a
rewritten cold slot, 2,100 per other cold slot read, 3,000 per ecrecover, and 375 + 375 per topic +
8 per data byte per log. Everything above it is the contract's own overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

#: Budgets from the design (gas units); issue, redeem and the four-transaction lifecycle as raised for
#: the checks issue 11 added (a doctor's hospital must be in good standing: one more member word read).
BUDGETS: dict[str, int] = {
    "issue": 57_000,
    "redeem": 45_000,
    "dispatch": 32_000,
    "deliver": 32_000,
    "confirm": 32_000,
    "cancel": 32_000,
    "lifecycle": 190_000,
    "lifecycle_4tx": 180_000,
    "lifecycle_counter": 180_000,
    "redeem_paper_slip": 50_000,
    "issue_batch_per_rx": 3_000,
    # DrugBoxes (issue 14). The per-box dispense budget holds for what each box adds to a fill; a whole
    # fill also pays its fixed part once (the transaction, the prescription read, the fill's new storage
    # word, the lot's proof): docs/boxes-and-claims.md.
    "box_register_per_box": 500,
    "box_dispense_marginal_per_box": 8_000,
    "box_dispense_5": 110_000,
    "claim_file": 60_000,
}


@dataclass(frozen=True)
class Floor:
    """The least an operation can cost, item by item."""

    items: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.items.values())


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas: 4 per zero byte, 16 per non-zero byte."""
    return sum(4 if b == 0 else 16 for b in data)


def log_gas(topics: int, data_bytes: int) -> int:
    """A LOGn: 375, plus 375 per topic (the event's signature is topic 0), plus 8 per data byte."""
    return 375 + 375 * topics + 8 * data_bytes


def floors(calldata: dict[str, bytes]) -> dict[str, Floor]:
    """The floor of each operation given the calldata it was sent with, under this design:
    the prescription's one slot (new at issue, rewritten after), the caller's member record read
    cold, the config word (pause flag, limits) read cold where a pause applies (issue, redeem), and
    the events as the contract declares them."""
    tx, member, config = 21_000, 2_100, 2_100
    out = {
        "issue": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["issue"]),
                "new slot": 22_100,
                "member reads (doctor, its hospital)": 2 * member,
                "config read": config,
                "event": log_gas(4, 4 * 32),
            }
        ),
        "redeem": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["redeem"]),
                "rewrite slot": 5_000,
                "member read": member,
                "config read": config,
                "ecrecover": 3_000,
                "event": log_gas(3, 32),
            }
        ),
        "dispatch": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["dispatch"]),
                "rewrite slot": 5_000,
                "member reads (pharmacy, courier)": 2 * member,
                "event": log_gas(4, 0),
            }
        ),
        "deliver": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["deliver"]),
                "rewrite slot": 5_000,
                "member read": member,
                "event": log_gas(3, 0),
            }
        ),
        "confirm": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["confirm"]),
                "rewrite slot": 5_000,
                "ecrecover": 3_000,
                "event": log_gas(3, 32),
            }
        ),
        "cancel": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["cancel"]),
                "rewrite slot": 5_000,
                "member read": member,
                "event": log_gas(3, 0),
            }
        ),
        "deliver_with_receipt": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["deliver_with_receipt"]),
                "rewrite slot": 5_000,
                "member read": member,
                "ecrecover": 3_000,
                "events": log_gas(3, 0) + log_gas(3, 32),
            }
        ),
        "redeem_batched": Floor(
            {
                "transaction": tx,
                "calldata": calldata_gas(calldata["redeem_batched"]),
                "new slot": 22_100,
                "batch read": 2_100,
                "member reads (pharmacy, doctor, its hospital)": 3 * member,
                "config read": config,
                "ecrecover": 3_000,
                "events": log_gas(4, 32) + log_gas(3, 32),
            }
        ),
    }
    out["lifecycle"] = Floor({op: out[op].total for op in ("issue", "redeem", "dispatch", "deliver", "confirm")})
    out["lifecycle_4tx"] = Floor({op: out[op].total for op in ("issue", "redeem", "dispatch", "deliver_with_receipt")})
    batch = calldata["issue_batch"]
    per_id = 512 + log_gas(3, 0)  # the id in calldata, and its PrescriptionBatched event
    out["issue_batch_per_rx"] = Floor(
        {
            "share of transaction": tx // 256,
            "share of batch slot": 22_100 // 256,
            "id calldata + event": per_id,
            "rest of calldata": max(0, calldata_gas(batch) - 256 * 512) // 256,
        }
    )
    return out


def gas_table(measured: dict[str, int], floor: dict[str, Floor]) -> Table:
    """Each operation's gas beside its budget and its floor."""
    table = Table(title="Gas per operation (free gas: this is the chain's capacity)")
    table.add_column("operation", style="bold")
    table.add_column("gas used", justify="right")
    table.add_column("budget", justify="right")
    table.add_column("vs budget", justify="right")
    table.add_column("floor", justify="right")
    table.add_column("above floor", justify="right")
    for op, used in measured.items():
        budget = BUDGETS.get(op)
        low = floor[op].total if op in floor else None
        verdict = (
            "-"
            if budget is None
            else (f"[green]{used - budget:+,}[/]" if used <= budget else f"[red]{used - budget:+,}[/]")
        )
        table.add_row(
            op,
            f"{used:,}",
            f"{budget:,}" if budget else "-",
            verdict,
            f"{low:,}" if low else "-",
            f"{used - low:+,}" if low else "-",
        )
    return table
