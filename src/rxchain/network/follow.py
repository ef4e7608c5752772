"""``rx network follow``: every node's accounts allowlist follows the registry, block by block.

Contract account permissioning is gone from Besu (removed in 25.6), so on current Besu "membership
= permissioning" holds only if something keeps each node's local allowlist equal to the registry's
members in good standing. The follower does: at every new block it recomputes the allowlist from the
registry (admissions, renewals, revocations, and credentials that lapsed since the last block, which
no event announces) and, when it differs from what the nodes were last given, syncs every node over
Besu's PERM methods (:func:`rxchain.network.permissions.sync_all`: revocations first, read back).

It is resumable: a small JSON state file keeps the last block it acted on, the allowlist it pushed
and each node's outcome, so a restarted follower (or ``rx network follow --status``) knows where it
stands, and a node that was down is synced again at the next block. The file also keeps every
account ever admitted and the last block whose MemberAdmitted events were read: each step reads the
new blocks' events only (in windows a range-limited node answers), never the chain from the
deployment again, so a step costs the same on a chain of any length.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rxchain.chain.client import RegistryClient
from rxchain.errors import InvalidValue
from rxchain.network.permissions import normalize_account, sync_all
from rxchain.network.registry import registry_allowlist


@dataclass
class FollowState:
    """Where the follower stands (kept in its state file)."""

    registry: str
    chain_id: int
    nodes: list[str]
    last_block: int = -1
    allowlist: list[str] = field(default_factory=list)
    #: node URL -> "in step" or the last error; a node not in step is synced again at the next block.
    node_status: dict[str, str] = field(default_factory=dict)
    syncs: int = 0
    #: Every account ever admitted (from MemberAdmitted), as read up to ``admitted_to_block``.
    admitted: list[str] = field(default_factory=list)
    admitted_to_block: int = -1

    def in_step(self) -> bool:
        return all(self.node_status.get(url) == "in step" for url in self.nodes)

    def as_json(self) -> dict:
        return {
            "registry": self.registry,
            "chainId": self.chain_id,
            "nodes": self.nodes,
            "lastBlock": self.last_block,
            "allowlist": self.allowlist,
            "nodeStatus": self.node_status,
            "syncs": self.syncs,
            "inStep": self.in_step(),
        }


class Follower:
    """Keeps ``nodes`` (PERM JSON-RPC URLs) in step with ``client``'s registry; state in ``state_file``."""

    def __init__(self, client: RegistryClient, nodes: Sequence[str], state_file: Path, *, timeout: float = 5.0):
        if not nodes:
            raise InvalidValue("the follower needs at least one node URL (--node URL or --kit DIR)")
        self.client = client
        self.state_file = Path(state_file)
        self.timeout = timeout
        self.state = load_state(self.state_file) or FollowState(client.address, client.chain_id, list(nodes))
        if (self.state.registry, self.state.chain_id) != (client.address, client.chain_id):
            raise InvalidValue(
                f"{self.state_file} follows registry {self.state.registry} on chain {self.state.chain_id}, not "
                f"{client.address} on chain {client.chain_id}: give another --state file"
            )
        self.state.nodes = list(nodes)

    def step(self) -> bool:
        """Acts on the head block if it is new; True when it pushed anything to a node."""
        head = self.client.head()
        if head <= self.state.last_block:
            return False
        self._read_admissions(head)
        wanted = sorted(normalize_account(a) for a in registry_allowlist(self.client, admitted=self.state.admitted))
        stale = [
            url
            for url in self.state.nodes
            if wanted != self.state.allowlist or self.state.node_status.get(url) != "in step"
        ]
        pushed = False
        if stale:
            outcome = sync_all(stale, wanted, timeout=self.timeout)
            for url, result in outcome.results.items():
                self.state.node_status[url] = "in step"
                pushed = pushed or result.changed
            for url, exc in outcome.failures.items():
                self.state.node_status[url] = f"not in step: {exc}"
            self.state.syncs += 1
        self.state.allowlist = wanted
        self.state.last_block = head
        save_state(self.state_file, self.state)
        return pushed

    def _read_admissions(self, head: int) -> None:
        """Adds the accounts admitted in the blocks not read yet (deploy block on the first step)."""
        start = max(self.state.admitted_to_block + 1, self.client.deploy_block)
        known = dict.fromkeys(self.state.admitted)
        for log in self.client.events("MemberAdmitted", from_block=start, to_block=head):
            known.setdefault(log["args"]["account"], None)
        self.state.admitted = list(known)
        self.state.admitted_to_block = head

    def run(
        self,
        *,
        poll_seconds: float = 1.0,
        until: Callable[[], bool] = lambda: False,
        on_step: Callable[[FollowState, bool], None] | None = None,
    ) -> None:
        """Steps at every new block until ``until()`` says stop (Ctrl-C stops it too)."""
        while not until():
            pushed = self.step()
            if on_step is not None:
                on_step(self.state, pushed)
            time.sleep(poll_seconds)


def load_state(path: Path) -> FollowState | None:
    """The state in ``path``, or None when there is none yet."""
    if not Path(path).is_file():
        return None
    try:
        data = json.loads(Path(path).read_text())
        return FollowState(**data)
    except (ValueError, TypeError) as exc:
        raise InvalidValue(f"{path} is not a follower state file ({exc}): move it away to start afresh") from None


def save_state(path: Path, state: FollowState) -> None:
    """Writes the state atomically (a crash leaves the old file or the new one, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    partial.replace(path)
