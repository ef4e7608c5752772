"""Besu local permissioning for the consortium: allowlist files and a JSON-RPC client to sync them.

The accounts allowlist follows the on-chain role registry: a member in good standing (not
revoked, credential not expired, holding a role) may send transactions; everybody else is
refused by every node. The caller reads the members from the registry and passes them here as
:class:`Member` records; this module does not touch the chain.

Two ways to apply an allowlist:

* :func:`write_permissions_config` writes Besu's permissions TOML (``accounts-allowlist`` and
  ``nodes-allowlist``) for a node that is stopped, or before calling ``reload_from_file``;
* :class:`PermissioningClient` talks to a running node over the ``PERM`` JSON-RPC API, and
  :meth:`PermissioningClient.sync_accounts` / :func:`sync_all` send only the difference between
  a node's current list and the desired one. Besu persists those changes to its permissions file.

Besu's rules this module follows: accounts are ``0x`` + 40 hex digits and compared in lower case;
a list containing a duplicate is refused as a whole (also when Besu reads the file at start-up,
so files are always written de-duplicated); adding an existing entry or removing an absent one
is an error, which is why synchronisation computes the difference first.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import socket
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rxchain.errors import BadInput, Unavailable

__all__ = [
    "PermissioningError",
    "InvalidAccountError",
    "InvalidEnodeError",
    "PermissionsFileError",
    "NodeUnreachable",
    "PermissioningRpcError",
    "Member",
    "PermissionsConfig",
    "SyncResult",
    "SyncAllResult",
    "PermissioningClient",
    "allowed_accounts",
    "normalize_account",
    "normalize_enode",
    "write_permissions_config",
    "read_permissions_config",
    "sync_all",
]

_ACCOUNT_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_ENODE_RE = re.compile(r"^enode://([0-9a-fA-F]{128})@([^:/?#\[\]]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})(\?discport=\d{1,5})?$")

#: JSON-RPC error codes Besu uses when a method is unknown or its API group is not enabled.
_METHOD_NOT_FOUND = -32601
_METHOD_NOT_ENABLED = -32604


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


class PermissioningError(Unavailable):
    """A node's permissioning could not be read or changed (unreachable, or its JSON-RPC refused).
    What the user gave wrong (an account, an enode, a permissions file) is bad input instead."""


class InvalidAccountError(BadInput, ValueError):
    """An account is not ``0x`` followed by 40 hex digits (the only form Besu accepts)."""


class InvalidEnodeError(BadInput, ValueError):
    """An enode URL is not ``enode://<128 hex>@<ip>:<port>``."""


class PermissionsFileError(BadInput):
    """A permissions TOML file is missing, unreadable or lacks an allowlist key."""


class NodeUnreachable(PermissioningError):
    """The node's JSON-RPC endpoint could not be reached (refused, timed out, not HTTP)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"node at {url} is unreachable: {reason}. Check that the node runs and that the URL "
            "(host, rpc-http-port) is right"
        )


class PermissioningRpcError(PermissioningError):
    """The node answered a PERM JSON-RPC call with an error (or a non-JSON-RPC HTTP error)."""

    def __init__(self, method: str, code: int, message: str, url: str = "") -> None:
        self.method = method
        self.code = code
        self.message = message
        self.url = url
        hint = ""
        if code in (_METHOD_NOT_FOUND, _METHOD_NOT_ENABLED):
            hint = " (enable the PERM API: add PERM to rpc-http-api in the node's config.toml)"
        elif "not been enabled" in message:
            hint = " (enable local permissioning: permissions-*-config-file-enabled=true)"
        where = f" at {url}" if url else ""
        super().__init__(f"{method}{where} failed: {message} (code {code}){hint}")


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A consortium member as read from the on-chain role registry.

    ``roles`` are role names (e.g. ``{"PHARMACY"}``); ``valid_until`` is the unix time at which
    the member's credential ends; ``revoked`` is true once the member was removed.
    """

    address: str
    roles: AbstractSet[str] = field(default_factory=frozenset)
    valid_until: int = 0
    revoked: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(self.roles))

    def in_good_standing(self, now: int) -> bool:
        """True if the member holds a role, is not revoked and its credential has not ended."""
        return bool(self.roles) and not self.revoked and self.valid_until >= now


@dataclass(frozen=True)
class PermissionsConfig:
    """The content of a Besu permissions file: lower-case accounts and enode URLs."""

    accounts: list[str]
    nodes: list[str]


@dataclass(frozen=True)
class SyncResult:
    """What a sync changed on one node: entries added and removed (lower case for accounts)."""

    added: list[str]
    removed: list[str]
    #: True when the node applied the changes in memory but could not write them to its permissions
    #: file (its file had been edited by hand or by ``rx network allowlist``): the node enforces the
    #: registry now; write the files (``rx network allowlist``) so that a restart keeps it.
    not_persisted: bool = False

    @property
    def changed(self) -> bool:
        """True if anything was (or, in a dry run, would be) added or removed."""
        return bool(self.added or self.removed)


@dataclass(frozen=True)
class SyncAllResult:
    """Outcome of :func:`sync_all`: a :class:`SyncResult` per node that succeeded, an error per node that failed."""

    results: dict[str, SyncResult]
    failures: dict[str, PermissioningError]

    @property
    def ok(self) -> bool:
        """True if every node was synced."""
        return not self.failures

    def raise_for_failures(self) -> None:
        """Raise a :class:`PermissioningError` naming every node that failed, if any did."""
        if self.failures:
            details = "; ".join(f"{url}: {err}" for url, err in self.failures.items())
            raise PermissioningError(f"{len(self.failures)} node(s) not synced: {details}")


# ----------------------------------------------------------------------------------------------
# Allowlist computation and files
# ----------------------------------------------------------------------------------------------


def allowed_accounts(members: Iterable[Member], now: int, *, extra: Iterable[str] = ()) -> list[str]:
    """The accounts allowlist: members in good standing at ``now``, plus ``extra`` accounts.

    A member is in good standing when it holds at least one role, is not revoked and
    ``valid_until >= now``. ``extra`` carries accounts that must always transact whatever the
    registry says (the regulator, the deployer). The result is lower case, de-duplicated and
    sorted. Raises :class:`InvalidAccountError` for a malformed address.
    """
    accounts = {normalize_account(a) for a in extra}
    for member in members:
        address = normalize_account(member.address)
        if member.in_good_standing(now):
            accounts.add(address)
    return sorted(accounts)


def normalize_account(account: str) -> str:
    """``account`` in Besu's form (``0x`` + 40 lower-case hex); raises :class:`InvalidAccountError`."""
    if not isinstance(account, str) or not _ACCOUNT_RE.match(account.strip()):
        raise InvalidAccountError(f"{account!r} is not an account address (0x followed by 40 hex digits)")
    return account.strip().lower()


def normalize_enode(enode: str) -> str:
    """``enode`` with its node id in lower case; raises :class:`InvalidEnodeError` if malformed."""
    text = enode.strip() if isinstance(enode, str) else ""
    match = _ENODE_RE.match(text)
    if not match or not 1 <= int(match.group(3)) <= 65535:
        raise InvalidEnodeError(f"{enode!r} is not an enode URL (enode://<128 hex node id>@<ip>:<port>)")
    node_id, host, port, discport = match.group(1).lower(), match.group(2), match.group(3), match.group(4)
    if discport and discport[len("?discport=") :] == port:
        discport = None  # Besu omits a discovery port equal to the listening port
    return f"enode://{node_id}@{host}:{port}{discport or ''}"


def write_permissions_config(path: Path, accounts: Iterable[str], enodes: Iterable[str]) -> None:
    """Write Besu's permissions TOML with ``accounts-allowlist`` and ``nodes-allowlist``.

    Entries are validated, normalised and de-duplicated (Besu refuses an allowlist containing a
    duplicate, and a node does not start with one); both keys are always written, empty or not, since Besu
    refuses a file missing either one when that permissioning is enabled. The file is replaced atomically.
    """
    account_list = list(dict.fromkeys(normalize_account(a) for a in accounts))
    enode_list = list(dict.fromkeys(normalize_enode(e) for e in enodes))
    text = (
        "# Besu local permissioning for the rxchain consortium network.\n"
        "# accounts-allowlist: accounts allowed to send transactions (members in good standing).\n"
        "# nodes-allowlist: nodes allowed to connect. Besu rewrites this file when the allowlists\n"
        "# are changed over the PERM JSON-RPC API.\n"
        f"accounts-allowlist={_toml_list(account_list)}\n"
        f"nodes-allowlist={_toml_list(enode_list)}\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_permissions_config(path: Path) -> PermissionsConfig:
    """Read a Besu permissions TOML; raises :class:`PermissionsFileError` if it is unusable."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PermissionsFileError(f"permissions file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PermissionsFileError(f"permissions file {path} cannot be read: {exc}") from exc
    lists: dict[str, list[str]] = {}
    for key in ("accounts-allowlist", "nodes-allowlist"):
        value = document.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PermissionsFileError(f"permissions file {path}: {key} is missing or not a list of strings")
        lists[key] = value
    try:
        return PermissionsConfig(
            accounts=[normalize_account(a) for a in lists["accounts-allowlist"]],
            nodes=[normalize_enode(e) for e in lists["nodes-allowlist"]],
        )
    except (InvalidAccountError, InvalidEnodeError) as exc:
        raise PermissionsFileError(f"permissions file {path}: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# JSON-RPC client
# ----------------------------------------------------------------------------------------------


class PermissioningClient:
    """A minimal JSON-RPC client for Besu's ``PERM`` API on one node (HTTP, short timeouts)."""

    def __init__(self, rpc_url: str, *, timeout: float = 5.0) -> None:
        """Client for the node at ``rpc_url`` (e.g. ``http://127.0.0.1:8545``); ``timeout`` in seconds."""
        self.rpc_url = rpc_url
        self.timeout = timeout
        self._ids = itertools.count(1)

    def accounts_allowlist(self) -> list[str]:
        """The node's accounts allowlist (``perm_getAccountsAllowlist``), lower case."""
        result = self._call("perm_getAccountsAllowlist", [])
        return [str(a).lower() for a in _expect_list(result, "perm_getAccountsAllowlist", self.rpc_url)]

    def add_accounts(self, accounts: Sequence[str]) -> None:
        """Add ``accounts`` (``perm_addAccountsToAllowlist``); none may already be listed."""
        self._expect_success("perm_addAccountsToAllowlist", [[normalize_account(a) for a in accounts]])

    def remove_accounts(self, accounts: Sequence[str]) -> None:
        """Remove ``accounts`` (``perm_removeAccountsFromAllowlist``); all must be listed."""
        self._expect_success("perm_removeAccountsFromAllowlist", [[normalize_account(a) for a in accounts]])

    def nodes_allowlist(self) -> list[str]:
        """The node's nodes allowlist (``perm_getNodesAllowlist``)."""
        result = self._call("perm_getNodesAllowlist", [])
        return [str(e) for e in _expect_list(result, "perm_getNodesAllowlist", self.rpc_url)]

    def add_nodes(self, enodes: Sequence[str]) -> None:
        """Add ``enodes`` (``perm_addNodesToAllowlist``); none may already be listed."""
        self._expect_success("perm_addNodesToAllowlist", [[normalize_enode(e) for e in enodes]])

    def remove_nodes(self, enodes: Sequence[str]) -> None:
        """Remove ``enodes`` (``perm_removeNodesFromAllowlist``). Besu refuses to remove a
        bootnode or static node."""
        self._expect_success("perm_removeNodesFromAllowlist", [[normalize_enode(e) for e in enodes]])

    def reload_from_file(self) -> None:
        """Re-read the node's permissions file (``perm_reloadPermissionsFromFile``)."""
        self._expect_success("perm_reloadPermissionsFromFile", [])

    def sync_accounts(self, desired: Iterable[str], *, dry_run: bool = False) -> SyncResult:
        """Make the node's accounts allowlist equal ``desired``, sending only the changes.

        Addresses compare case-insensitively. Revocations go first (an account the registry dropped
        stops transacting before anything else happens), then admissions. Besu answers a change with
        "file is out of sync" when its permissions file no longer lists every account it holds (the
        file was rewritten while the node ran); it has then applied the change in memory, so the sync
        goes on and says ``not_persisted``. The node's list is read back at the end and must equal
        ``desired``. With ``dry_run`` nothing is sent and the result tells what would change.
        """
        wanted = list(dict.fromkeys(normalize_account(a) for a in desired))
        current = self.accounts_allowlist()
        current_set = set(current)
        wanted_set = set(wanted)
        to_add = [a for a in wanted if a not in current_set]
        to_remove = list(dict.fromkeys(a for a in current if a not in wanted_set))
        if dry_run:
            return SyncResult(added=to_add, removed=to_remove)
        not_persisted = False
        for change, accounts in ((self.remove_accounts, to_remove), (self.add_accounts, to_add)):
            if not accounts:
                continue
            try:
                change(accounts)
            except PermissioningRpcError as exc:
                if not _file_out_of_sync(exc):
                    raise
                not_persisted = True  # applied in memory, the file left as it was
        if not (to_add or to_remove):
            return SyncResult(added=[], removed=[])
        now = self.accounts_allowlist()
        if sorted(set(now)) != sorted(wanted_set):
            missing, extra = sorted(wanted_set - set(now)), sorted(set(now) - wanted_set)
            raise PermissioningRpcError(
                "perm_getAccountsAllowlist",
                0,
                f"after the sync the node's accounts allowlist still differs from the registry's (missing {missing}, "
                f"extra {extra})",
                self.rpc_url,
            )
        return SyncResult(added=to_add, removed=to_remove, not_persisted=not_persisted)

    def sync_nodes(self, desired: Iterable[str], *, dry_run: bool = False) -> SyncResult:
        """Make the node's nodes allowlist equal ``desired``, sending only the changes.

        Enode URLs compare with their node id in lower case. Note that Besu refuses to remove a
        node that is one of its bootnodes or static nodes.
        """
        wanted = list(dict.fromkeys(normalize_enode(e) for e in desired))
        current = [normalize_enode(e) for e in self.nodes_allowlist()]
        current_set = set(current)
        wanted_set = set(wanted)
        to_add = [e for e in wanted if e not in current_set]
        to_remove = list(dict.fromkeys(e for e in current if e not in wanted_set))
        if not dry_run:
            if to_add:
                self.add_nodes(to_add)
            if to_remove:
                self.remove_nodes(to_remove)
        return SyncResult(added=to_add, removed=to_remove)

    # -- transport -------------------------------------------------------------------------

    def _expect_success(self, method: str, params: list[Any]) -> None:
        result = self._call(method, params)
        if result != "Success":
            raise PermissioningRpcError(method, 0, f"unexpected result {result!r} (expected 'Success')", self.rpc_url)

    def _call(self, method: str, params: list[Any]) -> Any:
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}).encode()
        request = urllib.request.Request(
            self.rpc_url,
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read() or b""
            error = _json_rpc_error(payload)
            if error is not None:
                raise PermissioningRpcError(method, error[0], error[1], self.rpc_url) from exc
            raise PermissioningRpcError(method, exc.code, f"HTTP {exc.code} {exc.reason}", self.rpc_url) from exc
        except urllib.error.URLError as exc:
            raise NodeUnreachable(self.rpc_url, str(exc.reason)) from exc
        except (TimeoutError, socket.timeout) as exc:
            raise NodeUnreachable(self.rpc_url, f"no answer within {self.timeout} s") from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise NodeUnreachable(self.rpc_url, str(exc) or type(exc).__name__) from exc
        except ValueError as exc:  # malformed URL
            raise NodeUnreachable(self.rpc_url, f"invalid URL: {exc}") from exc
        try:
            document = json.loads(payload)
        except ValueError as exc:
            raise NodeUnreachable(self.rpc_url, "the answer is not JSON: is this a JSON-RPC endpoint?") from exc
        if not isinstance(document, dict):
            raise NodeUnreachable(self.rpc_url, "the answer is not a JSON-RPC response object")
        if "error" in document and document["error"] is not None:
            error = document["error"] if isinstance(document["error"], dict) else {}
            raise PermissioningRpcError(
                method, int(error.get("code", 0)), str(error.get("message", document["error"])), self.rpc_url
            )
        if "result" not in document:
            raise NodeUnreachable(self.rpc_url, "the answer has neither result nor error")
        return document["result"]


def sync_all(
    rpc_urls: Iterable[str], desired: Iterable[str], *, timeout: float = 5.0, dry_run: bool = False
) -> SyncAllResult:
    """Sync the accounts allowlist of every node in ``rpc_urls`` to ``desired``.

    Every node is tried even if an earlier one fails; the failures are collected in the result
    (use :meth:`SyncAllResult.raise_for_failures` to turn them into an exception).
    """
    wanted = [normalize_account(a) for a in desired]
    results: dict[str, SyncResult] = {}
    failures: dict[str, PermissioningError] = {}
    for url in rpc_urls:
        try:
            results[url] = PermissioningClient(url, timeout=timeout).sync_accounts(wanted, dry_run=dry_run)
        except PermissioningError as exc:
            failures[url] = exc
    return SyncAllResult(results=results, failures=failures)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _file_out_of_sync(exc: PermissioningRpcError) -> bool:
    """Besu's ALLOWLIST_FILE_SYNC answer: the change was applied in memory, not written to the file."""
    return "out of sync" in exc.message.lower()


def _toml_list(values: Sequence[str]) -> str:
    if not values:
        return "[]"
    return "[\n" + "".join(f"  {json.dumps(v)},\n" for v in values) + "]"


def _expect_list(result: Any, method: str, url: str) -> list[Any]:
    if not isinstance(result, list):
        raise PermissioningRpcError(method, 0, f"unexpected result {result!r} (expected a list)", url)
    return result


def _json_rpc_error(payload: bytes) -> tuple[int, str] | None:
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        return int(error.get("code", 0)), str(error.get("message", ""))
    return None
