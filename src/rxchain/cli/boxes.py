"""``rx box`` (lots, labels, dispense, check, recall) and ``rx claim`` (file, show, approve, pay, reject)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.panel import Panel
from rich.table import Table

from rxchain import errors
from rxchain.chain.boxes import BoxesClient, BoxState, ClaimStatus
from rxchain.cli.options import RX_ID
from rxchain.core import boxes as core
from rxchain.core.insurance import ClaimOpening
from rxchain.core.labels import label_sheet_png, read_scratch_code
from rxchain.paths import project_root


def _ctx():
    from rxchain.cli.main import Context

    return click.get_current_context().find_object(Context)


def _boxes(ctx) -> BoxesClient:
    client = ctx.client()
    cached = getattr(ctx, "_boxes_client", None)
    if cached is None or cached.registry is not client:
        cached = BoxesClient.connect(client, ctx.network)
        ctx._boxes_client = cached
    return cached


def _console():
    from rxchain.cli.main import console

    return console


def _utc(ts: int) -> str:
    from rxchain.cli.render import utc

    return utc(ts)


def _tx_json(tx, **extra) -> dict:
    from rxchain.cli.main import _tx_json as tx_json

    return tx_json(tx, **extra)


def _account(ctx, value: str) -> str:
    from rxchain.cli.main import _account as account

    return account(ctx, value)


def _lot_root(value: str) -> bytes:
    text = value.strip().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise errors.InvalidValue(f"{value!r} is not a lot (0x and 64 hex digits: the lot's Merkle root)")
    return raw


def _read_lots(paths: tuple[str, ...]) -> list[core.Lot]:
    lots = []
    for name in paths:
        path = Path(name)
        files = sorted(path.glob("*.lot.json")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise errors.InvalidValue(f"{name} holds no lot files (*.lot.json)")
        for file in files:
            if not file.is_file():
                raise errors.InvalidValue(f"{file}: no such lot file")
            lots.append(core.Lot.read(file))
    return lots


def _expiry(expires: str | None, days: int | None, now: int) -> int:
    if expires:
        try:
            moment = datetime.fromisoformat(expires)
        except ValueError:
            raise errors.InvalidValue(f"--expires {expires!r} is not a date (YYYY-MM-DD)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return int(moment.timestamp())
    return now + (days if days is not None else 730) * 86_400


# ------------------------------------------------------------------------------------ rx box


@click.group("box")
def box_group():
    """Drug boxes: one box, one sale (lots, labels, dispense, check, recall)."""


@box_group.command("register")
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The lot's codes: a CSV with a 'code' column (20 digits) and optionally 'secret'.",
)
@click.option("--expires", default=None, help="The lot's expiry date (YYYY-MM-DD, UTC).")
@click.option("--expires-days", type=int, default=None, help="Or: days from now (default 730).")
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Folder for the lot's files (default .rxchain/lots)."
)
@click.option("--as", "signer", required=True, help="The manufacturer.")
def box_register(csv_path, expires, expires_days, out, signer):
    """Register a lot from a CSV of codes; boxes without a secret get a fresh one (CSPRNG).

    Writes LOT.boxes.csv (codes and secrets: the manufacturer's, for printing) and LOT.lot.json (public:
    root and leaves, shipped with the goods so pharmacies can prove their boxes).
    """
    ctx = _ctx()
    boxes_client = _boxes(ctx)
    manufacturer = ctx.signer(signer)
    boxes = core.read_codes_csv(csv_path)
    lot = core.Lot.from_boxes(boxes, _expiry(expires, expires_days, ctx.client().latest_block_time()))
    folder = Path(out) if out else project_root() / ".rxchain" / "lots"
    folder.mkdir(parents=True, exist_ok=True)
    reused = core.reused_codes(boxes, folder)
    if reused:
        code, where = next(iter(reused.items()))
        raise core.BadBoxCode(
            f"{len(reused)} code(s) of {csv_path} were issued in an earlier lot already (e.g. {code}, in {where}): "
            "a traceability code names one box; take the codes out or give the boxes new codes"
        )
    name = "0x" + lot.root.hex()
    box_file = core.write_box_file(boxes, folder / f"{name}.boxes.csv")
    lot_file = folder / f"{name}.lot.json"
    lot_file.write_text(lot.to_json())
    tx = boxes_client.register_lot(manufacturer, lot)
    data = _tx_json(
        tx, lot=name, count=lot.count, expiresAt=lot.expires_at, boxFile=str(box_file), lotFile=str(lot_file)
    )
    ctx.emit(
        data,
        Panel(
            f"lot [bold]{name}[/]\n{lot.count} boxes, dispensable until {_utc(lot.expires_at)}\n"
            f"codes and secrets (keep private, print labels from it): {box_file}\n"
            f"lot file (ship with the goods):                       {lot_file}",
            title="lot registered",
            border_style="green",
        ),
    )


@box_group.command("labels")
@click.option("--boxes", "box_file", required=True, type=click.Path(dir_okay=False), help="The lot's LOT.boxes.csv.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The PNG sheet to write.")
@click.option("--columns", type=int, default=4, show_default=True)
def box_labels(box_file, out, columns):
    """Print a lot's labels as a PNG sheet of DataMatrix codes (printed code; code and secret under the panel)."""
    ctx = _ctx()
    boxes = core.read_box_file(box_file)
    path = label_sheet_png(boxes, out, columns=max(1, columns))
    ctx.emit({"png": str(path), "labels": len(boxes)}, f"[green]{len(boxes)} labels[/] written to {path}")


def _scanned(box_args: tuple[str, ...], scan_args: tuple[str, ...]) -> list[tuple[str, str]]:
    scanned = []
    for value in box_args:
        if value.count(":") != 1:
            raise errors.InvalidValue(f"--box {value!r}: give CODE:SECRET (the printed code and the scratched secret)")
        code, secret = value.split(":")
        scanned.append((core.check_code(code), core.check_secret(secret)))
    scanned += [read_scratch_code(text) for text in scan_args]
    if not scanned:
        raise click.UsageError("give the fill's boxes: --box CODE:SECRET or --scan RXS1:… (one per box)")
    return scanned


@box_group.command("dispense")
@click.argument("rx_id", type=RX_ID)
@click.option("--box", "box_args", multiple=True, help="A box as CODE:SECRET (repeat per box).")
@click.option(
    "--scan", "scan_args", multiple=True, help="A scanned scratch-panel code RXS1:CODE:SECRET (repeat per box)."
)
@click.option("--lot", "lot_paths", multiple=True, required=True, help="A lot file, or a folder of them (repeatable).")
@click.option("--as", "signer", required=True, help="The pharmacy holding the dispensed prescription.")
@click.option(
    "--report/--no-report",
    default=True,
    show_default=True,
    help="Report a box found already sold to the regulator (a duplicate-scan alarm) before refusing the fill.",
)
def box_dispense(rx_id, box_args, scan_args, lot_paths, signer, report):
    """Record the boxes of the fill you hold, in one transaction; each box is checked first."""
    ctx = _ctx()
    boxes_client = _boxes(ctx)
    pharmacy = ctx.signer(signer)
    lots = _read_lots(lot_paths)
    scanned = _scanned(box_args, scan_args)
    try:
        tx, nullifiers = boxes_client.dispense(pharmacy, rx_id, scanned, lots)
    except errors.ContractRevert:
        # Refused before sending. A box already sold among the scanned ones is a counterfeit copy or a resold
        # box, whatever else was refused: the alarm goes on chain before the refusal is shown. (Asked only on a
        # refusal: a fill that goes through has no sold box, and pays no extra round trip per box.)
        if report:
            for box in boxes_client.duplicates_of(boxes_client.locate(scanned, lots)):
                boxes_client.report_duplicate(pharmacy, box)
                _console().print(f"[red]box {box.code} was sold before[/]: reported to the regulator as a duplicate")
        raise
    fills_left = ctx.client().prescription(rx_id).fills_left
    ctx.emit(
        _tx_json(tx, id=str(rx_id), fillsLeft=fills_left, boxes=len(nullifiers)),
        f"[green]{len(nullifiers)} box(es) recorded[/] for {rx_id} (fill with {fills_left} fills left)"
        f" at {_utc(tx.block_time)}",
    )


_STATE_TEXT = {
    BoxState.UNSOLD: "[green]genuine, not yet sold[/]",
    BoxState.DISPENSED: "[red]already sold[/]: a second sale means a counterfeit or a resold box",
    BoxState.UNKNOWN: (
        "[red]unknown[/]: no registered lot holds this code and secret"
        " (counterfeit, mistyped, or its lot file is missing)"
    ),
    BoxState.RECALLED: "[red]recalled[/]: its lot was recalled; do not take it",
    BoxState.EXPIRED: "[red]expired[/]: its lot is past its expiry",
}


@box_group.command("check")
@click.argument("code")
@click.argument("secret")
@click.option(
    "--lot",
    "lot_paths",
    multiple=True,
    help="The box's lot file, or a folder of them (without: only a sold box is recognised).",
)
def box_check(code, secret, lot_paths):
    """Check a box: genuine and unsold / sold once (when, where, which prescription) / unknown / recalled / expired.

    Exits 0 for a genuine unsold box, 1 for anything else.
    """
    ctx = _ctx()
    check = _boxes(ctx).check_box(code, secret, _read_lots(lot_paths))
    text = f"box {core.check_code(code)}: {_STATE_TEXT[check.state]}"
    if check.lot:
        text += f"\nlot {check.lot}, box #{check.index}"
    if check.dispensed:
        d = check.dispensed
        text += f"\nsold {_utc(d['time'])} by pharmacy {d['pharmacy']} for prescription {d['rxId']}"
    ctx.emit(check.as_json(), text)
    if check.state is not BoxState.UNSOLD:
        sys.exit(errors.Refused.exit_code)


@box_group.command("recall")
@click.argument("lot")
@click.option("--as", "signer", required=True, help="The lot's manufacturer, or the regulator.")
def box_recall(lot, signer):
    """Recall a lot: its unsold boxes are refused at every pharmacy from now on."""
    ctx = _ctx()
    tx = _boxes(ctx).recall(ctx.signer(signer), _lot_root(lot))
    ctx.emit(_tx_json(tx, lot=lot), f"[yellow]lot {lot} recalled[/] at {_utc(tx.block_time)}")


# ---------------------------------------------------------------------------------- rx claim


@click.group("claim")
def claim_group():
    """Insurance claims: one per received fill (file, show, approve, reject)."""


def _fills_left(ctx, rx_id, value: int | None) -> int:
    return ctx.client().prescription(rx_id).fills_left if value is None else value


def _amounts(values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for value in values:
        key, _, number = value.partition("=")
        if not key or not number.strip().isdigit():
            raise errors.InvalidValue(
                f"--amount {value!r}: give NAME=WHOLE_NUMBER in the currency's smallest unit (total=12800)"
            )
        out[key.strip()] = int(number)
    return out


@claim_group.command("file")
@click.argument("rx_id", type=RX_ID)
@click.option(
    "--fills-left", type=int, default=None, help="Which fill: the fills left after it (default: the latest fill)."
)
@click.option("--insurer", required=True, help="The insurer (address or dev identity).")
@click.option(
    "--amount", "amounts", multiple=True, required=True, help="NAME=AMOUNT in the smallest unit (repeatable)."
)
@click.option("--insurance-ref", required=True, help="The patient's insurance reference (stays off chain).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the claim's opening for the insurer (default .rxchain/claims/ID-FILLSLEFT.json).",
)
@click.option("--as", "signer", required=True, help="The pharmacy that recorded the fill's boxes.")
def claim_file(rx_id, fills_left, insurer, amounts, insurance_ref, out, signer):
    """File the claim for a received fill; the amounts and insurance reference go on chain only as a salted hash."""
    ctx = _ctx()
    fills_left = _fills_left(ctx, rx_id, fills_left)
    opening = ClaimOpening.new(_amounts(amounts), insurance_ref)
    tx = _boxes(ctx).file_claim(ctx.signer(signer), rx_id, fills_left, _account(ctx, insurer), opening)
    path = Path(out) if out else project_root() / ".rxchain" / "claims" / f"{rx_id}-{fills_left}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps({"id": str(rx_id), "fillsLeft": fills_left, **opening.as_json()}, indent=2) + "\n")
    ctx.emit(
        _tx_json(
            tx, id=str(rx_id), fillsLeft=fills_left, commitment="0x" + opening.commitment.hex(), opening=str(path)
        ),
        f"[green]claim filed[/] for {rx_id} (fill with {fills_left} fills left)"
        f"; send the opening {path} to the insurer",
    )


@claim_group.command("show")
@click.argument("rx_id", type=RX_ID)
@click.option("--fills-left", type=int, default=None, help="Which fill (default: the latest fill).")
def claim_show(rx_id, fills_left):
    """A fill's boxes and claim: who dispensed it, the claim's insurer, commitment and decision."""
    ctx = _ctx()
    fills_left = _fills_left(ctx, rx_id, fills_left)
    boxes_client = _boxes(ctx)
    record = boxes_client.fill(rx_id, fills_left)
    events = boxes_client.claim_events(rx_id, fills_left)
    data = {**record.as_json(), **events}
    table = Table(title=f"prescription {rx_id}, fill with {fills_left} fills left", show_header=False)
    table.add_row("boxes", f"{record.boxes} recorded by {record.pharmacy}" if record.pharmacy else "none recorded")
    table.add_row(
        "claim",
        record.claim.name.lower() + (f" (reason {record.reason})" if record.claim is ClaimStatus.REJECTED else ""),
    )
    if "filed" in events:
        f = events["filed"]
        table.add_row("filed", f"{_utc(f['time'])} with insurer {f['insurer']}; commitment {f['commitment']}")
    if "approved" in events:
        table.add_row("approved", _utc(events["approved"]["time"]))
    if "paid" in events:
        table.add_row("paid", f"{_utc(events['paid']['time'])}, payment {events['paid']['paymentReference']}")
    if "rejected" in events:
        table.add_row("rejected", f"{_utc(events['rejected']['time'])}, reason {events['rejected']['reason']}")
    ctx.emit(data, table)


@claim_group.command("approve")
@click.argument("rx_id", type=RX_ID)
@click.option("--fills-left", type=int, required=True, help="Which fill: the fills left after it.")
@click.option(
    "--payment-ref",
    default=None,
    help="The off-chain payment's reference (up to 32 ASCII characters); without it the claim is approved, "
    "its payment stamped later with `rx claim pay`.",
)
@click.option(
    "--opening",
    type=click.Path(dir_okay=False),
    default=None,
    help="The claim's opening from the pharmacy: checked against the filed commitment first.",
)
@click.option("--as", "signer", required=True, help="The claim's insurer.")
def claim_approve(rx_id, fills_left, payment_ref, opening, signer):
    """Approve a filed claim, stamping the payment reference on chain."""
    ctx = _ctx()
    boxes_client = _boxes(ctx)
    if opening:
        _check_opening(boxes_client, rx_id, fills_left, opening)
    tx = boxes_client.approve(ctx.signer(signer), rx_id, fills_left, payment_ref)
    ctx.emit(
        _tx_json(tx, id=str(rx_id), fillsLeft=fills_left, paid=bool(payment_ref)),
        f"[green]claim approved[/] for {rx_id}" + (f" and paid (payment {payment_ref})" if payment_ref else ""),
    )


@claim_group.command("pay")
@click.argument("rx_id", type=RX_ID)
@click.option("--fills-left", type=int, required=True, help="Which fill: the fills left after it.")
@click.option("--payment-ref", required=True, help="The off-chain payment's reference (up to 32 ASCII characters).")
@click.option("--as", "signer", required=True, help="The claim's insurer.")
def claim_pay(rx_id, fills_left, payment_ref, signer):
    """Stamp the off-chain payment of an approved claim on chain."""
    ctx = _ctx()
    tx = _boxes(ctx).record_payment(ctx.signer(signer), rx_id, fills_left, payment_ref)
    ctx.emit(
        _tx_json(tx, id=str(rx_id), fillsLeft=fills_left),
        f"[green]claim paid[/] for {rx_id} (payment {payment_ref})",
    )


@claim_group.command("reject")
@click.argument("rx_id", type=RX_ID)
@click.option("--fills-left", type=int, required=True, help="Which fill: the fills left after it.")
@click.option("--reason", type=int, required=True, help="The reason code (1-255).")
@click.option("--as", "signer", required=True, help="The claim's insurer.")
def claim_reject(rx_id, fills_left, reason, signer):
    """Reject a filed claim with a reason code (final: the fill cannot be claimed again)."""
    ctx = _ctx()
    tx = _boxes(ctx).reject(ctx.signer(signer), rx_id, fills_left, reason)
    ctx.emit(
        _tx_json(tx, id=str(rx_id), fillsLeft=fills_left, reason=reason),
        f"[yellow]claim rejected[/] for {rx_id} (reason {reason})",
    )


class OpeningMismatch(errors.Refused):
    """The claim's opening does not hash to the commitment filed on chain."""


def _check_opening(boxes_client: BoxesClient, rx_id: bytes, fills_left: int, path: str) -> None:
    from rxchain.cli.main import _read_text_file

    try:
        data = json.loads(_read_text_file(path, "claim opening"))
    except json.JSONDecodeError:
        raise errors.InvalidValue(f"{path} is not a claim opening (JSON)") from None
    opening = ClaimOpening.from_json(data)
    filed = boxes_client.claim_events(rx_id, fills_left).get("filed")
    if filed is None:
        raise errors.ClaimNotPending("ClaimNotPending", {"id": rx_id, "fillsLeft": fills_left, "claim": 0})
    if filed["commitment"] != "0x" + opening.commitment.hex():
        raise OpeningMismatch(
            f"the opening {path} does not match the claim's commitment {filed['commitment']}: "
            "the amounts or insurance reference differ from what was filed; do not pay"
        )
