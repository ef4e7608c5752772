"""The ``rx`` command: the whole job from a terminal (click + rich).

Every command is thin: it parses, calls the library, and renders. Read commands take ``--json``.
Exit codes scripts can rely on:

    0  done
    1  the registry refused (a named contract error, e.g. AlreadyRedeemed)
    2  usage error (bad option)
    3  the node, deployment, build, devnet or a database is not there (start the devnet, deploy, compile)
    4  bad input: a document that fails validation, a malformed QR payload, an unknown signer, a bad
       address or id, a file that is missing or is a folder
    5  a transaction failed or was not mined

Each code is the ``exit_code`` of the error's category in :mod:`rxchain.errors`. Errors print as one
line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from web3 import Web3

from rxchain import audit, errors
from rxchain.chain.client import RegistryClient, TxResult
from rxchain.chain.deploy import deploy_registry, deployer_account
from rxchain.chain.deployment import BOXES_CONTRACT, bytecode_hash, load_deployment
from rxchain.dev.devnet import Devnet
from rxchain.core.ids import RxId
from rxchain.core.document import MedicationSpec, build_prescription, load_document, new_patient_pseudonym
from rxchain.chain.signers import dev_accounts, load_signer
from rxchain.chain.outbox import Outbox
from rxchain.paths import project_root, tool_env
from rxchain.core.qr import payload_png, payload_terminal, read_qr_image
from rxchain.core.roles import ROLES
from rxchain.cli.options import RX_ID
from rxchain.cli.render import camel_keys, members_table, prescription_table, trail_table, utc
from rxchain.workflow import (
    confirm_payload_receipt,
    confirm_receipt_code,
    deliver_with_receipt_code,
    is_authorization,
    is_receipt,
    issue_on_paper,
    issue_prescription,
    patient_consent,
    patient_receipt,
    read_authorization,
    read_payload,
    redeem_code,
)

console = Console()
err_console = Console(stderr=True)

EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_BAD_INPUT, EXIT_TX_FAILED = 1, 2, 3, 4, 5

#: How the prescription reaches the patient (docs/patient-app.md).
HANDOVER_MODES = ("app", "paper", "single")


@dataclass
class Context:
    """Global options, and the client made from them on first use."""

    network: str
    rpc: str | None
    as_json: bool
    debug: bool
    outbox: str | None
    _client: RegistryClient | None = None

    @property
    def dev(self) -> bool:
        return self.network in ("devnet", "local")

    @property
    def outbox_path(self) -> str:
        return self.outbox or str(project_root() / ".rxchain" / f"outbox-{self.network}.sqlite")

    def node_url(self) -> str | None:
        """The node's JSON-RPC URL without a deployment record: --rpc, else the network's own (the
        devnet's, $RXCHAIN_BESU_RPC)."""
        if self.rpc:
            return self.rpc
        if self.network == "besu":
            return os.environ.get("RXCHAIN_BESU_RPC") or None
        return Devnet().url if self.network == "devnet" else None

    def client(self, *, resume: bool = True) -> RegistryClient:
        if self._client is None:
            if Path(self.outbox_path).is_dir():
                raise errors.InvalidValue(
                    f"--outbox {self.outbox_path} is a folder: the outbox is one SQLite file (give its path)"
                )
            rpc = self.rpc or (os.environ.get("RXCHAIN_BESU_RPC") if self.network == "besu" else None)
            self._client = RegistryClient.connect(
                self.network, rpc_url=rpc, outbox_path=self.outbox_path, resume=resume
            )
        return self._client

    def signer(self, spec: str):
        return load_signer(spec, allow_dev=self.dev)

    def emit(self, data, renderable=None) -> None:
        """JSON for scripts, or the rich rendering for people."""
        if self.as_json:
            click.echo(json.dumps(camel_keys(data), indent=2, default=_json_default))
        elif renderable is not None:
            console.print(renderable)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--network",
    default=lambda: os.environ.get("RXCHAIN_NETWORK", "devnet"),
    show_default="devnet",
    help="Deployment record to use (deployments/<network>.json).",
)
@click.option("--rpc", default=None, help="JSON-RPC URL (overrides the deployment record).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--outbox", default=None, help="Outbox file (default .rxchain/outbox-<network>.sqlite).")
@click.pass_context
def cli(ctx, network, rpc, as_json, debug, outbox):
    """rxchain: blockchain e-prescriptions — issue, redeem once, deliver, audit."""
    ctx.obj = Context(network, rpc, as_json, debug, outbox)


# ----------------------------------------------------------------------------------- devnet


@cli.group()
def devnet():
    """The local Besu-like devnet (anvil, free gas, 1 s blocks, state kept in .devnet/)."""


@devnet.command("up")
@pass_ctx
def devnet_up(ctx):
    """Start the devnet (or find the one running)."""
    status = Devnet().up()
    ctx.emit(
        status.__dict__,
        f"[green]devnet up[/] at {status.url} (chain {status.chain_id}, block {status.block_number}"
        f", {status.hardfork})",
    )


@devnet.command("down")
@pass_ctx
def devnet_down(ctx):
    """Stop the devnet; its state is kept for the next start."""
    stopped = Devnet().down()
    ctx.emit({"stopped": stopped}, "[yellow]devnet stopped[/] (state kept)" if stopped else "devnet was not running")


@devnet.command("status")
@pass_ctx
def devnet_status(ctx):
    """Whether the devnet runs, its chain id and height."""
    status = Devnet().status()
    text = (
        f"[green]running[/] at {status.url}: chain {status.chain_id}, block {status.block_number}"
        if status.running
        else f"[red]not running[/] ({status.url})"
    )
    ctx.emit(status.__dict__, text)
    if not status.running:
        sys.exit(EXIT_UNAVAILABLE)


# ----------------------------------------------------------------------------------- deploy


@cli.command()
@click.option("--force", is_flag=True, help="Deploy a new registry even if one is recorded and live.")
@pass_ctx
def deploy(ctx, force):
    """Compile and deploy the registry to the network, recording its address.

    Keeps a recorded registry that is live and built from the current contracts; --force deploys anew.
    """
    _compile()
    if not force:
        try:
            ctx.client()
            record = load_deployment(ctx.network)
            if record.bytecode_hash == bytecode_hash() and record.boxes_bytecode_hash == bytecode_hash(BOXES_CONTRACT):
                ctx.emit(
                    record.model_dump(),
                    f"registry already deployed at [bold]{record.registry}[/] (block {record.deploy_block})"
                    "; --force for a new one",
                )
                return
            console.print("[yellow]the contracts changed since the recorded deployment: deploying anew[/]")
        except (errors.DeploymentNotFound, errors.DeploymentMismatch):
            pass
    url = ctx.node_url()
    if not url:
        raise click.UsageError(f"no RPC URL for network {ctx.network!r}: pass --rpc")
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    record = deploy_registry(w3, deployer_account(ctx.network), network=ctx.network, rpc_url=url)
    ctx._client = None
    ctx.emit(
        record.model_dump(),
        f"[green]deployed[/] PrescriptionRegistry at [bold]{record.registry}[/]"
        f" on {ctx.network} (block {record.deploy_block})",
    )


# ------------------------------------------------------------------------------------- demo


@cli.command()
@pass_ctx
def demo(ctx):
    """Onboard the development consortium and take one prescription through every step, via QR."""
    client = ctx.client()
    if not ctx.dev:
        raise click.UsageError("the demo uses development keys: run it on the devnet only")
    from rxchain.dev.demo import run_lifecycle

    ids = dev_accounts()
    console.rule(f"rxchain demo on {ctx.network} (chain {client.chain_id}, registry {client.address})")
    out = project_root() / ".rxchain" / "demo"
    out.mkdir(parents=True, exist_ok=True)

    def show_qr(issued) -> None:
        rx = str(issued.rx_id)
        png = payload_png(issued.payload_text, out / f"{rx}.png")
        (out / f"{rx}.rxqr").write_text(issued.payload_text + "\n")
        console.print(f"   the patient's QR code: {png}")
        _print_qr(issued.payload_text)

    result = run_lifecycle(client, ids, console, show_qr=show_qr)
    rx = str(result.issued.rx_id)
    console.print(f"[dim]rx trail {rx}  ·  rx show {rx}  ·  rx audit export {rx}[/]")


# ---------------------------------------------------------------------------------- members


@cli.group()
def member():
    """Consortium members: admit, renew, revoke, list."""


@member.command("add")
@click.argument("account")
@click.argument("role", type=click.Choice(list(ROLES)))
@click.option(
    "--days",
    type=int,
    default=365,
    show_default=True,
    help="Credential length from now (a doctor's ends with its hospital's at the latest).",
)
@click.option(
    "--as",
    "signer",
    required=True,
    help="Regulator (or hospital, for doctors): a dev identity on the devnet, a keystore file or env:VAR.",
)
@pass_ctx
def member_add(ctx, account, role, days, signer):
    """Admit ACCOUNT as ROLE with a credential of --days."""
    client = ctx.client()
    account = _account(ctx, account)
    until = client.latest_block_time() + days * 86400
    sender = ctx.signer(signer)
    if role == "doctor":  # a doctor's licence may not outlive its hospital's credential: end with it at the latest
        until = min(until, client.member(sender.address).valid_until or until)
    tx = client.admit(sender, account, role, until)
    ctx.emit(
        _tx_json(tx, account=account, role=role, validUntil=until),
        f"[green]admitted[/] {account} as {role} until {utc(until)} (tx {tx.tx_hash})",
    )


@member.command("renew")
@click.argument("account")
@click.option("--days", type=int, default=365, show_default=True)
@click.option("--as", "signer", required=True)
@pass_ctx
def member_renew(ctx, account, days, signer):
    """Move ACCOUNT's credential end date to --days from now."""
    client = ctx.client()
    account = _account(ctx, account)
    until = client.latest_block_time() + days * 86400
    record = client.member(account)
    if "doctor" in record.roles and record.hospital:  # never past its hospital's credential
        until = min(until, client.member(record.hospital).valid_until or until)
    tx = client.renew(ctx.signer(signer), account, until)
    ctx.emit(_tx_json(tx, account=account, validUntil=until), f"[green]renewed[/] {account} until {utc(until)}")


@member.command("revoke")
@click.argument("account")
@click.argument("role", type=click.Choice(list(ROLES)))
@click.option("--as", "signer", required=True)
@pass_ctx
def member_revoke(ctx, account, role, signer):
    """Revoke ROLE from ACCOUNT, effective at once."""
    client = ctx.client()
    account = _account(ctx, account)
    tx = client.revoke(ctx.signer(signer), account, role)
    ctx.emit(_tx_json(tx, account=account, role=role), f"[yellow]revoked[/] {role} from {account}")


#: The signer of what only the regulator may do.
_AS_REGULATOR = click.option("--as", "signer", required=True, help="The regulator.")


@member.command("readmit")
@click.argument("account")
@_AS_REGULATOR
@pass_ctx
def member_readmit(ctx, account, signer):
    """Let ACCOUNT, barred by the regulator's revocation, be admitted by its hospital again."""
    account = _account(ctx, account)
    tx = ctx.client().allow_readmission(ctx.signer(signer), account)
    ctx.emit(_tx_json(tx, account=account), f"[green]readmission allowed[/] for {account}")


@member.command("list")
@pass_ctx
def member_list(ctx):
    """Every member with roles, credential end date and standing."""
    client = ctx.client()
    members = client.members()
    now = client.latest_block_time()
    ctx.emit([{**m.as_json(), "inGoodStanding": m.in_good_standing(now)} for m in members], members_table(members, now))


# ---------------------------------------------------------------------------- prescriptions


@cli.command()
@click.option(
    "--doc", "doc_path", type=click.Path(exists=True, dir_okay=False), help="A FHIR prescription document (JSON)."
)
@click.option("--drug", help="Drug text, when not using --doc (e.g. 'Amoxicillin 500 mg capsule').")
@click.option("--code", default="unknown", show_default=True, help="Drug code (with --drug).")
@click.option("--dosage", default="as directed", show_default=True, help="Dosage instruction (with --drug).")
@click.option("--quantity", type=float, default=1, show_default=True)
@click.option("--unit", default="unit", show_default=True)
@click.option("--supply-days", type=int, default=3, show_default=True)
@click.option("--valid-days", type=int, default=1, show_default=True)
@click.option("--pharmacy", default=None, help="Designated pharmacy (address or dev identity).")
@click.option("--emergency", is_flag=True)
@click.option("--fills", type=int, default=1, show_default=True)
@click.option(
    "--handover",
    type=click.Choice(HANDOVER_MODES),
    default=lambda: os.environ.get("RXCHAIN_HANDOVER", "app"),
    show_default="app, or $RXCHAIN_HANDOVER",
    help="app: the patient's app scans the code at the desk and keeps the key; paper: printed slips, one per "
    "fill and one receipt slip per fill, and the key is forgotten; single: one QR code holding the key (weaker).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Also write the code (or, on paper, the slips to print) to this folder, readable by you alone.",
)
@click.option("--as", "signer", required=True, help="The issuing doctor.")
@pass_ctx
def issue(
    ctx,
    doc_path,
    drug,
    code,
    dosage,
    quantity,
    unit,
    supply_days,
    valid_days,
    pharmacy,
    emergency,
    fills,
    handover,
    out,
    signer,
):
    """Issue a prescription from a FHIR document (or flags) and hand it to the patient.

    Nothing holding the claim key is written to disk unless --out is given (and then readable by
    you alone): delete those files once the patient has the prescription."""
    client = ctx.client()
    doctor = ctx.signer(signer)
    if doc_path:
        document = load_document(doc_path)
    elif drug:
        document = build_prescription(
            doctor=doctor.address,
            patient_pseudonym=new_patient_pseudonym(),
            medications=[
                MedicationSpec(
                    code=code,
                    system="urn:rxchain:local-formulary",
                    text=drug,
                    dosage_text=dosage,
                    quantity=quantity,
                    unit=unit,
                    supply_days=supply_days,
                )
            ],
            valid_from=datetime.fromtimestamp(client.latest_block_time(), timezone.utc),
            valid_days=valid_days,
            designated_pharmacy=_account(ctx, pharmacy) if pharmacy else None,
            emergency=emergency,
        )
    else:
        raise click.UsageError("give --doc FILE or --drug TEXT")
    if handover == "paper":
        if not out:
            raise click.UsageError("--handover paper prints slips: give --out DIR for the slips to print")
        _issue_on_paper(ctx, client, doctor, document, fills, Path(out))
        return
    issued = issue_prescription(client, doctor, document, fills=fills)
    rx = str(issued.rx_id)
    data = _tx_json(issued.tx, id=rx, expiresAt=issued.expires_at, handover=handover, payload=issued.payload_text)
    files = ""
    if out:
        folder = _private_folder(Path(out))
        payload_file = _private_write(folder / f"{rx}.rxqr", (issued.payload_text + "\n").encode())
        png = payload_png(issued.payload_text, folder / f"{rx}.png")
        png.chmod(0o600)
        data.update(payloadFile=str(payload_file), qrPng=str(png))
        files = f"\ncode: {payload_file}\nQR image: {png}"
    if ctx.as_json:
        ctx.emit(data)
    else:
        _print_qr(issued.payload_text)
        how = (
            "scan it with the patient's app at the desk: the key stays on the patient's phone"
            if handover == "app"
            else "single-QR mode (weaker): whoever scans this code can redeem and confirm receipt"
        )
        console.print(
            Panel(
                f"prescription [bold]{rx}[/]\nexpires {utc(issued.expires_at)}\n{how}{files}",
                title="issued",
                border_style="green",
            )
        )
    if out:
        err_console.print(
            f"[yellow]the files in {out} hold the prescription's key: delete them once the patient has it[/]"
        )


@cli.command()
@click.argument("rx_id", required=False, type=RX_ID)
@click.option("--payload", "payload_arg", default=None, help="QR payload text, or @FILE.")
@click.option("--qr-image", type=click.Path(exists=True, dir_okay=False), help="A photo or screenshot of the QR code.")
@pass_ctx
def show(ctx, rx_id, payload_arg, qr_image):
    """Show a prescription's state (by id, or from a QR payload or photo)."""
    client = ctx.client()
    if payload_arg or qr_image:
        text = _payload_from(payload_arg, qr_image)
        rx_id = (read_authorization(client, text) if is_authorization(text) else read_payload(client, text)).rx_id
    if not rx_id:
        raise click.UsageError("give an id or --payload")
    state = client.prescription(rx_id)
    now = client.latest_block_time()
    if not state.exists:
        raise errors.UnknownPrescription("UnknownPrescription", {"id": rx_id})
    ctx.emit({**state.as_json(), "expired": now > state.expires_at}, prescription_table(state, now))


@cli.command()
@click.option(
    "--code",
    "--payload",
    "payload_arg",
    default=None,
    help="The patient's authorisation code (RXA1., from the patient's app or a paper fill slip), or in "
    "single-QR mode the prescription code (RX1.); text or @FILE.",
)
@click.option("--qr-image", type=click.Path(exists=True, dir_okay=False), help="A photo or screenshot of the QR code.")
@click.option("--as", "signer", required=True, help="The pharmacy.")
@pass_ctx
def redeem(ctx, payload_arg, qr_image, signer):
    """Redeem one fill with the patient's authorisation (checked first: for this pharmacy, this fill, in time)."""
    client = ctx.client()
    rx_id, tx = redeem_code(client, ctx.signer(signer), _payload_from(payload_arg, qr_image))
    ctx.emit(
        _tx_json(tx, id=str(rx_id)), f"[green]redeemed[/] {rx_id} in block {tx.block_number} at {utc(tx.block_time)}"
    )


@cli.command()
@click.argument("rx_id", type=RX_ID)
@click.option("--courier", required=True, help="Courier address (or dev identity).")
@click.option("--as", "signer", required=True, help="The pharmacy that filled it.")
@pass_ctx
def dispatch(ctx, rx_id, courier, signer):
    """Hand a filled prescription's drugs to a courier."""
    tx = ctx.client().dispatch(ctx.signer(signer), rx_id, _account(ctx, courier))
    ctx.emit(_tx_json(tx, id=str(rx_id)), f"[green]dispatched[/] {rx_id} at {utc(tx.block_time)}")


@cli.command()
@click.argument("rx_id", type=RX_ID)
@click.option(
    "--receipt",
    "receipt_code",
    default=None,
    help="The patient's receipt code (RXR1., from the patient's app or a paper receipt slip; or @FILE): "
    "record it in the same transaction.",
)
@click.option(
    "--receipt-payload",
    default=None,
    help="Single-QR mode: the prescription code (or @FILE) whose key signs the receipt.",
)
@click.option("--as", "signer", required=True, help="The courier (or the pharmacy, over the counter).")
@pass_ctx
def deliver(ctx, rx_id, receipt_code, receipt_payload, signer):
    """Hand the drugs to the patient (optionally with the patient's receipt, one transaction)."""
    client = ctx.client()
    holder = ctx.signer(signer)
    if receipt_code and receipt_payload:
        raise click.UsageError("give --receipt or --receipt-payload, not both")
    if receipt_code:
        text = _payload_text(receipt_code)
        for_id = read_receipt_id(client, text)
        if for_id != rx_id:
            raise errors.InvalidValue(f"the receipt is for prescription {for_id}, not {rx_id}: nothing was sent")
        tx = deliver_with_receipt_code(client, holder, text)
    elif receipt_payload:
        text = _payload_text(receipt_payload)
        for_id = read_payload(client, text).rx_id
        if for_id != rx_id:
            raise errors.InvalidValue(
                f"the receipt payload is for prescription {for_id}, not {rx_id}: nothing was sent"
            )
        tx = confirm_payload_receipt(client, holder, text, with_delivery=True)
    else:
        tx = client.deliver(holder, rx_id)
    ctx.emit(_tx_json(tx, id=str(rx_id)), f"[green]delivered[/] {rx_id} at {utc(tx.block_time)}")


@cli.command()
@click.option(
    "--receipt",
    "--payload",
    "payload_arg",
    default=None,
    help="The patient's receipt code (RXR1.), or in single-QR mode the prescription code (RX1.); text or @FILE.",
)
@click.option("--qr-image", type=click.Path(exists=True, dir_okay=False), help="A photo or screenshot of the QR code.")
@click.option("--as", "signer", required=True, help="Any account relaying the patient's signature.")
@pass_ctx
def confirm(ctx, payload_arg, qr_image, signer):
    """Record the patient's receipt of a delivered prescription."""
    text = _payload_from(payload_arg, qr_image)
    if is_receipt(text):
        tx = confirm_receipt_code(ctx.client(), ctx.signer(signer), text)
    else:
        tx = confirm_payload_receipt(ctx.client(), ctx.signer(signer), text)
    ctx.emit(_tx_json(tx), f"[green]receipt confirmed[/] at {utc(tx.block_time)}")


@cli.command("consent-request")
@click.option("--minutes", type=int, default=15, show_default=True, help="How long the patient has to answer.")
@click.option("--as", "signer", required=True, help="The pharmacy asking.")
@pass_ctx
def consent_request(ctx, minutes, signer):
    """Show the pharmacy's request for the patient's consent (RXP1.): the patient's app scans it."""
    client = ctx.client()
    request = client.consent_request(_address_of(ctx, signer), ttl=minutes * 60)
    _show_code(
        ctx,
        request.encode(),
        {"pharmacy": request.pharmacy, "deadline": request.deadline},
        f"consent request from pharmacy {request.pharmacy}, answer by {utc(request.deadline)}",
    )


@cli.command("delivery-request")
@click.argument("rx_id", type=RX_ID)
@click.option("--minutes", type=int, default=15, show_default=True, help="How long the patient has to answer.")
@click.option(
    "--as", "signer", required=True, help="The courier (or the pharmacy, at the counter) handing the drugs over."
)
@pass_ctx
def delivery_request(ctx, rx_id, minutes, signer):
    """Show the hand-over's request for the patient's receipt (RXD1.): the patient's app scans it."""
    client = ctx.client()
    deliverer = _address_of(ctx, signer)
    request = client.delivery_request(deliverer, rx_id, ttl=minutes * 60)
    _show_code(
        ctx,
        request.encode(),
        {"id": str(rx_id), "deliverer": deliverer, "fillsLeft": request.fills_left, "deadline": request.deadline},
        f"receipt request for {rx_id} from {deliverer}, answer by {utc(request.deadline)}",
    )


@cli.group()
def patient():
    """The patient's side from a terminal (the patient app does the same on the phone)."""


@patient.command("consent")
@click.option(
    "--code", "code_arg", required=True, help="The prescription code the hospital gave (RX1.; text or @FILE)."
)
@click.option("--request", "request_arg", required=True, help="The pharmacy's consent request (RXP1.; text or @FILE).")
@pass_ctx
def patient_consent_cmd(ctx, code_arg, request_arg):
    """Consent to one fill at the asking pharmacy: prints the authorisation code (RXA1.) to show it."""
    auth = patient_consent(ctx.client(), _payload_text(code_arg), _payload_text(request_arg))
    _show_code(
        ctx,
        auth.encode(),
        {"id": str(auth.rx_id), "pharmacy": auth.pharmacy, "fillsLeft": auth.fills_left, "deadline": auth.deadline},
        f"authorisation for pharmacy {auth.pharmacy}, the fill with {auth.fills_left} left, until {utc(auth.deadline)}",
    )


@patient.command("receive")
@click.option(
    "--code", "code_arg", required=True, help="The prescription code the hospital gave (RX1.; text or @FILE)."
)
@click.option("--request", "request_arg", required=True, help="The deliverer's receipt request (RXD1.; text or @FILE).")
@pass_ctx
def patient_receive_cmd(ctx, code_arg, request_arg):
    """Confirm receiving the drugs from the deliverer asking: prints the receipt code (RXR1.) to show it."""
    receipt = patient_receipt(ctx.client(), _payload_text(code_arg), _payload_text(request_arg))
    _show_code(
        ctx,
        receipt.encode(),
        {
            "id": str(receipt.rx_id),
            "deliverer": receipt.deliverer,
            "fillsLeft": receipt.fills_left,
            "deadline": receipt.deadline,
        },
        f"receipt for {receipt.rx_id} from {receipt.deliverer}, until {utc(receipt.deadline)}",
    )


def _show_code(ctx: Context, text: str, data: dict, caption: str) -> None:
    """A hand-over code: JSON with the text, or the QR drawn and the text under it."""
    if ctx.as_json:
        ctx.emit({**data, "code": text})
        return
    _print_qr(text)
    console.print(f"[bold]{escape(caption)}[/]")
    click.echo(text)


@cli.command()
@click.argument("rx_id", type=RX_ID)
@click.option("--as", "signer", required=True, help="The issuing doctor, or the regulator.")
@pass_ctx
def cancel(ctx, rx_id, signer):
    """Cancel a prescription that has not been redeemed."""
    tx = ctx.client().cancel(ctx.signer(signer), rx_id)
    ctx.emit(_tx_json(tx, id=str(rx_id)), f"[yellow]cancelled[/] {rx_id}")


@cli.command()
@click.argument("rx_id", type=RX_ID)
@click.option(
    "--index",
    "index_db",
    default=None,
    help="Read the trail from this event index up to its last block (default: the network's index when it exists).",
)
@click.option("--no-index", is_flag=True, help="Read every event from the chain, never from an index.")
@pass_ctx
def trail(ctx, rx_id, index_db, no_index):
    """The prescription's timestamped trail, rebuilt from the chain's events (from the regulator's
    index up to its last block where one exists: on a long chain only the newest blocks are asked)."""
    from rxchain.indexer.commands import default_db

    client = ctx.client()
    if index_db is None and not no_index and Path(default_db(ctx.network)).is_file():
        index_db = default_db(ctx.network)
    steps = None if no_index or index_db is None else audit.trail_from_index(client, rx_id, index_db)
    if steps is None:
        steps = audit.trail(client, rx_id)
    if not steps:
        raise audit.TrailNotFound(f"no events for prescription {rx_id} on chain {client.chain_id}")
    names = {a.address: n for n, a in dev_accounts().items()} if ctx.dev else {}
    ctx.emit([s.as_json() for s in steps], trail_table(str(rx_id), steps, names))


@cli.command()
@click.argument("rx_id", type=RX_ID)
@click.option("--doc", "doc_path", required=True, type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def verify(ctx, rx_id, doc_path):
    """Check a document file against the prescription on chain (exit 1 on mismatch)."""
    check = audit.verify_document(ctx.client(), rx_id, load_document(doc_path))
    text = (
        "[green]MATCH[/]: the document is the one the doctor issued"
        if check.matches
        else "[red]MISMATCH[/]:\n  " + "\n  ".join(check.problems)
    )
    ctx.emit(check.as_json(), text)
    if not check.matches:
        sys.exit(EXIT_REFUSED)


@cli.group()
def custody():
    """What a revoked or lapsed pharmacy or courier holds: the regulator reassigns or voids it."""


@custody.command("reassign")
@click.argument("rx_id", type=RX_ID)
@click.option(
    "--to",
    "to",
    required=True,
    help="A pharmacy (for a dispensed prescription) or courier (dispatched) in good standing.",
)
@_AS_REGULATOR
@pass_ctx
def custody_reassign(ctx, rx_id, to, signer):
    """Move prescription RX_ID from its revoked or lapsed holder to --to."""
    to = _account(ctx, to)
    tx = ctx.client().reassign_custody(ctx.signer(signer), rx_id, to)
    ctx.emit(
        _tx_json(tx, id=str(rx_id), to=to), f"[yellow]custody reassigned[/] {rx_id} to {to} at {utc(tx.block_time)}"
    )


@custody.command("void")
@click.argument("rx_id", type=RX_ID)
@_AS_REGULATOR
@pass_ctx
def custody_void(ctx, rx_id, signer):
    """Void the fill RX_ID's revoked or lapsed holder has; the fills left stay redeemable elsewhere."""
    from rxchain.chain.boxes import BoxesClient, BoxesNotDeployed

    client = ctx.client()
    regulator = ctx.signer(signer)
    tx = client.void_custody(regulator, rx_id)
    state = client.prescription(rx_id)
    # The voided fill's boxes were recorded by the pharmacy that lost custody: the fill never reached the
    # patient, so it must never be claimed (the registry shows it Refillable, like a received fill).
    fill_voided = None
    try:
        boxes_client = BoxesClient.connect(client, ctx.network)
    except BoxesNotDeployed:
        boxes_client = None
    if boxes_client is not None and boxes_client.fill(rx_id, state.fills_left).pharmacy is not None:
        fill_voided = boxes_client.void_fill(regulator, rx_id, state.fills_left).tx_hash
    ctx.emit(
        _tx_json(tx, id=str(rx_id), status=state.status.label, fillsLeft=state.fills_left, fillVoidedTx=fill_voided),
        f"[yellow]custody voided[/] {rx_id}: now {state.status.label}, {state.fills_left} fill(s) left"
        + ("; its recorded boxes' fill voided for claims" if fill_voided else ""),
    )


@cli.group("outbox")
def outbox_group():
    """The transactions this machine signed: what is still pending, failed or dropped."""


@outbox_group.command("status")
@click.option("--limit", default=50, show_default=True, help="How many entries to list.")
@pass_ctx
def outbox_status(ctx, limit):
    """Counts per state, and the entries not mined (no node needed)."""
    path = Path(ctx.outbox_path)
    if not path.is_file():
        raise click.UsageError(f"no outbox at {path}: nothing was signed on network {ctx.network!r} from here")
    box = Outbox(path)
    counts = box.counts()
    entries = box.entries(limit=limit)
    data = {"outbox": str(path), "counts": counts, "entries": [_entry_json(e) for e in entries]}
    table = Table(
        title=f"outbox {path}: " + (", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "empty")
    )
    for column in ("state", "what", "sender", "nonce", "tx hash", "operation key"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.state, e.description, e.sender, str(e.nonce), e.tx_hash, e.op_key)
    ctx.emit(data, table)


@outbox_group.command("resume")
@pass_ctx
def outbox_resume(ctx):
    """Re-send what the node lacks (pending, or lost in blocks a restarted node forgot), in nonce order, and wait
    for it."""
    client = ctx.client(resume=False)
    results = []
    for outcome in client.resume_pending():
        if isinstance(outcome, TxResult):
            results.append({"ok": True, **_tx_json(outcome)})
        else:
            results.append({"ok": False, "error": outcome.__class__.__name__, "message": str(outcome)})
    counts = client.outbox.counts()
    lines = [
        f"[green]mined[/] {r['txHash']} in block {r['block']}" if r["ok"] else f"[red]{r['error']}[/]: {r['message']}"
        for r in results
    ]
    text = "\n".join(lines) if lines else "nothing to re-send: the node has every transaction of this outbox"
    ctx.emit(
        {"results": results, "counts": counts},
        text + "\n" + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())),
    )
    if any(not r["ok"] for r in results):
        sys.exit(EXIT_TX_FAILED)


def _entry_json(e) -> dict:
    return {
        "txHash": e.tx_hash,
        "state": e.state,
        "description": e.description,
        "sender": e.sender,
        "nonce": e.nonce,
        "chainId": e.chain_id,
        "opKey": e.op_key,
        "block": e.block,
    }


@cli.group("audit")
def audit_group():
    """Evidence bundles and member reports for auditors and the regulator."""


@audit_group.command("export")
@click.argument("rx_id", type=RX_ID)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="File (default <id>.evidence.json).")
@pass_ctx
def audit_export(ctx, rx_id, out):
    """Export an evidence bundle that a third party can re-check against any node."""
    path = Path(out or f"{rx_id}.evidence.json")
    if not path.parent.is_dir():
        raise errors.InvalidValue(f"cannot write {path}: the folder {path.parent} does not exist")
    bundle = audit.export_evidence(ctx.client(), rx_id, path)
    ctx.emit(
        {"file": str(path), "events": len(bundle["events"])},
        f"evidence for {rx_id}: {len(bundle['events'])} events -> {path}",
    )


@audit_group.command("check")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def audit_check(ctx, bundle_file):
    """Re-check an evidence bundle against the node (exit 1 on any difference)."""
    problems = audit.verify_evidence(ctx.client(), json.loads(Path(bundle_file).read_text()))
    ctx.emit(
        {"ok": not problems, "problems": problems},
        "[green]the bundle holds against the chain[/]"
        if not problems
        else "[red]differences:[/]\n  " + "\n  ".join(problems),
    )
    if problems:
        sys.exit(EXIT_REFUSED)


@audit_group.command("members")
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None, help="Activity from this UTC date."
)
@click.option(
    "--until",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="Activity before this UTC date.",
)
@pass_ctx
def audit_members(ctx, since, until):
    """Members by role, credential end dates, and what each issued, filled, carried in a time range."""
    from rich.table import Table

    client = ctx.client()
    start = audit.block_at_time(client, int(since.replace(tzinfo=timezone.utc).timestamp())) if since else None
    end = audit.block_at_time(client, int(until.replace(tzinfo=timezone.utc).timestamp())) - 1 if until else None
    report = audit.member_report(client, start, end)
    table = Table(title="Member report")
    for col in ("account", "roles", "valid until", "days left", "standing", "activity"):
        table.add_column(col)
    for r in report:
        table.add_row(
            r["account"],
            ",".join(r["roles"]) or "-",
            utc(r["validUntil"]),
            str(r["expiresInDays"]),
            "good" if r["inGoodStanding"] else "[red]not[/]",
            ", ".join(f"{k} {v}" for k, v in r["activity"].items()) or "-",
        )
    ctx.emit(report, table)


# ------------------------------------------------------------------------------------ bench


@cli.command()
@click.option("--prescriptions", "-n", type=int, default=5000, show_default=True)
@click.option(
    "--batched", "batched_fraction", type=float, default=0.5, show_default=True, help="Share issued in batches of 256."
)
@click.option("--doctors", type=int, default=4, show_default=True)
@click.option("--pharmacies", type=int, default=4, show_default=True)
@click.option("--couriers", type=int, default=4, show_default=True)
@click.option(
    "--on-devnet", is_flag=True, help="Run on the devnet (a fresh registry there) instead of an ephemeral anvil."
)
@click.option(
    "--issue-only", is_flag=True, help="Only issue, all in batches of 256 (the hospital-scale issuance figure)."
)
@click.option(
    "--ceiling",
    "ceiling_transactions",
    type=click.IntRange(min=10),
    default=3000,
    show_default=True,
    help="Pre-signed transactions for measuring the node's own ceiling first (the ratio's denominator).",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help=(
        "Most unmined transactions per sender"
        " (Besu's pool refuses a nonce 615 or more ahead of the sender's at the kit's settings)."
    ),
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes preparing --issue-only's batches (0: in rx itself)  [default: one per core]",
)
@click.option(
    "--boxes",
    type=int,
    default=0,
    show_default=True,
    help="Drug boxes each fill records in DrugBoxes (1 to 255, one dispense between redeem and dispatch; 0: off).",
)
def bench(
    prescriptions,
    batched_fraction,
    doctors,
    pharmacies,
    couriers,
    on_devnet,
    issue_only,
    ceiling_transactions,
    max_in_flight,
    workers,
    boxes,
):
    """Pipelined hospital-scale workload; the LAST line is one JSON object of figures."""
    import tempfile

    from rxchain.dev.anvil import Anvil
    from rxchain.dev.bench import bench_client, bench_table, check_boxes_per_fill, run_bench

    check_boxes_per_fill(boxes, issue_only=issue_only)  # before a node is started for nothing
    chain = None if on_devnet else Anvil.start(block_time=1)
    url = Devnet().url if on_devnet else chain.url
    try:
        with tempfile.TemporaryDirectory() as folder:
            client, boxes_contract = bench_client(url, f"{folder}/outbox.sqlite")
            result = run_bench(
                client,
                prescriptions=prescriptions,
                batched_fraction=batched_fraction,
                doctors=doctors,
                pharmacies=pharmacies,
                couriers=couriers,
                console=err_console,
                issue_only=issue_only,
                ceiling_transactions=ceiling_transactions,
                max_in_flight=max_in_flight,
                workers=workers,
                boxes=boxes,
                boxes_contract=boxes_contract,
            )
    finally:
        if chain is not None:
            chain.stop()
    err_console.print(bench_table(result))
    click.echo(json.dumps(result.figures))


# ---------------------------------------------------------------------------------- network


@cli.group()
def network():
    """The Besu QBFT consortium kit: generate it, and keep its permissioning in step with the registry."""


@network.command("init")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--validators", type=int, default=4, show_default=True, help="QBFT validators (4 tolerate one faulty).")
@click.option(
    "--members", type=int, default=0, show_default=True, help="Non-validating member nodes (hospitals, pharmacies)."
)
@click.option("--block-period", type=int, default=2, show_default=True, help="Seconds between blocks.")
@click.option("--host", default="127.0.0.1", show_default=True, help="IP address the nodes listen on.")
@click.option(
    "--node-host",
    "node_hosts",
    multiple=True,
    metavar="NAME=IP",
    callback=lambda _c, _p, v: _node_hosts(v),
    help=(
        "A node's own IP address on a multi-host network, e.g. validator-2=10.0.0.12 (repeatable; the rest use --host)."
    ),
)
@click.option("--allow", "allow", multiple=True, help="Accounts allowed to transact from the start (the regulator).")
@click.option("--overwrite", is_flag=True)
@pass_ctx
def network_init(ctx, out, validators, members, block_period, host, node_hosts, allow, overwrite):
    """Generate node keys, QBFT genesis (the project's EVM version), node configs and start scripts.

    Each node's address (--host, --node-host) is kept in kit.json and written into every enode,
    static-nodes.json and nodes-allowlist: no later command rewrites it."""
    from rich.table import Table

    from rxchain.network import init_network
    from rxchain.paths import evm_version, network_chain_id

    kit = init_network(
        Path(out),
        validators=validators,
        members=members,
        chain_id=network_chain_id("besu") or 272461,
        evm_version=evm_version(),
        block_period_seconds=block_period,
        host=host,
        hosts=node_hosts,
        allowed_accounts=list(allow),
        overwrite=overwrite,
    )
    table = Table(title=f"Besu QBFT kit in {kit.root} (chain {kit.chain_id}, {evm_version()})")
    for col in ("node", "role", "address", "rpc"):
        table.add_column(col)
    for node in kit.nodes:
        table.add_row(node.name, node.role, node.address, node.rpc_url)
    ctx.emit(json.loads(kit.model_dump_json()), table)
    for warning in kit.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")


def _node_hosts(pairs: tuple[str, ...]) -> dict[str, str]:
    """--node-host NAME=IP options as {name: ip}; a malformed or repeated one is a usage error."""
    hosts: dict[str, str] = {}
    for pair in pairs:
        name, sep, address = pair.partition("=")
        if not sep or not name.strip() or not address.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=IP (e.g. validator-2=10.0.0.12)", param_hint="--node-host")
        if name.strip() in hosts:
            raise click.BadParameter(f"{name.strip()} is given twice", param_hint="--node-host")
        hosts[name.strip()] = address.strip()
    return hosts


@network.command("allowlist")
@click.option("--kit", "kit_dir", required=True, type=click.Path(exists=True, file_okay=False))
@pass_ctx
def network_allowlist(ctx, kit_dir):
    """Write every node's accounts-allowlist from the registry's members in good standing.

    A node's nodes-allowlist is the operator's (real hosts and IPs, edited on each host): it is kept
    as the file has it; only a node without a file yet gets the kit's."""
    from rxchain.network import load_kit, write_permissions_config
    from rxchain.network.permissions import read_permissions_config
    from rxchain.network.registry import registry_allowlist

    kit = load_kit(Path(kit_dir))
    accounts = registry_allowlist(ctx.client())
    for node in kit.nodes:
        path = kit.paths(node).permissions
        enodes = read_permissions_config(path).nodes if path.is_file() else kit.enodes
        write_permissions_config(path, accounts, enodes)
    ctx.emit(
        {"accounts": accounts, "nodes": [n.name for n in kit.nodes]},
        f"{len(accounts)} accounts allowed; permissions written for {len(kit.nodes)} nodes",
    )


@network.command("follow")
@click.option(
    "--kit", "kit_dir", type=click.Path(exists=True, file_okay=False), help="Follow with every node of this kit."
)
@click.option("--node", "nodes", multiple=True, help="A node's JSON-RPC URL with the PERM API (repeatable).")
@click.option("--state", "state_file", default=None, help="State file (default .rxchain/follow-<network>.json).")
@click.option("--once", is_flag=True, help="Act on the head block once and stop.")
@click.option(
    "--status",
    is_flag=True,
    help="Show where the follower stands (no node is touched); exit 1 if a node is not in step.",
)
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between looks at the head.")
@pass_ctx
def network_follow(ctx, kit_dir, nodes, state_file, once, status, poll):
    """Keep every node's accounts allowlist equal to the registry's members in good standing, block by block."""
    from rxchain.network import load_kit
    from rxchain.network.follow import Follower, load_state

    path = Path(state_file or project_root() / ".rxchain" / f"follow-{ctx.network}.json")
    if status:
        state = load_state(path)
        if state is None:
            raise errors.InvalidValue(f"no follower state at {path}: the follower never ran with it")
        lines = [f"block {state.last_block}: {len(state.allowlist)} accounts allowed, {state.syncs} syncs"]
        lines += [
            f"  {url}: {'[green]' if s == 'in step' else '[red]'}{escape(s)}[/]" for url, s in state.node_status.items()
        ]
        ctx.emit(state.as_json(), "\n".join(lines))
        sys.exit(0 if state.in_step() else EXIT_REFUSED)
    urls = list(nodes) + (load_kit(Path(kit_dir)).rpc_urls if kit_dir else [])
    follower = Follower(ctx.client(), urls, path)

    def report(state, pushed) -> None:
        if pushed or not state.in_step():
            bad = [u for u, s in state.node_status.items() if s != "in step"]
            err_console.print(
                f"block {state.last_block}: {len(state.allowlist)} accounts"
                + (f"; NOT in step: {', '.join(bad)}" if bad else " pushed to every node")
            )

    if once:
        pushed = follower.step()
        ctx.emit(
            {**follower.state.as_json(), "pushed": pushed},
            f"block {follower.state.last_block}: " + ("allowlists updated" if pushed else "nothing to change"),
        )
        if not follower.state.in_step():
            sys.exit(EXIT_UNAVAILABLE)
        return
    err_console.print(
        f"following registry {follower.client.address} for {len(urls)} node(s); state in {path} (Ctrl-C stops)"
    )
    follower.run(poll_seconds=poll, on_step=report)


@network.command("sync-permissions")
@click.option("--kit", "kit_dir", type=click.Path(exists=True, file_okay=False), help="Sync every node of this kit.")
@click.option("--node", "nodes", multiple=True, help="A node's JSON-RPC URL (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would change.")
@pass_ctx
def network_sync(ctx, kit_dir, nodes, dry_run):
    """Push the registry's allowlist to running nodes through Besu's PERM JSON-RPC methods."""
    from rxchain.network import load_kit, sync_all
    from rxchain.network.registry import registry_allowlist

    urls = list(nodes) + (load_kit(Path(kit_dir)).rpc_urls if kit_dir else [])
    if not urls:
        raise click.UsageError("give --kit DIR or --node URL")
    outcome = sync_all(urls, registry_allowlist(ctx.client()), dry_run=dry_run)
    data = {
        "results": {
            url: {"added": r.added, "removed": r.removed, "notPersisted": r.not_persisted}
            for url, r in outcome.results.items()
        },
        "failures": {url: str(exc) for url, exc in outcome.failures.items()},
    }
    lines = [
        f"{url}: +{len(r.added)} -{len(r.removed)}"
        + (
            " [yellow](enforced now; its permissions file is stale: run rx network allowlist so a restart keeps it)[/]"
            if r.not_persisted
            else ""
        )
        for url, r in outcome.results.items()
    ]
    lines += [f"[red]{url}: {exc}[/]" for url, exc in outcome.failures.items()]
    ctx.emit(data, "\n".join(lines))
    if outcome.failures:
        sys.exit(EXIT_UNAVAILABLE)


# ------------------------------------------------------------------------------------ entry


def _add_indexer_commands() -> None:
    """rx index run|verify|status|bench|seed; rx serve (the dApp and the console) and its aliases rx dapp
    and rx console."""
    from rxchain.indexer.commands import index_group
    from rxchain.web.commands import console_command, dapp_command, serve_command

    cli.add_command(index_group)
    cli.add_command(serve_command)
    cli.add_command(dapp_command)
    cli.add_command(console_command)


_add_indexer_commands()


def _add_box_commands() -> None:
    """rx box register|labels|dispense|check|recall and rx claim file|show|approve|reject."""
    from rxchain.cli.boxes import box_group, claim_group

    cli.add_command(box_group)
    cli.add_command(claim_group)


_add_box_commands()


def _json_after_command(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Context).as_json = True


def _accept_json_everywhere(group: click.Group) -> None:
    """`rx show ID --json` as well as `rx --json show ID`: every command also takes --json."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_json_everywhere(command)
        elif not any("--json" in getattr(param, "opts", ()) for param in command.params):
            command.params.append(
                click.Option(
                    ["--json"],
                    is_flag=True,
                    expose_value=False,
                    callback=_json_after_command,
                    help="Machine-readable output.",
                )
            )


_accept_json_everywhere(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command, mapping named errors to one line and their category's exit code."""
    run_command(cli, argv, "rx")


def run_command(command: click.Command, argv: list[str] | None, prog_name: str) -> None:
    """Runs ``command`` (``rx``, or ``python -m rxchain.indexer``): a named error ends it as one line
    and its category's exit code, a usage error with 2, Ctrl-C with 130; ``--debug`` shows tracebacks."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # every error becomes one line and an exit code
        if debug:
            raise
        code = errors.exit_code_of(exc)
        if code is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(errors.one_line(exc))}", highlight=False, soft_wrap=True)
        sys.exit(code)


def _issue_on_paper(ctx: Context, client: RegistryClient, doctor, document: dict, fills: int, out: Path) -> None:
    """Issues, writes the slips to print (one fill slip per fill, one receipt slip per fill), drops the key."""
    from rxchain.core.qr import payload_png as png_of

    paper = issue_on_paper(client, doctor, document, fills=fills)
    rx = str(paper.rx_id)
    folder = _private_folder(out)
    files = []
    for kind, slips in (("fill", paper.fill_slips), ("receipt", paper.receipt_slips)):
        for n, text in enumerate(slips, start=1):
            path = _private_write(folder / f"{rx}-{kind}-{n}.txt", (text + "\n").encode())
            png = png_of(text, folder / f"{rx}-{kind}-{n}.png")
            png.chmod(0o600)
            files.append({"kind": kind, "fill": n, "code": str(path), "qrPng": str(png)})
    sheet = _private_write(folder / f"{rx}-slips.html", _paper_sheet(rx, paper.expires_at, files).encode())
    data = _tx_json(
        paper.tx,
        id=rx,
        expiresAt=paper.expires_at,
        handover="paper",
        fillSlips=paper.fill_slips,
        receiptSlips=paper.receipt_slips,
        files=files,
        sheet=str(sheet),
    )
    if ctx.as_json:
        ctx.emit(data)
    else:
        console.print(
            Panel(
                f"prescription [bold]{rx}[/]\nexpires {utc(paper.expires_at)}\n"
                f"{fills} fill slip(s) and {fills} receipt slip(s) in {folder}: print each fill slip on its own "
                "tear-off, and each receipt slip under a fold the patient opens only at the door\n"
                "the prescription's key signed them and is gone",
                title="issued on paper",
                border_style="green",
            )
        )
    err_console.print(f"[yellow]the slips in {folder} redeem and confirm the prescription: delete them once printed[/]")


def _paper_sheet(rx: str, expires_at: int, files: list[dict]) -> str:
    """A printable page: each fill slip on its own tear-off, each receipt slip behind a fold."""
    import base64
    import html

    fills = sum(1 for f in files if f["kind"] == "fill")
    parts = []
    for f in files:
        image = base64.b64encode(Path(f["qrPng"]).read_bytes()).decode()
        if f["kind"] == "fill":
            title = f"Fill {f['fill']} of {fills}: show this slip at the pharmacy for this fill only"
        else:
            title = (
                f"Receipt for fill {f['fill']}: keep this folded; open it only when the drugs are in your hands, "
                "and show it to whoever hands them over"
            )
        parts.append(
            f'<section class="{f["kind"]}"><h2>{html.escape(title)}</h2>'
            f'<img alt="{html.escape(f["kind"])} slip {f["fill"]}" src="data:image/png;base64,{image}"></section>'
        )
    return (
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>Prescription slips</title>'
        "<style>section{page-break-inside:avoid;border-top:2px dashed #000;padding:1em 0}"
        "section.receipt{border-top:2px dotted #000}img{width:60mm}</style>"
        f"<h1>Prescription {html.escape(rx[:10])}…, valid until {html.escape(utc(expires_at))}</h1>"
        "<p>Cut along the dashed lines. Each slip is good for one step only; keep them like cash.</p>"
        + "".join(parts)
        + "</html>"
    )


def _private_folder(path: Path) -> Path:
    """A folder for files that hold a prescription's secrets (created readable by the owner alone)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _private_write(path: Path, data: bytes) -> Path:
    """Writes ``data`` to a new file readable by the owner alone (never widened by the umask)."""
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _print_qr(text: str) -> None:
    """Draws the QR in the terminal when it fits (a wrapped QR cannot be scanned); else says where the PNG is."""
    drawing = payload_terminal(text)
    width = max(len(line) for line in drawing.splitlines())
    if console.is_terminal and console.width >= width:
        click.echo(drawing)
    else:
        console.print(f"   [dim](the QR needs a {width}-column terminal to draw; open the PNG)[/]")


def _compile() -> None:
    """Compiles the contracts (tools/compile.sh: a no-op when nothing changed); a failure is BuildFailed
    with the compiler's last words, before anything is sent."""
    done = subprocess.run(
        ["bash", "tools/compile.sh"], cwd=project_root(), env=tool_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        last_words = done.stdout[-2000:] + done.stderr[-2000:]
        raise errors.BuildFailed(f"compiling the contracts failed (nothing was deployed):\n{last_words}")


def _account(ctx: Context, value: str) -> str:
    from eth_utils import is_address, to_checksum_address

    if is_address(value):
        return to_checksum_address(value)
    if value.lower().startswith("0x"):
        raise errors.InvalidValue(f"{value!r} is not an address: 0x and 40 hex digits (a valid checksum if mixed case)")
    if ctx.dev:
        return load_signer(value, allow_dev=True).address
    raise errors.InvalidValue(f"{value!r} is not an address (0x and 40 hex digits)")


def read_receipt_id(client: RegistryClient, text: str) -> RxId:
    from rxchain.workflow import read_receipt

    return read_receipt(client, text).rx_id


def _address_of(ctx: Context, who: str) -> str:
    """The address a code names: an address as given, or the signer's (a dev identity, keystore, env:VAR)."""
    return _account(ctx, who) if who.startswith("0x") else ctx.signer(who).address


def _payload_from(payload_arg: str | None, qr_image: str | None) -> str:
    if bool(payload_arg) == bool(qr_image):
        raise click.UsageError("give the QR code as --payload TEXT|@FILE or as --qr-image PHOTO (one of them)")
    return read_qr_image(qr_image) if qr_image else _payload_text(payload_arg)


def _payload_text(value: str) -> str:
    if value.startswith("@"):
        return _read_text_file(value[1:], "QR payload").strip()
    return value.strip()


def _read_text_file(name: str, what: str) -> str:
    """A text file the user named, or an :class:`~rxchain.errors.InvalidValue` saying what is wrong with it."""
    path = Path(name)
    if path.is_dir():
        raise errors.InvalidValue(f"{name} is a folder: give the {what} file")
    if not path.is_file():
        raise errors.InvalidValue(f"{name}: no such {what} file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        hint = f": if it is a photo of the QR code, give it as --qr-image {name}" if what == "QR payload" else ""
        raise errors.InvalidValue(f"{name} is not a text file{hint}") from None


def _tx_json(tx: TxResult, **extra) -> dict:
    return {**extra, "txHash": tx.tx_hash, "block": tx.block_number, "blockTime": tx.block_time, "gasUsed": tx.gas_used}


def _json_default(value):
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "label"):
        return value.label
    return str(value)
