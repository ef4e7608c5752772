"""The one way this project starts anvil: the devnet, ``rx bench``, the index bench and the tests.

Every node it starts has the consortium's settings: free gas (gas price 0, base fee 0, no minimum
priority fee, so members with no balance transact), the project's hardfork (ape-config.yaml), the
development mnemonic's ten funded accounts, and a large block gas limit. What differs between uses
(port, chain id, block time, a state file, request size limit) is a parameter.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from rxchain.chain.rpc import RpcSession
from rxchain.chain.signers import DEV_MNEMONIC
from rxchain.errors import NodeUnavailable, Unavailable
from rxchain.paths import evm_version, tool_env


class AnvilError(Unavailable):
    """anvil is not installed, exited, or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_command(
    port: int,
    chain_id: int,
    *,
    host: str = "127.0.0.1",
    block_time: int | None = None,
    gas_limit: int = 2_000_000_000,
    accounts: int = 10,
    state_file: Path | None = None,
    state_interval: int | None = None,
    unlimited_requests: bool = True,
) -> list[str]:
    """The command line of an anvil with the consortium's settings (see the module docstring)."""
    binary = shutil.which("anvil", path=tool_env()["PATH"])
    if binary is None:
        raise AnvilError("anvil not found: run `make setup` (it installs anvil from npm)")
    command = [
        binary,
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--hardfork",
        evm_version(),
        "--gas-price",
        "0",
        "--base-fee",
        "0",
        "--disable-min-priority-fee",
        "--gas-limit",
        str(gas_limit),
        "--accounts",
        str(accounts),
        "--mnemonic",
        DEV_MNEMONIC,
    ]
    if block_time:
        command += ["--block-time", str(block_time)]
    if state_file is not None:
        command += ["--state", str(state_file)]
        if state_interval is not None:
            command += ["--state-interval", str(state_interval)]
    if unlimited_requests:
        command.append("--no-request-size-limit")
    return command


@dataclass
class Anvil:
    """A throwaway anvil (a context manager): :meth:`start` waits until it answers, :meth:`stop` ends it."""

    url: str
    process: subprocess.Popen

    @classmethod
    def start(
        cls,
        *,
        chain_id: int = 31339,
        port: int | None = None,
        block_time: int | None = None,
        log_file: Path | None = None,
        timeout: float = 30.0,
        **options,
    ) -> Anvil:
        """Starts anvil (any :func:`anvil_command` option) and returns once it answers ``eth_chainId``."""
        port = port or free_port()
        command = anvil_command(port, chain_id, block_time=block_time, **options)
        log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # handed to the child
        try:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=tool_env(),
                start_new_session=True,
            )
        finally:
            if log_file:
                log.close()
        node = cls(f"http://{options.get('host', '127.0.0.1')}:{port}", process)
        node.wait_ready(timeout, log_file)
        return node

    def wait_ready(self, timeout: float, log_file: Path | None = None) -> None:
        where = f"; see {log_file}" if log_file else ""
        rpc = RpcSession(self.url, timeout=2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AnvilError(f"anvil exited with code {self.process.returncode}{where}")
            try:
                rpc.call_raw("eth_chainId")
                return
            except NodeUnavailable:
                time.sleep(0.05)
        self.kill()
        raise AnvilError(f"anvil did not answer on {self.url} within {timeout:.0f} s{where}")

    def stop(self) -> None:
        """SIGTERM (anvil writes its state file, if any, on the way out), then waits."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the node dies without writing anything more."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
