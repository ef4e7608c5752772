"""Load on the console, signed in: wrk (Debian's) against the summary, daily and trail endpoints.

    python scripts/console_load.py INDEX_DB [--workers 1[,2]] [--connections 16] [--seconds 15] [--postgres]
                                   [--uncached | --both] [--endpoints summary,daily,trail] [--cached-endpoints summary]

INDEX_DB is an index database (a SQLite file such as ``rx index bench --keep-db FILE`` leaves, or a
postgresql:// URL). ``--postgres`` copies a SQLite index, table by table, into a throwaway PostgreSQL
server (Debian's, :mod:`rxchain.indexer.pgtemp`) and measures the console on that. The registry the
members sign in to is a fresh one on a throwaway anvil, onboarded with the development identities (the
index need not be of that chain: the sign-in reads members from the registry, the figures come from the
index). The regulator signs in (EIP-4361) and wrk sends the session cookie with every request, so every
request pays the member check. ``--uncached`` serves without the console's per-block figure cache: every
request computes its figure from the database, as the first request after each new block does;
``--both`` measures without the cache, then with it (``--cached-endpoints``), on the same database. One
line of JSON per endpoint and worker count: requests/s, p50, p90, p99 latency, and the machine's load
average (/proc/loadavg) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

import requests
from eth_account import Account
from eth_account.messages import encode_defunct

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, cookie: str, connections: int, seconds: int) -> dict:
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Cookie: rx_session={cookie}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    figures = {"requestsPerSecond": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out).groups()
        figures[f"p{pct}Ms"] = round(float(value) * UNITS[unit], 1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    figures["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--workers", default="1", help="worker processes; a comma-separated list measures each")
    parser.add_argument(
        "--uncached", action="store_true", help="no per-block figure cache: every request computes its figure"
    )
    parser.add_argument("--both", action="store_true", help="without the cache, then with it")
    parser.add_argument("--endpoints", default="summary,daily,trail")
    parser.add_argument(
        "--cached-endpoints",
        default=None,
        help="with --both: the endpoints measured with the cache (default: --endpoints)",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument(
        "--postgres", action="store_true", help="copy the SQLite index into a throwaway PostgreSQL first"
    )
    args = parser.parse_args()
    if args.postgres:
        from rxchain.indexer.pgtemp import TempPostgres

        with TempPostgres.start() as pg:
            args.db = copy_index(args.db, pg.create_database("load"))
            measure(args)
    else:
        measure(args)


def copy_index(sqlite_path: str, url: str) -> str:
    """The index in ``sqlite_path`` copied into the (empty) PostgreSQL database ``url``; returns ``url``."""
    from rxchain.indexer.db import Database

    target = Database(url)
    with Database(sqlite_path).connect(readonly=True) as source, target.connect() as conn:
        target.ensure_schema(conn)
        for table in (
            "meta",
            "blocks",
            "events",
            "prescriptions",
            "fills",
            "members",
            "batches",
            "totals",
            "daily_totals",
        ):
            rows = source.query_dicts(f"SELECT * FROM {table}")
            if rows:
                columns = list(rows[0])
                with conn.transaction():
                    conn.execute(f"DELETE FROM {table}")
                    conn.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        [tuple(row[c] for c in columns) for row in rows],
                    )
        conn.execute("ANALYZE")
    return url


def query_times(db: str) -> dict:
    """Median time of one call of the summary and the daily series in this process: from the running
    totals, and by scanning the tables (what each new block cost before the totals)."""
    import statistics

    from rxchain.indexer import queries
    from rxchain.indexer.db import Database

    out: dict = {"database": Database(db).kind, "loadavgBefore": _loadavg()}
    with Database(db).connect(readonly=True) as conn:
        out["prescriptions"] = conn.query_one("SELECT COUNT(*) FROM prescriptions")[0]
        for name, fn, repeat in (
            ("summary", queries.summary, 50),
            ("summaryScan", queries.summary_scan, 5),
            ("daily", queries.daily, 50),
            ("dailyScan", queries.daily_scan, 5),
        ):
            fn(conn)
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                fn(conn)
                times.append((time.perf_counter() - started) * 1000)
            out[f"{name}MedianMs"] = round(statistics.median(times), 2)
        out["sameAsScan"] = queries.summary(conn) == queries.summary_scan(conn) and queries.daily(
            conn
        ) == queries.daily_scan(conn)
    out["loadavgAfter"] = _loadavg()
    return out


def measure(args) -> None:
    print(json.dumps(query_times(args.db)), flush=True)
    modes = (
        [(False, args.endpoints), (True, args.cached_endpoints or args.endpoints)]
        if args.both
        else [(not args.uncached, args.endpoints)]
    )
    for workers in [int(w) for w in str(args.workers).split(",")]:
        for cached, endpoints in modes:
            measure_one(args, workers, cached, endpoints)


def measure_one(args, workers: int, cached: bool, endpoints: str) -> None:

    from rxchain.chain.client import RegistryClient
    from rxchain.chain.deploy import deploy_registry
    from rxchain.chain.signers import dev_accounts
    from rxchain.dev.anvil import Anvil, free_port
    from rxchain.dev.demo import onboard
    from rxchain.indexer import totals
    from rxchain.indexer.db import Database
    from web3 import Web3

    ids = dev_accounts()
    with Anvil.start(chain_id=31337) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        deployed = deploy_registry(w3, ids["regulator"], network="local", rpc_url=node.url, record=False)
        onboard(RegistryClient(w3, deployed.registry, deploy_block=deployed.deploy_block), ids)
        port = free_port()
        options = dict(
            network="local",
            host="127.0.0.1",
            port=port,
            dapp=False,
            console=True,
            workers=workers,
            rpc_url=node.url,
            registry=deployed.registry,
            chain_id=deployed.chain_id,
            db_url=args.db,
            follow=False,
            pool_size=args.pool,
            figure_cache=cached,
        )
        code = f"from rxchain.web.service import ServeOptions, serve; serve(ServeOptions(**{options!r}))"
        server = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    requests.get(base + "/console/api/whoami", timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.2)
            regulator = ids["regulator"]
            message = requests.post(base + "/auth/message", json={"address": regulator.address}, timeout=10).json()[
                "message"
            ]
            signature = Account.sign_message(encode_defunct(text=message), regulator.key).signature.hex()
            signed = requests.post(
                base + "/auth/sign-in",
                json={"message": message, "signature": "0x" + signature.removeprefix("0x")},
                timeout=10,
            )
            signed.raise_for_status()
            cookie = signed.cookies["rx_session"]
            with Database(args.db).connect(readonly=True) as conn:
                rx_id = conn.query_one("SELECT id FROM prescriptions ORDER BY issued_at DESC LIMIT 1")[0]
                events = conn.query_one("SELECT COUNT(*) FROM events")[0]
                prescriptions = conn.query_one("SELECT COUNT(*) FROM prescriptions")[0]
                kept = totals.has(conn)
            paths = {
                "summary": "/console/api/summary",
                "daily": "/console/api/daily",
                "trail": f"/console/api/trail/{rx_id}",
            }
            for name in endpoints.split(","):
                path = paths[name]
                assert requests.get(base + path, cookies={"rx_session": cookie}, timeout=60).status_code == 200
                load_before = _loadavg()
                figures = wrk(base + path, cookie, args.connections, args.seconds)
                print(
                    json.dumps(
                        {
                            "endpoint": name,
                            "database": Database(args.db).kind,
                            "events": events,
                            "prescriptions": prescriptions,
                            "runningTotals": kept,
                            "cached": cached,
                            "workers": workers,
                            "connections": args.connections,
                            **figures,
                            "loadavgBefore": load_before,
                            "loadavgAfter": _loadavg(),
                        }
                    ),
                    flush=True,
                )
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a server that does not stop on Ctrl-C in time: end it
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


if __name__ == "__main__":
    main()
