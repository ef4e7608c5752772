"""``rx serve`` (the dApp, the console and the patient's app as one application, with sign-in) and its aliases
``rx dapp`` (the dApp alone, port 8600) and ``rx console`` (the console alone, port 8700)."""

from __future__ import annotations

import ipaddress
import os

import click
from rich.console import Console

err = Console(stderr=True)


def _options(f):
    """The options ``rx serve`` and its aliases share."""
    for option in reversed(
        [
            click.option("--host", default="127.0.0.1", show_default=True),
            click.option("--workers", type=int, default=1, show_default=True, help="uvicorn worker processes."),
            click.option(
                "--db",
                "db_url",
                default=None,
                help=(
                    "The console's index database: a file path or postgresql:// URL"
                    " (default .rxchain/index-<network>.sqlite)."
                ),
            ),
            click.option("--db-pool", type=int, default=8, show_default=True, help="Database connections per worker."),
            click.option(
                "--follow/--no-follow",
                default=True,
                show_default=True,
                help="Run the indexer in the background, following the chain.",
            ),
            click.option(
                "--tx-url",
                default=None,
                help="Link format for transactions with {hash} (default: the console's tx/{hash} view).",
            ),
            click.option("--registry", default=None, help="Registry address (default: the deployment record's)."),
            click.option("--deploy-block", type=int, default=None),
            click.option(
                "--origin",
                default=None,
                help="The address members reach this server at, e.g. https://rx.example (the sign-in domain; default http://HOST:PORT).",
            ),
            click.option(
                "--sign-in/--no-sign-in",
                "sign_in",
                default=True,
                show_default=True,
                help="Members sign in with their chain key (EIP-4361); --no-sign-in opens everything (loopback only).",
            ),
            click.option(
                "--session-minutes", type=int, default=15, show_default=True, help="How long a session lasts."
            ),
            click.option(
                "--lots",
                "lots_dir",
                type=click.Path(file_okay=False),
                default=None,
                help="The public lot files (*.lot.json) the box pages locate boxes in (default .rxchain/lots).",
            ),
            click.option(
                "--offline",
                is_flag=True,
                help=(
                    "The console with no node at all: the database as it is"
                    " (no following, no tx/ view; needs --no-sign-in)."
                ),
            ),
        ]
    ):
        f = option(f)
    return f


def run(
    ctx: click.Context,
    *,
    dapp: bool,
    console: bool,
    port: int,
    patient: bool = False,
    host: str,
    workers: int,
    db_url: str | None,
    db_pool: int,
    follow: bool,
    tx_url: str | None,
    registry: str | None,
    deploy_block: int | None,
    origin: str | None,
    sign_in: bool,
    session_minutes: int,
    offline: bool,
    lots_dir: str | None = None,
) -> None:
    from rxchain.chain.deployment import load_deployment
    from rxchain.indexer.commands import _dev_rpc, _labels, default_db
    from rxchain.web.dapp import DEV_CHAIN_IDS, DEV_NETWORKS
    from rxchain.web.service import ServeOptions, serve

    network = getattr(ctx.obj, "network", "devnet")
    rpc = getattr(ctx.obj, "rpc", None) or (os.environ.get("RXCHAIN_BESU_RPC") if network == "besu" else None)
    loopback = ipaddress.ip_address(host).is_loopback if host != "localhost" else True
    if not sign_in and not loopback:
        raise click.UsageError("without sign-in everybody sees everything: serve on a loopback address only")
    if workers < 1:
        raise click.UsageError("--workers must be at least 1")
    if offline:
        if sign_in or dapp or patient:
            raise click.UsageError(
                "--offline serves the console's database alone"
                ": sign-in and the dApp need the node (add --no-sign-in, --console)"
            )
        serve(
            ServeOptions(
                network=network,
                host=host,
                port=port,
                dapp=False,
                console=True,
                workers=workers,
                db_url=db_url or default_db(network),
                follow=False,
                tx_url=tx_url,
                labels=_labels(network),
                sign_in=False,
                pool_size=db_pool,
            )
        )
        return
    deployment = load_deployment(network)
    rpc = rpc or deployment.rpc_url or _dev_rpc(network)
    dev = network in DEV_NETWORKS and deployment.chain_id in DEV_CHAIN_IDS
    if dev and not loopback:
        raise click.UsageError("on the devnet the pages hand out development keys: serve on a loopback address only")
    options = ServeOptions(
        network=network,
        host=host,
        port=port,
        dapp=dapp,
        console=console,
        patient=patient,
        workers=workers,
        rpc_url=rpc,
        registry=registry or deployment.registry,
        chain_id=deployment.chain_id,
        deploy_block=deploy_block if deploy_block is not None else deployment.deploy_block,
        boxes=deployment.boxes if registry in (None, deployment.registry) else None,
        db_url=db_url or default_db(network),
        follow=follow,
        tx_url=tx_url,
        labels=_labels(network),
        sign_in=sign_in,
        origin=origin,
        session_seconds=session_minutes * 60,
        pool_size=db_pool,
        dev_keys=dev,
        lots_dir=lots_dir,
    )
    serve(
        options, log=lambda message: err.print(f"[dim]{message}[/]", highlight=False) if "indexer" in message else None
    )


@click.command("serve")
@click.option("--dapp", "parts", flag_value="dapp", multiple=True, help="Serve the pharmacy dApp (/dapp/).")
@click.option(
    "--console", "parts", flag_value="console", multiple=True, help="Serve the regulator's console (/console/)."
)
@click.option("--patient", "parts", flag_value="patient", multiple=True, help="Serve the patient's app (/patient/).")
@click.option("--port", type=int, default=8600, show_default=True)
@_options
@click.pass_context
def serve_command(ctx, parts, port, **options):
    """Serve the dApp and the console (both unless parts are chosen; --patient adds the patient's app) as
    one application (Ctrl-C stops it)."""
    chosen = set(parts) or {"dapp", "console"}
    run(ctx, dapp="dapp" in chosen, console="console" in chosen, patient="patient" in chosen, port=port, **options)


@click.command("dapp")
@click.option("--port", type=int, default=8600, show_default=True)
@_options
@click.pass_context
def dapp_command(ctx, port, **options):
    """Serve the pharmacy dApp alone (the same as `rx serve --dapp`)."""
    run(ctx, dapp=True, console=False, port=port, **options)


@click.command("console")
@click.option("--port", type=int, default=8700, show_default=True)
@_options
@click.pass_context
def console_command(ctx, port, **options):
    """Serve the regulator's console alone (the same as `rx serve --console --port 8700`)."""
    run(ctx, dapp=False, console=True, port=port, **options)


__all__ = ["console_command", "dapp_command", "serve_command"]
