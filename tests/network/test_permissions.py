"""Tests of the consortium's Besu local permissioning (rxchain.network.permissions).

The JSON-RPC tests talk to a STAND-IN for a Besu node: a small HTTP JSON-RPC server started in
the test process (http.server on 127.0.0.1, a free port, a background thread). It keeps the
allowlists in memory, records every request, and answers the PERM methods the way Besu's source
does (result "Success" for a change; code -32000 with Besu's messages for an empty list, an invalid
or duplicate entry, adding an existing entry or removing an absent one; -32604 for a method whose
API group is not enabled). This stand-in is used only because Besu cannot run on the build
machines; it is no substitute for a run against a real node, which has not happened here.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rxchain.network.permissions import (
    InvalidAccountError,
    InvalidEnodeError,
    Member,
    NodeUnreachable,
    PermissioningClient,
    PermissioningError,
    PermissioningRpcError,
    PermissionsFileError,
    allowed_accounts,
    normalize_enode,
    read_permissions_config,
    sync_all,
    write_permissions_config,
)

NOW = 1_750_000_000
A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20
D = "0x" + "dd" * 20
CHECKSUMMED = "0x52908400098527886E0F7030069857D2E4169EE7"
ENODE_1 = "enode://" + "1" * 128 + "@127.0.0.1:30303"
ENODE_2 = "enode://" + "2" * 128 + "@127.0.0.1:30304"
ENODE_3 = "enode://" + "3" * 128 + "@127.0.0.1:30305"


# ---------------------------------------------------------------- the Besu stand-in

_ACCOUNT = re.compile(r"^0x[0-9a-fA-F]{40}$")
_ENODE = re.compile(r"^enode://[0-9a-fA-F]{128}@[^:]+:\d+$")


#: Besu's answer when its permissions file no longer lists every account it holds in memory
#: (RpcErrorType.ALLOWLIST_FILE_SYNC; the in-memory change IS applied, the file is not rewritten).
FILE_SYNC = (
    -32000,
    "The permissioning allowlist configuration file is out of sync.  "
    "The changes have been applied, but not persisted to disk",
)


class BesuPermStandIn:
    """In-memory PERM API with Besu's answers; records (method, params) of every request.

    The node's permissions file is kept too (``file_accounts``), with Besu's rules for it (read in
    besu: ethereum/permissioning AccountLocalConfigPermissioningController and AllowlistPersistor):
    before an add or remove, the file must list every account held in memory
    (``verifyConfigFileMatchesState``: file.containsAll(memory)); if it does, the change is applied and
    the file rewritten with the new list; if not, the change is applied in memory only and the call
    answers ALLOWLIST_FILE_SYNC. ``perm_reloadPermissionsFromFile`` replaces memory with the file.
    """

    def __init__(
        self, accounts: list[str] | None = None, nodes: list[str] | None = None, fixed_nodes: list[str] | None = None
    ) -> None:
        self.accounts = [a.lower() for a in accounts or []]
        self.file_accounts = list(self.accounts)
        self.nodes = list(nodes or [])
        self.fixed_nodes = set(fixed_nodes or [])
        self.requests: list[tuple[str, list[Any]]] = []
        self.perm_enabled = True
        self.reloads = 0

    @property
    def methods(self) -> list[str]:
        return [method for method, _ in self.requests]

    def handle(self, method: str, params: list[Any]) -> tuple[Any, tuple[int, str] | None]:
        self.requests.append((method, params))
        if method.startswith("perm_") and not self.perm_enabled:
            return None, (-32604, "Method not enabled")
        handler = getattr(self, "_" + method, None)
        if handler is None:
            return None, (-32601, "Method not found")
        return handler(*params)

    def _perm_getAccountsAllowlist(self) -> tuple[Any, None]:
        return list(self.accounts), None

    def _perm_addAccountsToAllowlist(self, accounts: list[str]) -> tuple[Any, tuple[int, str] | None]:
        error = self._validate_accounts(accounts)
        if error:
            return None, error
        normalized = [a.lower() for a in accounts]
        if any(a in self.accounts for a in normalized):
            return None, (-32000, "Cannot add an existing account to allowlist")
        return self._change_accounts(self.accounts + normalized)

    def _perm_removeAccountsFromAllowlist(self, accounts: list[str]) -> tuple[Any, tuple[int, str] | None]:
        error = self._validate_accounts(accounts)
        if error:
            return None, error
        normalized = [a.lower() for a in accounts]
        if not all(a in self.accounts for a in normalized):
            return None, (-32000, "Cannot remove an absent account from allowlist")
        return self._change_accounts([a for a in self.accounts if a not in normalized])

    def _change_accounts(self, new: list[str]) -> tuple[Any, tuple[int, str] | None]:
        in_sync = set(self.accounts) <= set(self.file_accounts)
        self.accounts = new
        if not in_sync:
            return None, FILE_SYNC
        self.file_accounts = list(new)
        return "Success", None

    def _perm_getNodesAllowlist(self) -> tuple[Any, None]:
        return list(self.nodes), None

    def _perm_addNodesToAllowlist(self, enodes: list[str]) -> tuple[Any, tuple[int, str] | None]:
        error = self._validate_nodes(enodes)
        if error:
            return None, error
        if any(e in self.nodes for e in enodes):
            return None, (-32000, "Cannot add an existing node to allowlist")
        self.nodes += enodes
        return "Success", None

    def _perm_removeNodesFromAllowlist(self, enodes: list[str]) -> tuple[Any, tuple[int, str] | None]:
        error = self._validate_nodes(enodes)
        if error:
            return None, error
        if any(e in self.fixed_nodes for e in enodes):
            return None, (-32000, "Cannot remove a fixed node (bootnode or static node) from allowlist")
        if not all(e in self.nodes for e in enodes):
            return None, (-32000, "Cannot remove an absent node from allowlist")
        self.nodes = [e for e in self.nodes if e not in enodes]
        return "Success", None

    def _perm_reloadPermissionsFromFile(self) -> tuple[Any, None]:
        self.reloads += 1
        self.accounts = list(self.file_accounts)
        return "Success", None

    @staticmethod
    def _validate_accounts(accounts: list[str]) -> tuple[int, str] | None:
        if not accounts:
            return (-32000, "Request contains an empty list of accounts")
        if not all(isinstance(a, str) and _ACCOUNT.match(a) for a in accounts):
            return (-32000, "Request contains an invalid account")
        if len({a.lower() for a in accounts}) != len(accounts):
            return (-32000, "Request contains duplicate accounts")
        return None

    @staticmethod
    def _validate_nodes(enodes: list[str]) -> tuple[int, str] | None:
        if not enodes:
            return (-32000, "Request contains an empty list of nodes")
        if not all(isinstance(e, str) and _ENODE.match(e) for e in enodes):
            return (-32000, "Request contains an invalid node")
        if len(set(enodes)) != len(enodes):
            return (-32000, "Request contains duplicate nodes")
        return None


def _serve(state: BesuPermStandIn) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's method name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            result, error = state.handle(body["method"], body.get("params", []))
            answer: dict[str, Any] = {"jsonrpc": "2.0", "id": body["id"]}
            if error:
                answer["error"] = {"code": error[0], "message": error[1]}
            else:
                answer["result"] = result
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def node() -> Iterator[tuple[BesuPermStandIn, str]]:
    """A running stand-in node with accounts A, B (mixed case), C and nodes 1, 2 (1 is a static node)."""
    state = BesuPermStandIn(
        accounts=[A, B.upper().replace("0X", "0x"), C], nodes=[ENODE_1, ENODE_2], fixed_nodes=[ENODE_1]
    )
    server, url = _serve(state)
    yield state, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- allowlist computation


def test_allowed_accounts_keeps_members_in_good_standing_only() -> None:
    members = [
        Member(A, {"PHARMACY"}, NOW + 3600),
        Member(B, {"HOSPITAL"}, NOW - 1),  # expired
        Member(C, {"COURIER"}, NOW + 3600, revoked=True),  # revoked
        Member(D, set(), NOW + 3600),  # no role
        Member(CHECKSUMMED, {"DOCTOR", "AUDITOR"}, NOW),  # ends exactly now: still valid
    ]
    assert allowed_accounts(members, NOW) == sorted([A, CHECKSUMMED.lower()])


def test_allowed_accounts_adds_extra_accounts_and_deduplicates_case_insensitively() -> None:
    members = [Member(CHECKSUMMED, {"PHARMACY"}, NOW + 10), Member(CHECKSUMMED.lower(), {"COURIER"}, NOW + 10)]
    regulator = B.upper().replace("0X", "0x")
    assert allowed_accounts(members, NOW, extra=[regulator, CHECKSUMMED]) == sorted([B, CHECKSUMMED.lower()])
    assert allowed_accounts([], NOW, extra=[B]) == [B]
    assert allowed_accounts([Member(A, {"DOCTOR"}, NOW - 5)], NOW) == []


@pytest.mark.parametrize("bad", ["", "0x1234", "aa" * 20, "0x" + "gg" * 20, "0x" + "aa" * 21])
def test_allowed_accounts_rejects_malformed_addresses(bad: str) -> None:
    with pytest.raises(InvalidAccountError):
        allowed_accounts([Member(bad, {"DOCTOR"}, NOW + 1)], NOW)
    with pytest.raises(InvalidAccountError):
        allowed_accounts([], NOW, extra=[bad])


# ---------------------------------------------------------------- permissions file


def test_permissions_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "permissions_config.toml"
    write_permissions_config(path, [A, CHECKSUMMED, CHECKSUMMED.lower()], [ENODE_1, ENODE_2, ENODE_1])
    document = tomllib.loads(path.read_text())
    assert document == {"accounts-allowlist": [A, CHECKSUMMED.lower()], "nodes-allowlist": [ENODE_1, ENODE_2]}
    config = read_permissions_config(path)
    assert config.accounts == [A, CHECKSUMMED.lower()]
    assert config.nodes == [ENODE_1, ENODE_2]


def test_empty_allowlists_are_still_written(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "permissions_config.toml"
    write_permissions_config(path, [], [])
    assert tomllib.loads(path.read_text()) == {"accounts-allowlist": [], "nodes-allowlist": []}
    assert read_permissions_config(path).accounts == []


def test_writing_replaces_the_file_and_refuses_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "permissions_config.toml"
    write_permissions_config(path, [A, B], [ENODE_1])
    write_permissions_config(path, [C], [ENODE_2])
    assert read_permissions_config(path).accounts == [C]
    with pytest.raises(InvalidAccountError):
        write_permissions_config(path, ["0x1234"], [])
    with pytest.raises(InvalidEnodeError):
        write_permissions_config(path, [], ["enode://1234@127.0.0.1:30303"])
    assert read_permissions_config(path).accounts == [C]  # untouched by the refused writes
    assert [p.name for p in tmp_path.iterdir()] == ["permissions_config.toml"]


def test_reading_a_broken_permissions_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "permissions_config.toml"
    with pytest.raises(PermissionsFileError, match="does not exist"):
        read_permissions_config(path)
    path.write_text('accounts-allowlist=["%s"]\n' % A)
    with pytest.raises(PermissionsFileError, match="nodes-allowlist"):
        read_permissions_config(path)
    path.write_text('accounts-allowlist=["0x12"]\nnodes-allowlist=[]\n')
    with pytest.raises(PermissionsFileError, match="0x12"):
        read_permissions_config(path)
    path.write_text("accounts-allowlist=[\n")
    with pytest.raises(PermissionsFileError, match="cannot be read"):
        read_permissions_config(path)


def test_enode_normalisation() -> None:
    upper = "enode://" + "A" * 128 + "@127.0.0.1:30303"
    assert normalize_enode(upper) == "enode://" + "a" * 128 + "@127.0.0.1:30303"
    assert normalize_enode(ENODE_1 + "?discport=30303") == ENODE_1
    assert normalize_enode(ENODE_1 + "?discport=0") == ENODE_1 + "?discport=0"
    for bad in ["enode://" + "1" * 127 + "@127.0.0.1:30303", ENODE_1.replace("30303", "70000"), "http://x"]:
        with pytest.raises(InvalidEnodeError):
            normalize_enode(bad)


# ---------------------------------------------------------------- JSON-RPC client


def test_sync_adds_only_missing_and_removes_only_extra_accounts(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    result = PermissioningClient(url).sync_accounts([A.upper().replace("0X", "0x"), D, B])
    assert result.added == [D]
    assert result.removed == [C]
    assert state.requests == [  # revocations first, then admissions, then the node's list read back
        ("perm_getAccountsAllowlist", []),
        ("perm_removeAccountsFromAllowlist", [[C]]),
        ("perm_addAccountsToAllowlist", [[D]]),
        ("perm_getAccountsAllowlist", []),
    ]
    assert sorted(state.accounts) == sorted([A, B, D])


def test_sync_sends_nothing_when_the_node_is_up_to_date(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    result = PermissioningClient(url).sync_accounts([C, B, A, A])
    assert not result.changed and result.added == [] and result.removed == []
    assert state.methods == ["perm_getAccountsAllowlist"]


def test_dry_run_only_reads(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    result = PermissioningClient(url).sync_accounts([D], dry_run=True)
    assert result.added == [D] and result.removed == [A, B, C]
    assert state.methods == ["perm_getAccountsAllowlist"]
    assert state.accounts == [A, B, C]


def test_sync_to_an_empty_allowlist_removes_everything(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    result = PermissioningClient(url).sync_accounts([])
    assert result.removed == [A, B, C] and result.added == []
    assert state.methods == [
        "perm_getAccountsAllowlist",
        "perm_removeAccountsFromAllowlist",
        "perm_getAccountsAllowlist",
    ]
    assert state.accounts == []


def test_direct_calls_and_besu_errors(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    client = PermissioningClient(url)
    assert client.accounts_allowlist() == [A, B, C]
    client.add_accounts([CHECKSUMMED])
    assert state.requests[-1] == ("perm_addAccountsToAllowlist", [[CHECKSUMMED.lower()]])
    with pytest.raises(PermissioningRpcError) as existing:
        client.add_accounts([A])
    assert existing.value.method == "perm_addAccountsToAllowlist"
    assert existing.value.code == -32000
    assert existing.value.message == "Cannot add an existing account to allowlist"
    assert url in str(existing.value)
    with pytest.raises(PermissioningRpcError, match="absent account"):
        client.remove_accounts([D])
    with pytest.raises(PermissioningRpcError, match="empty list of accounts"):
        client.add_accounts([])
    client.remove_accounts([B])
    assert client.accounts_allowlist() == [A, C, CHECKSUMMED.lower()]
    client.reload_from_file()
    assert state.reloads == 1


def test_client_refuses_malformed_accounts_before_sending(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    with pytest.raises(InvalidAccountError):
        PermissioningClient(url).sync_accounts(["0x1234"])
    assert state.requests == []


def test_nodes_allowlist_sync_and_fixed_nodes(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    client = PermissioningClient(url)
    result = client.sync_nodes([ENODE_1, ENODE_3])
    assert result.added == [ENODE_3] and result.removed == [ENODE_2]
    assert state.requests[1:] == [
        ("perm_addNodesToAllowlist", [[ENODE_3]]),
        ("perm_removeNodesFromAllowlist", [[ENODE_2]]),
    ]
    assert client.nodes_allowlist() == [ENODE_1, ENODE_3]
    with pytest.raises(PermissioningRpcError, match="fixed node"):
        client.remove_nodes([ENODE_1])
    with pytest.raises(PermissioningRpcError, match="existing node"):
        client.add_nodes([ENODE_3])


def test_perm_api_not_enabled_gives_an_actionable_error(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    state.perm_enabled = False
    with pytest.raises(PermissioningRpcError) as error:
        PermissioningClient(url).accounts_allowlist()
    assert error.value.code == -32604
    assert "add PERM to rpc-http-api" in str(error.value)


def test_unreachable_node_names_the_url(closed_port_url: str) -> None:
    with pytest.raises(NodeUnreachable) as error:
        PermissioningClient(closed_port_url, timeout=1).sync_accounts([A])
    assert closed_port_url in str(error.value)
    assert error.value.url == closed_port_url


def test_a_node_that_never_answers_times_out_quickly() -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(NodeUnreachable, match=re.escape(url)):
            PermissioningClient(url, timeout=0.3).accounts_allowlist()


def test_a_non_json_rpc_endpoint_is_reported() -> None:
    class Html(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>not here</html>")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    try:
        with pytest.raises(PermissioningRpcError, match="HTTP 404"):
            PermissioningClient(f"http://127.0.0.1:{server.server_address[1]}").accounts_allowlist()
    finally:
        server.shutdown()
        server.server_close()


def test_sync_all_tries_every_node_and_reports_failures(
    node: tuple[BesuPermStandIn, str], closed_port_url: str
) -> None:
    first_state, first_url = node
    second_state = BesuPermStandIn(accounts=[D])
    server, second_url = _serve(second_state)
    try:
        outcome = sync_all([first_url, closed_port_url, second_url], [A, D], timeout=1)
    finally:
        server.shutdown()
        server.server_close()
    assert not outcome.ok
    assert set(outcome.results) == {first_url, second_url}
    assert outcome.results[first_url].added == [D] and outcome.results[first_url].removed == [B, C]
    assert outcome.results[second_url].added == [A] and outcome.results[second_url].removed == []
    assert isinstance(outcome.failures[closed_port_url], NodeUnreachable)
    assert sorted(first_state.accounts) == sorted(second_state.accounts) == [A, D]
    with pytest.raises(PermissioningError, match=re.escape(closed_port_url)):
        outcome.raise_for_failures()


def test_sync_all_on_healthy_nodes_is_ok(node: tuple[BesuPermStandIn, str]) -> None:
    _, url = node
    outcome = sync_all([url], [A, B, C])
    assert outcome.ok and not outcome.results[url].changed
    outcome.raise_for_failures()


def test_a_revocation_reaches_a_node_whose_file_was_rewritten_and_an_admission_too(
    node: tuple[BesuPermStandIn, str],
) -> None:
    """`rx network allowlist` rewrote the file (C revoked, D admitted) while the node ran: Besu then
    answers every PERM change with ALLOWLIST_FILE_SYNC. The revocation must still take effect."""
    state, url = node
    state.file_accounts = [A.lower(), B.lower(), D.lower()]

    result = PermissioningClient(url).sync_accounts([A, B, D])

    assert sorted(state.accounts) == sorted([A.lower(), B.lower(), D.lower()])
    assert C.lower() not in state.accounts and result.removed == [C.lower()] and result.added == [D.lower()]
    assert state.methods.index("perm_removeAccountsFromAllowlist") < state.methods.index("perm_addAccountsToAllowlist")
    assert sorted(state.file_accounts) == sorted(state.accounts)  # the last change found the file in step and wrote it


def test_admissions_and_revocations_in_one_run_keep_the_file_in_step(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node

    PermissioningClient(url).sync_accounts([A, D])

    assert sorted(state.accounts) == sorted([A.lower(), D.lower()]) == sorted(state.file_accounts)


def test_a_sync_that_does_not_end_equal_to_the_registry_is_an_error(node: tuple[BesuPermStandIn, str]) -> None:
    state, url = node
    state.handle = lambda method, params: (
        ("Success", None) if method != "perm_getAccountsAllowlist" else ([A.lower()], None)
    )  # a node that ignores changes

    with pytest.raises(PermissioningRpcError, match="still differs"):
        PermissioningClient(url).sync_accounts([A, D])
