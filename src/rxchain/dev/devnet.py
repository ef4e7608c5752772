"""The long-running local devnet: anvil with Besu-like settings.

Free gas (base fee 0, gas price 0, no minimum priority fee, so zero-balance members transact), its own
chain id, a block every second like a QBFT network, the project's hardfork (ape-config.yaml), and its
state kept in ``.devnet/state.json`` so that stopping and starting it keeps the deployed contracts and
every prescription. A second ``up`` finds the one running.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from rxchain.chain.rpc import RpcSession
from rxchain.dev.anvil import Anvil
from rxchain.errors import NodeUnavailable, Unavailable
from rxchain.paths import devnet_dir, evm_version

DEVNET_CHAIN_ID = 31338
DEVNET_HOST = "127.0.0.1"
DEVNET_PORT = 8545
DEVNET_BLOCK_TIME = 1
#: Seconds between the devnet's periodic state dumps: the most a SIGKILL can lose.
DEVNET_STATE_INTERVAL = 5


class DevnetError(Unavailable):
    """The devnet could not be started, reached or stopped."""


@dataclass(frozen=True)
class DevnetStatus:
    """What ``status`` found."""

    running: bool
    url: str
    chain_id: int | None = None
    block_number: int | None = None
    pid: int | None = None
    state_file: str = ""
    hardfork: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Devnet:
    """One devnet: where it listens and where it keeps its files."""

    host: str = DEVNET_HOST
    port: int = DEVNET_PORT
    chain_id: int = DEVNET_CHAIN_ID
    block_time: int = DEVNET_BLOCK_TIME
    folder: Path = field(default_factory=devnet_dir)
    state_interval: int = DEVNET_STATE_INTERVAL

    @property
    def url(self) -> str:
        """The JSON-RPC URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    @property
    def pid_file(self) -> Path:
        return self.folder / "anvil.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "anvil.log"

    def up(self, timeout: float = 30.0) -> DevnetStatus:
        """Starts the devnet unless it runs already; returns its status once it answers."""
        current = self.status()
        if current.running:
            return current
        if current.chain_id is not None:
            raise DevnetError(
                f"{self.url} answers with chain id {current.chain_id}, not the devnet's {self.chain_id}: "
                "stop that node or give the devnet another port"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        node = Anvil.start(
            chain_id=self.chain_id,
            port=self.port,
            host=self.host,
            block_time=self.block_time,
            log_file=self.log_file,
            timeout=timeout,
            gas_limit=1_000_000_000,
            state_file=self.state_file,
            state_interval=self.state_interval,
            unlimited_requests=False,
        )
        self.pid_file.write_text(str(node.process.pid))
        return self.status()

    def down(self, timeout: float = 20.0) -> bool:
        """Stops the devnet (its state is written on the way out). False if it was not running."""
        pid = self._pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> DevnetStatus:
        """Whether the devnet answers, and its chain id and height."""
        notes: list[str] = []
        try:
            chain_id = int(_rpc(self.url, "eth_chainId"), 16)
            block = int(_rpc(self.url, "eth_blockNumber"), 16)
        except DevnetError:
            return DevnetStatus(False, self.url, pid=self._pid(), state_file=str(self.state_file))
        if chain_id != self.chain_id:
            notes.append(f"chain id {chain_id} is not the devnet's {self.chain_id}")
        return DevnetStatus(
            chain_id == self.chain_id,
            self.url,
            chain_id=chain_id,
            block_number=block,
            pid=self._pid(),
            state_file=str(self.state_file),
            hardfork=evm_version(),
            notes=notes,
        )

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _rpc(url: str, method: str, params: list | None = None, timeout: float = 2.0):
    try:
        reply = RpcSession(url, timeout=timeout).call_raw(method, params)
    except NodeUnavailable as exc:
        raise DevnetError(f"no JSON-RPC answer from {url}: {exc}") from exc
    if "error" in reply:
        raise DevnetError(f"{method} failed on {url}: {reply['error']}")
    return reply["result"]
