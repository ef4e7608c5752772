"""``rx serve``: the dApp, the console and the patient's app as one application on uvicorn, with sign-in.

:class:`ServeOptions` says what to serve; :func:`build` makes the application (and the parts' state)
from it; :func:`serve` runs it in the foreground until Ctrl-C, in this process (one worker) or in
several uvicorn worker processes. With workers, the options travel to each worker in the environment
(``RXCHAIN_SERVE_OPTIONS``, JSON) and :func:`app_from_environment` rebuilds the application there;
the console's follower (the indexer) runs once, in the parent process, and the workers share nonces
and sessions through the sign-in store's SQLite file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette

from rxchain.errors import InvalidValue
from rxchain.web.server import Part, WebServer, build_app

ENVIRONMENT = "RXCHAIN_SERVE_OPTIONS"


@dataclass
class ServeOptions:
    """What ``rx serve`` serves. ``rpc_url``/``registry``/``chain_id``/``deploy_block`` come from the
    deployment record when not given; ``origin`` is the address members reach the server at (the
    sign-in messages' domain; default http://host:port)."""

    network: str = "devnet"
    host: str = "127.0.0.1"
    port: int = 8600
    dapp: bool = True
    console: bool = True
    patient: bool = False
    workers: int = 1
    rpc_url: str | None = None
    registry: str | None = None
    chain_id: int | None = None
    deploy_block: int | None = None
    #: DrugBoxes beside the registry (its events are indexed too), from the deployment record.
    boxes: str | None = None
    db_url: str | None = None
    follow: bool = True
    tx_url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    sign_in: bool = True
    origin: str | None = None
    auth_store: str | None = None
    session_seconds: int = 15 * 60
    pool_size: int = 8
    dev_keys: bool = False
    #: The public lot files the box pages locate boxes in (default .rxchain/lots, as rx box register writes)
    lots_dir: str | None = None
    #: False: every figure is computed for every request (what the first request after each new block
    #: costs; scripts/console_load.py --uncached measures it)
    figure_cache: bool = True

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeOptions":
        return cls(**json.loads(text))


def build(
    options: ServeOptions, *, run_follower: bool = True, log: Callable[[str], None] | None = None
) -> tuple[Starlette, list[Part]]:
    """The application for ``options`` and its parts (start them to start the follower)."""
    from rxchain.chain.deployment import Deployment, load_deployment

    if not (options.dapp or options.console or options.patient):
        raise InvalidValue("nothing to serve: choose --dapp, --console and/or --patient")
    deployment: Deployment | None = None
    if options.dapp or options.patient or (options.sign_in and (options.registry is None or options.chain_id is None)):
        deployment = load_deployment(options.network)
    rpc_url = options.rpc_url or (deployment.rpc_url if deployment else None)
    registry = options.registry or (deployment.registry if deployment else None)
    chain_id = options.chain_id or (deployment.chain_id if deployment else None)

    auth = None
    if options.sign_in:
        from rxchain.web.auth import Auth, AuthStore, Membership

        if not rpc_url or not registry or chain_id is None:
            raise InvalidValue(
                "sign-in reads members from the registry"
                ": it needs the node's URL and the registry (deploy, or pass --rpc)"
            )
        dev_keys = None
        if options.dev_keys:
            from rxchain.web.dapp import _dev_keys

            dev_keys = _dev_keys()
        auth = Auth(
            Membership(rpc_url, registry),
            chain_id,
            origin=options.origin or f"http://{options.host}:{options.port}",
            store=AuthStore(options.auth_store),
            session_seconds=options.session_seconds,
            dev_keys=dev_keys,
        )

    parts: list[Part] = []
    lots = None
    if options.dapp or options.patient:
        from rxchain.web.lots import LotIndex, default_lots_dir

        lots = LotIndex(options.lots_dir or default_lots_dir())  # one index for both pages
    if options.console:
        from rxchain.web.console import console_part, make_console

        if not options.db_url:
            raise InvalidValue("the console needs its index database (--db)")
        console = make_console(
            options.db_url,
            rpc_url=rpc_url,
            follow=options.follow and run_follower and bool(rpc_url),
            registry=options.registry,
            deploy_block=options.deploy_block,
            boxes=options.boxes,
            tx_url=options.tx_url,
            labels=options.labels,
            pool_size=options.pool_size,
            figure_cache=options.figure_cache,
            followed_elsewhere=options.follow and not run_follower and bool(rpc_url),
            log=log,
        )
        parts.append(console_part(console, auth=auth))
    if options.dapp:
        from rxchain.web.dapp import build_config, dapp_part

        parts.append(dapp_part(build_config(options.network, rpc_url, deployment=deployment), auth=auth, lots=lots))
    if options.patient:
        from rxchain.web.dapp import build_config
        from rxchain.web.patient import patient_part

        parts.append(patient_part(build_config(options.network, rpc_url, deployment=deployment), lots=lots))
    return build_app(parts, auth=auth), parts


def app_from_environment() -> Starlette:
    """The application for the options in ``RXCHAIN_SERVE_OPTIONS`` (uvicorn's factory in each worker)."""
    app, _parts = build(ServeOptions.from_json(os.environ[ENVIRONMENT]), run_follower=False)
    return app


def serve(
    options: ServeOptions, *, ready: Callable[[str], None] | None = None, log: Callable[[str], None] | None = None
) -> None:
    """Serves ``options`` in the foreground until interrupted (Ctrl-C). ``ready`` gets the root URL."""
    if options.workers <= 1:
        app, parts = build(options, log=log)
        server = WebServer(app, options.host, options.port, parts=parts)
        server.start()
        try:
            (ready or _announce)(server.root_url)
            server.wait()  # until Ctrl-C
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        return

    import uvicorn

    with tempfile.TemporaryDirectory(prefix="rxchain-serve-") as tmp:
        if options.sign_in and not options.auth_store:
            options = dataclasses.replace(options, auth_store=str(Path(tmp) / "auth.sqlite"))
        _app, parts = build(options, log=log)  # checks the options here, and starts the follower once
        for part in parts:
            part.start()
        os.environ[ENVIRONMENT] = options.to_json()
        try:
            (ready or _announce)(f"http://{options.host}:{options.port}/")
            uvicorn.run(
                "rxchain.web.service:app_from_environment",
                factory=True,
                host=options.host,
                port=options.port,
                workers=options.workers,
                log_level="warning",
                access_log=False,
                server_header=False,
            )
        finally:
            for part in parts:
                part.stop()


def _announce(url: str) -> None:
    print(f"rxchain on {url} (Ctrl-C to stop)", flush=True)


__all__ = ["ENVIRONMENT", "ServeOptions", "app_from_environment", "build", "serve"]
