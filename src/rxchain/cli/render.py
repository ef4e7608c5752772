"""Rich renderings shared by the CLI and the scripts: trails, prescriptions, members."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.table import Table

from rxchain.audit import TrailStep
from rxchain.chain.client import MemberRecord, PrescriptionState


def utc(ts: int) -> str:
    """A unix time as an ISO-like UTC string."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(value: str, keep: int = 6) -> str:
    """0x1234…abcd."""
    return value if len(value) <= 2 + 2 * keep else f"{value[: 2 + keep]}…{value[-keep:]}"


def trail_table(rx_id: str, steps: list[TrailStep], names: dict[str, str] | None = None) -> Table:
    """The timestamped trail: step, actor, block, time, tx hash."""
    names = names or {}
    table = Table(title=f"Trail of prescription {short(rx_id, 8)}", title_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("step", style="bold cyan")
    table.add_column("actor")
    table.add_column("block", justify="right")
    table.add_column("time (block)")
    table.add_column("tx hash", style="dim")
    for i, step in enumerate(steps, 1):
        actor = names.get(step.actor)
        table.add_row(
            str(i),
            step.step,
            f"{actor} ({short(step.actor, 4)})" if actor else step.actor,
            str(step.block_number),
            utc(step.block_time),
            short(step.tx_hash, 8),
        )
    return table


def prescription_table(state: PrescriptionState, now: int) -> Table:
    """One prescription's state as a two-column table."""
    table = Table(show_header=False, title=f"Prescription {short(state.rx_id, 8)}")
    table.add_column(style="bold")
    table.add_column()
    expired = state.status.name in ("ACTIVE", "REFILLABLE") and now > state.expires_at
    status = state.status.label + (" [red](expired)[/]" if expired else "")
    for key, value in (
        ("status", status),
        ("custodian", state.custodian),
        ("issued", utc(state.issued_at) if state.issued_at else "-"),
        ("expires", utc(state.expires_at) if state.expires_at else "-"),
        ("fills left", str(state.fills_left)),
    ):
        table.add_row(key, value)
    return table


def members_table(members: list[MemberRecord], now: int) -> Table:
    """Members with roles, credential end dates and standing."""
    table = Table(title="Consortium members")
    table.add_column("account")
    table.add_column("roles")
    table.add_column("valid until")
    table.add_column("hospital")
    table.add_column("standing")
    for m in members:
        good = m.in_good_standing(now)
        standing = "[green]good[/]" if good else ("[red]revoked[/]" if not m.roles else "[red]expired[/]")
        table.add_row(m.account, ", ".join(m.roles) or "-", utc(m.valid_until), m.hospital or "-", standing)
    return table


def camel_keys(data):
    """One casing for every ``--json`` output: snake_case keys become camelCase (values untouched).

    The one exception is the benchmarks' figures line (``rx bench``, ``rx index bench``): a flat record
    for tools that collect figures, kept as it is."""
    if isinstance(data, dict):
        return {_camel_key(k): camel_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [camel_keys(v) for v in data]
    return data


def _camel_key(key):
    if not isinstance(key, str) or "_" not in key.strip("_"):
        return key
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
