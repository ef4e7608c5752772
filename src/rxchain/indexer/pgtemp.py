"""A throwaway PostgreSQL server for tests and benchmarks (Debian's ``postgresql`` package).

``initdb`` + ``pg_ctl`` in a temporary folder, listening on 127.0.0.1 on a free port, trusting local
connections, fsync off. PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (``runuser``). :func:`find_binaries` says why it cannot run, when it cannot.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rxchain.errors import Unavailable


class PostgresUnavailable(Unavailable):
    """No PostgreSQL server can be started here (the reason is the message)."""


def find_binaries() -> Path:
    """The folder holding initdb and pg_ctl; raises :class:`PostgresUnavailable` saying what is missing."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql")


@dataclass
class TempPostgres:
    """A running throwaway cluster. ``url(dbname)`` gives a libpq URL; ``create_database`` a fresh one."""

    folder: Path
    port: int
    binaries: Path
    user: str | None  # the system user running it (postgres when started as root), None for the current user

    @classmethod
    def start(cls) -> "TempPostgres":
        binaries = find_binaries()
        run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' system user to run PostgreSQL"
                ) from None
            if not shutil.which("runuser"):
                raise PostgresUnavailable(
                    "running as root without runuser: cannot start PostgreSQL as the postgres user"
                )
            run_as = "postgres"
        folder = Path(tempfile.mkdtemp(prefix="rxchain-pg-"))
        if run_as:
            shutil.chown(folder, run_as, run_as)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = cls(folder, port, binaries, run_as)
        data = folder / "data"
        server._run(
            ["initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]
        )
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        server._run(
            ["pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "-t", "60", "start"]
        )
        return server

    def _run(self, args: list[str]) -> None:
        command = [str(self.binaries / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder, timeout=120)
        if done.returncode != 0:
            log = (self.folder / "server.log").read_text()[-2000:] if (self.folder / "server.log").exists() else ""
            raise PostgresUnavailable(f"{args[0]} failed: {done.stderr.strip()[-1000:]} {log}")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Creates database ``name`` (dropping one of that name) and returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(["pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"])
        except (PostgresUnavailable, subprocess.TimeoutExpired):
            pass
        for _ in range(50):  # let the server's files go before removing them
            if not (self.folder / "data" / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "TempPostgres":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["PostgresUnavailable", "TempPostgres", "find_binaries"]
