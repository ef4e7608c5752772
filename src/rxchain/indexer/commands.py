"""The ``rx index`` group (click), ready to add to ``rx``::

    from rxchain.indexer.commands import index_group
    cli.add_command(index_group)      # rx index run | verify | status | totals | bench | seed

(``rx serve --console`` and its alias ``rx console`` are in :mod:`rxchain.web.commands`.)

They read the global options of ``rx`` (``ctx.obj``: ``network``, ``rpc``, ``as_json``) and work the
same standalone: ``python -m rxchain.indexer [--network devnet] [--rpc URL] [--json] run|verify|...``.

The index database defaults to ``.rxchain/index-<network>.sqlite`` (``$RXCHAIN_INDEX_DB`` or ``--db``
override; a ``postgresql://`` URL works too). The registry and its deploy block come from
``deployments/<network>.json`` unless ``--registry``/``--deploy-block`` are given.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import click
from rich.console import Console

from rxchain.cli.render import camel_keys

err = Console(stderr=True)


@dataclass
class Options:
    """The global options ``rx`` gives its commands (``rxchain.cli.main.Context`` has the same names)."""

    network: str = "devnet"
    rpc: str | None = None
    as_json: bool = False


def default_db(network: str) -> str:
    """Where the index of ``network`` lives by default."""
    from rxchain.paths import project_root

    return os.environ.get("RXCHAIN_INDEX_DB") or str(project_root() / ".rxchain" / f"index-{network}.sqlite")


def _opts(ctx: click.Context) -> Options:
    obj = ctx.obj
    return Options(getattr(obj, "network", "devnet"), getattr(obj, "rpc", None), bool(getattr(obj, "as_json", False)))


def _target(opts: Options, registry: str | None, deploy_block: int | None) -> tuple[str, str, int]:
    """(rpc URL, registry, deploy block) for the network, with overrides."""
    rpc, registry, deploy_block, _boxes = _target_with_boxes(opts, registry, deploy_block)
    return rpc, registry, deploy_block


def _target_with_boxes(
    opts: Options, registry: str | None, deploy_block: int | None
) -> tuple[str, str, int, str | None]:
    """(rpc URL, registry, deploy block, DrugBoxes or None) for the network, with overrides; DrugBoxes
    from the deployment record when the registry is the record's."""
    rpc = opts.rpc or (os.environ.get("RXCHAIN_BESU_RPC") if opts.network == "besu" else None)
    if registry is not None and deploy_block is not None and rpc:
        return rpc, registry, deploy_block, None
    from rxchain.chain.deployment import load_deployment

    record = load_deployment(opts.network)
    rpc = rpc or record.rpc_url or _dev_rpc(opts.network)
    if not rpc:
        raise click.UsageError(f"no RPC URL for network {opts.network!r}: pass --rpc")
    boxes = record.boxes if registry in (None, record.registry) else None
    return rpc, registry or record.registry, record.deploy_block if deploy_block is None else deploy_block, boxes


def _dev_rpc(network: str) -> str | None:
    if network == "devnet":
        from rxchain.dev.devnet import Devnet

        return Devnet().url
    return None


def _labels(network: str) -> dict[str, str]:
    if network not in ("devnet", "local"):
        return {}
    from rxchain.chain.signers import dev_accounts

    return {a.address: name for name, a in dev_accounts().items()}


def _emit(opts: Options, data, text: str) -> None:
    if opts.as_json:
        click.echo(json.dumps(camel_keys(data), indent=2, default=str))
    else:
        click.echo(text)


# ------------------------------------------------------------------------------------ rx index


@click.group("index")
def index_group():
    """The regulator's index: the registry's events in a database (SQLite, or PostgreSQL by URL)."""


_db_option = click.option(
    "--db",
    "db_url",
    default=None,
    help="Index database: a file path or postgresql:// URL (default .rxchain/index-<network>.sqlite).",
)


@index_group.command("run")
@_db_option
@click.option("--follow", is_flag=True, help="Keep following new blocks (Ctrl-C stops; safe at any moment).")
@click.option("--to-block", type=int, default=None, help="Stop at this block.")
@click.option("--reset", is_flag=True, help="Drop the index and rebuild it from the deploy block.")
@click.option("--confirmations", type=int, default=0, show_default=True, help="Stay this many blocks behind the head.")
@click.option(
    "--max-range",
    type=int,
    default=5000,
    show_default=True,
    help="Most blocks per eth_getLogs (Besu's --rpc-max-logs-range).",
)
@click.option(
    "--poll", type=float, default=1.0, show_default=True, help="Seconds between looks at the head when following."
)
@click.option("--registry", default=None, help="Registry address (default: the deployment record's).")
@click.option("--deploy-block", type=int, default=None, help="The registry's deploy block (default: the record's).")
@click.pass_context
def index_run(ctx, db_url, follow, to_block, reset, confirmations, max_range, poll, registry, deploy_block):
    """Index the registry's events up to the head (resumes where the last run stopped)."""
    from rxchain.indexer.core import index

    opts = _opts(ctx)
    rpc, registry, deploy_block, boxes = _target_with_boxes(opts, registry, deploy_block)
    db_url = db_url or default_db(opts.network)

    def progress(stats):
        err.print(
            f"[dim]indexed to block {stats.last_block:,} of {stats.head:,}: {stats.events:,} events[/]", highlight=False
        )

    try:
        stats = index(
            rpc,
            registry,
            deploy_block,
            db_url,
            follow=follow,
            to_block=to_block,
            reset=reset,
            boxes=boxes,
            confirmations=confirmations,
            max_range=max_range,
            poll_interval=poll,
            progress=progress if follow or not opts.as_json else None,
            log=lambda message: err.print(f"[yellow]{message}[/]", highlight=False),
        )
    except KeyboardInterrupt:
        err.print("[yellow]stopped[/]: the next run resumes after the last committed block")
        return
    _emit(
        opts,
        stats.as_json(),
        f"indexed {stats.events:,} events in {stats.blocks:,} blocks ({stats.seconds:.1f} s, "
        f"{stats.events_per_s:,.0f} events/s); the index is at block {stats.last_block:,} in {stats.database}",
    )


@index_group.command("verify")
@_db_option
@click.option(
    "--sample", type=int, default=200, show_default=True, help="Indexed blocks, prescriptions and members to re-read."
)
@click.option("--all", "everything", is_flag=True, help="Re-read everything.")
@click.option("--seed", type=int, default=None, help="Seed of the random sample.")
@click.pass_context
def index_verify(ctx, db_url, sample, everything, seed):
    """Re-read a sample (or all) of the index from the node; exit 1 on any difference."""
    from rxchain.indexer.check import verify

    opts = _opts(ctx)
    rpc = opts.rpc or (os.environ.get("RXCHAIN_BESU_RPC") if opts.network == "besu" else None)
    if not rpc:
        rpc, _, _ = _target(opts, None, None)
    problems = verify(db_url or default_db(opts.network), rpc, sample=None if everything else sample, seed=seed)
    _emit(
        opts,
        {"ok": not problems, "problems": problems},
        "the index holds against the chain" if not problems else "differences:\n  " + "\n  ".join(problems),
    )
    if problems:
        sys.exit(1)


@index_group.command("status")
@_db_option
@click.pass_context
def index_status(ctx, db_url):
    """What the index holds: chain, registry, last block, headline counts."""
    from rxchain.indexer import queries
    from rxchain.indexer.db import Database

    opts = _opts(ctx)
    with Database(db_url or default_db(opts.network)).connect(readonly=True) as conn:
        data = {**queries.status(conn), "summary": queries.summary(conn), "rows": queries.counts(conn)}
    s = data["summary"]
    _emit(
        opts,
        data,
        f"chain {data['chainId']} registry {data['registry']}: block {data['lastBlock']:,} "
        f"({data['events']:,} events); {s['issued']:,} issued, {s['redeemed']:,} redeemed, "
        f"{s['cancelled']:,} cancelled, {s['expiredUnfilled']:,} expired unfilled; "
        f"{s['membersExpiringSoon']} credentials end within {s['expiringSoonDays']} days",
    )


@index_group.command("totals")
@_db_option
@click.pass_context
def index_totals(ctx, db_url):
    """Count the console's running totals of an index built before they existed (no node needed; the
    indexer also does it when it next opens the database), and check them against a scan."""
    from rxchain.indexer import totals
    from rxchain.indexer.check import check_totals
    from rxchain.indexer.db import Database, read_meta
    from rxchain.indexer.queries import NotIndexed

    opts = _opts(ctx)
    database = Database(db_url or default_db(opts.network))
    with database.connect() as conn:
        if not read_meta(conn):
            raise NotIndexed(f"{database.url.display()} holds no index: build one first (rx index run)")
        database.ensure_schema(conn)
        counted = totals.ensure(conn)
        problems = check_totals(conn)
    _emit(
        opts,
        {"counted": counted, "ok": not problems, "problems": problems},
        (
            "counted the running totals from the index's rows"
            if counted
            else "the index keeps its running totals already"
        )
        + ("; they agree with a scan" if not problems else ":\n  " + "\n  ".join(problems)),
    )
    if problems:
        sys.exit(1)


@index_group.command("bench")
@click.option("--prescriptions", "-n", type=int, default=2000, show_default=True)
@click.option(
    "--workload",
    type=click.Choice(["varied", "bench"]),
    default="varied",
    show_default=True,
    help="varied: every state over several days; bench: rx bench's all-completed workload.",
)
@click.option("--days", type=int, default=5, show_default=True, help="Days of chain time (varied workload).")
@click.option(
    "--block-time",
    type=int,
    default=1,
    show_default=True,
    help="Seconds between blocks of the throwaway anvil (0: a block per transaction).",
)
@click.option("--postgres", "pg_url", default=None, help="Also index into this (empty) PostgreSQL database.")
@click.option(
    "--temp-postgres", is_flag=True, help="Also index into a throwaway PostgreSQL server (Debian's postgresql)."
)
@click.option(
    "--keep-db",
    type=click.Path(dir_okay=False),
    default=None,
    help="Leave a SQLite index of the run here (for rx console).",
)
def index_bench(prescriptions, workload, days, block_time, pg_url, temp_postgres, keep_db):
    """Time indexing a generated workload on a throwaway anvil; the LAST line is one JSON object."""
    from rxchain.indexer.bench import bench

    servers = []
    try:
        urls = [pg_url] if pg_url else []
        if temp_postgres:
            from rxchain.indexer.pgtemp import TempPostgres

            servers.append(TempPostgres.start())
            urls.append(servers[-1].create_database("rxchain_bench"))
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            figures = bench(
                prescriptions=prescriptions,
                workload=workload,
                days=days,
                block_time=block_time or None,
                db_urls=[f"{folder}/index.sqlite", *urls],
                keep_db=keep_db,
                log=lambda message: err.print(f"[dim]{message}[/]", highlight=False),
            )
    finally:
        for server in servers:
            server.stop()
    for run in figures["runs"]:
        err.print(
            f"{run['kind']:>8}: {run['events']:,} events, {run['blocks']:,} blocks in {run['seconds']:.2f} s = "
            f"[bold]{run['eventsPerSecond']:,.0f} events/s[/]; again: {run['rerunSeconds']} s; verify (200): "
            f"{run['verifySample200Seconds']} s, {run['verifyProblems']} problems",
            highlight=False,
        )
    click.echo(json.dumps(figures))


@index_group.command("seed")
@click.option(
    "--days",
    type=int,
    default=3,
    show_default=True,
    help="Days of chain time to play (the chain's clock moves forward).",
)
@click.option("--per-day", type=int, default=24, show_default=True, help="Prescriptions a day (half in batches).")
@click.option("--seed", "seed_text", default=None, help="Workload seed (default: a new one, so runs differ).")
@click.pass_context
def index_seed(ctx, days, per_day, seed_text):
    """Development chains only: play a varied workload (every state, several days) on the recorded
    registry, for a console worth looking at. Moves the chain's clock forward by --days."""
    import secrets

    from web3 import Web3

    from rxchain.chain.client import RegistryClient
    from rxchain.chain.signers import dev_accounts
    from rxchain.indexer.workload import run_workload
    from rxchain.dev.demo import onboard

    opts = _opts(ctx)
    if opts.network not in ("devnet", "local"):
        raise click.UsageError("seeding uses development keys and moves the chain's clock: devnet only")
    rpc, registry, deploy_block = _target(opts, None, None)
    client = RegistryClient(
        Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 120})), registry, deploy_block=deploy_block
    )
    ids = dev_accounts()
    onboard(client, ids)
    result = run_workload(
        client,
        ids,
        days=days,
        per_day=per_day,
        seed=seed_text or secrets.token_hex(8),
        log=lambda message: err.print(f"[dim]{message}[/]", highlight=False),
    )
    _emit(
        opts,
        {"prescriptions": len(result.prescriptions), "transactions": result.transactions},
        f"played {len(result.prescriptions)} prescriptions ({result.transactions} transactions)"
        f" over {days} days of chain time",
    )


# ------------------------------------------------------------------------------- standalone


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--network", default=lambda: os.environ.get("RXCHAIN_NETWORK", "devnet"), show_default="devnet")
@click.option("--rpc", default=None, help="JSON-RPC URL (overrides the deployment record).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def standalone(ctx, network, rpc, as_json):
    """rxchain's index (the same as `rx index`; `rx serve --console` serves the console)."""
    ctx.obj = Options(network, rpc, as_json)


for _command in index_group.commands.values():
    standalone.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """``python -m rxchain.indexer``: errors as one line with rx's exit codes, as ``rx`` ends them."""
    from rxchain.cli.main import run_command

    run_command(standalone, argv, "python -m rxchain.indexer")
