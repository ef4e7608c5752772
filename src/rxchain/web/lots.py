"""The public lot files, served to the box pages: where a box's leaf is, and a lot's file.

A lot file (``LOT.lot.json``, as ``rx box register`` writes it into ``.rxchain/lots``) names no code
and no secret: root, count, expiry and the leaves. The pages ask:

    GET api/lots/locate?leaf=0x…   {lot, index, proof, count, expiresAt}; 404 when no lot file holds the leaf
    GET api/lots/0xROOT            the lot file (as rxchain.core.boxes.Lot.to_json writes it); 404 when none

The page trusts the chain, not this server: it checks what it is told with DrugBoxes' ``boxState``
(and ``dispense`` checks the multiproof the dApp builds from the boxes' proofs). The folder is indexed when the
server starts (or at the first request, in a worker process) and again whenever a lot file appears,
changes or goes (a directory listing per request, re-reading only what changed). A file that is not a
lot file is skipped with a logged reason, named: ``NotALotFile``, ``DamagedLotFile`` (its leaves do not
make the root it names), ``LotFileTooLarge``, ``UnreadableLotFile``, ``DuplicateLot`` (another file
holds the same root) — never a crash.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rxchain.core import boxes as core
from rxchain.errors import InvalidValue
from rxchain.paths import project_root
from rxchain.web.server import json_response

__all__ = ["LotIndex", "default_lots_dir", "lot_routes"]

log = logging.getLogger("rxchain.web.lots")

#: Larger than the largest lot file (65,536 leaves of 70 characters each, and the rest).
MAX_LOT_FILE = 8 * 1024 * 1024
_WORD = re.compile(r"0x[0-9a-fA-F]{64}")


def default_lots_dir() -> Path:
    """Where ``rx box register`` writes the lot files by default."""
    return project_root() / ".rxchain" / "lots"


@dataclass(frozen=True)
class _Entry:
    signature: tuple[int, int]  # (mtime_ns, size) when read
    lot: core.Lot | None
    reason: str | None = None


class LotIndex:
    """The lot files of ``folder`` (``*.lot.json``), by root and by leaf."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._files: dict[str, _Entry] = {}
        self._by_root: dict[bytes, core.Lot] = {}
        self._by_leaf: dict[bytes, tuple[core.Lot, int]] = {}
        self._listing: tuple | None = None

    # ------------------------------------------------------------------------------ reading

    @property
    def skipped(self) -> dict[str, str]:
        """File name -> the named reason it was skipped (after :meth:`refresh`)."""
        return {name: entry.reason for name, entry in self._files.items() if entry.reason}

    @property
    def lots(self) -> list[bytes]:
        return list(self._by_root)

    def refresh(self) -> None:
        """Re-reads what changed in the folder since the last call (nothing, usually)."""
        with self._lock:
            listing = self._list()
            if listing == self._listing:
                return
            files: dict[str, _Entry] = {}
            for name, signature in listing:
                known = self._files.get(name)
                files[name] = known if known and known.signature == signature else self._read(name, signature)
            self._files = files
            self._listing = listing
            self._rebuild()

    def _list(self) -> tuple:
        try:
            paths = sorted(self.folder.glob("*.lot.json"))
        except OSError:
            return ()
        out = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((path.name, (stat.st_mtime_ns, stat.st_size)))
        return tuple(out)

    def _read(self, name: str, signature: tuple[int, int]) -> _Entry:
        path = self.folder / name
        if signature[1] > MAX_LOT_FILE:
            return self._skip(name, signature, "LotFileTooLarge", f"{signature[1]} bytes")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return self._skip(name, signature, "UnreadableLotFile", str(exc))
        try:
            data = json.loads(text)
            leaves = [bytes.fromhex(h.removeprefix("0x")) for h in data["leaves"]]
            if any(len(leaf) != 32 for leaf in leaves):
                raise ValueError("a leaf is not 32 bytes")
            named = bytes.fromhex(data["lot"].removeprefix("0x"))
            lot = core.Lot(leaves, int(data.get("expiresAt", 0)))
        except (ValueError, KeyError, TypeError, AttributeError, InvalidValue) as exc:
            return self._skip(name, signature, "NotALotFile", str(exc) or type(exc).__name__)
        if named != lot.root:
            return self._skip(
                name, signature, "DamagedLotFile", f"its leaves make 0x{lot.root.hex()}, it names 0x{named.hex()}"
            )
        return _Entry(signature, lot)

    def _skip(self, name: str, signature: tuple[int, int], reason: str, detail: str) -> _Entry:
        log.warning("lot file %s skipped: %s (%s)", self.folder / name, reason, detail)
        return _Entry(signature, None, reason)

    def _rebuild(self) -> None:
        by_root: dict[bytes, core.Lot] = {}
        by_leaf: dict[bytes, tuple[core.Lot, int]] = {}
        for name, entry in list(self._files.items()):
            if entry.lot is None:
                continue
            if entry.lot.root in by_root:
                if entry.reason is None:
                    log.warning(
                        "lot file %s skipped: DuplicateLot (another file holds lot 0x%s)",
                        self.folder / name,
                        entry.lot.root.hex(),
                    )
                    self._files[name] = _Entry(entry.signature, entry.lot, "DuplicateLot")
                continue
            if entry.reason is not None:  # a duplicate whose twin is gone
                self._files[name] = _Entry(entry.signature, entry.lot)
            by_root[entry.lot.root] = entry.lot
            for index, leaf in enumerate(entry.lot.leaves):
                by_leaf.setdefault(leaf, (entry.lot, index))
        self._by_root, self._by_leaf = by_root, by_leaf

    # ------------------------------------------------------------------------------ answers

    def locate(self, leaf: bytes) -> dict | None:
        """{lot, index, proof, count, expiresAt} for ``leaf``, or None."""
        self.refresh()
        found = self._by_leaf.get(bytes(leaf))
        if found is None:
            return None
        lot, index = found
        return {
            "lot": "0x" + lot.root.hex(),
            "index": index,
            "proof": ["0x" + node.hex() for node in lot.proof(index)],
            "count": lot.count,
            "expiresAt": lot.expires_at,
        }

    def lot_json(self, root: bytes) -> str | None:
        self.refresh()
        lot = self._by_root.get(bytes(root))
        return lot.to_json() if lot is not None else None


def _word(value: str | None) -> bytes | None:
    return bytes.fromhex(value[2:]) if value and _WORD.fullmatch(value) else None


def lot_routes(index: LotIndex) -> list[Route]:
    """``api/lots/locate`` and ``api/lots/{root}`` for a part (the dApp, the patient's app)."""

    async def locate(request: Request) -> Response:
        leaf = _word(request.query_params.get("leaf"))
        if leaf is None:
            return json_response({"error": "give leaf=0x and 64 hex digits (keccak256 of the box's nullifier)"}, 400)
        found = await anyio.to_thread.run_sync(index.locate, leaf)
        if found is None:
            return json_response({"error": "no lot file here holds this box"}, 404)
        return json_response(found)

    async def lot_file(request: Request) -> Response:
        root = _word(request.path_params["root"])
        if root is None:
            return json_response({"error": "give the lot's root: 0x and 64 hex digits"}, 400)
        text = await anyio.to_thread.run_sync(index.lot_json, root)
        if text is None:
            return json_response({"error": "no lot file here for this lot"}, 404)
        return Response(text, media_type="application/json")

    return [
        Route("/api/lots/locate", locate, methods=["GET"]),
        Route("/api/lots/{root}", lot_file, methods=["GET"]),
    ]
