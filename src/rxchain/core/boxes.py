"""Drug boxes: traceability codes, scratch-panel secrets, nullifiers and lots (no node needed).

Each box carries its 20-digit traceability code (printed, scanned by anyone) and a 20-digit secret
under a scratch panel (about 66 bits from the operating system's CSPRNG). What goes on chain never
names either, nor the drug:

    nullifier = keccak256("rxchain-box-v1:" + code + ":" + secret)      (ASCII; spent at dispense)
    leaf      = keccak256(nullifier)                                     (32 bytes hashed)
    node      = keccak256(left + right)                                  (64 bytes hashed, by position)

A lot is the root of a positional Merkle tree over its boxes' leaves (box i is leaf i; the tree is
padded with zero leaves to a power of two), so a proof fixes the box's index in the lot and the
DrugBoxes contract keeps one "unsold" bit per box. A leaf and an inner node hash inputs of different
lengths, so neither passes for the other; a zero padding leaf is no box's leaf (it would need a
keccak256 preimage of zero).

Files: the manufacturer's box file (CSV ``index,code,secret``: secret, it prints the labels from it)
and the public lot file (JSON: root, count, expiry and the leaves, which name no code and no secret)
that travels with the goods so a pharmacy can prove its boxes and anyone can check one.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from rxchain.core.hashing import keccak256
from rxchain.errors import InvalidValue

__all__ = [
    "CODE_DIGITS",
    "MAX_LOT",
    "SECRET_DIGITS",
    "Box",
    "Lot",
    "box_leaf",
    "check_code",
    "check_secret",
    "new_secret",
    "nullifier",
    "read_box_file",
    "read_codes_csv",
]

CODE_DIGITS = 20
SECRET_DIGITS = 20
#: The most boxes one lot may hold (the contract's limit).
MAX_LOT = 65_536
_DOMAIN = b"rxchain-box-v1:"


class BadBoxCode(InvalidValue):
    """A traceability code or secret that is not what a box carries."""


def check_code(code: str) -> str:
    """``code`` stripped, if it is a 20-digit traceability code; else :class:`BadBoxCode`."""
    code = str(code).strip().replace(" ", "")
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        raise BadBoxCode(f"{code!r} is not a {CODE_DIGITS}-digit traceability code: scan or type the code on the box")
    return code


def check_secret(secret: str) -> str:
    """``secret`` stripped, if it is a 20-digit scratch-panel secret; else :class:`BadBoxCode`."""
    secret = str(secret).strip().replace(" ", "").replace("-", "")
    if len(secret) != SECRET_DIGITS or not secret.isascii() or not secret.isdigit():
        raise BadBoxCode(
            f"the secret must be the {SECRET_DIGITS} digits under the box's scratch panel"
            f" (got {len(secret)} characters)"
        )
    return secret


def new_secret() -> str:
    """A fresh scratch-panel secret: 20 decimal digits from the CSPRNG (log2(10**20) = 66.4 bits)."""
    return f"{secrets.randbelow(10**SECRET_DIGITS):0{SECRET_DIGITS}d}"


def nullifier(code: str, secret: str) -> bytes:
    """What a box spends on chain: reveals neither its code nor its secret, and differs from its leaf."""
    return keccak256(_DOMAIN + check_code(code).encode() + b":" + check_secret(secret).encode())


def box_leaf(nullifier_: bytes) -> bytes:
    """A box's Merkle leaf: keccak256 of its 32-byte nullifier."""
    if len(nullifier_) != 32:
        raise InvalidValue("a nullifier is 32 bytes")
    return keccak256(bytes(nullifier_))


@dataclass(frozen=True)
class Box:
    """One box of a lot, as its manufacturer knows it."""

    index: int
    code: str
    secret: str

    @property
    def nullifier(self) -> bytes:
        return nullifier(self.code, self.secret)


@dataclass
class Lot:
    """A lot's public side: its leaves (in index order), root and expiry; proofs for its boxes."""

    leaves: list[bytes]
    expires_at: int = 0
    _levels: list[list[bytes]] = field(default_factory=list, repr=False)
    _index_of: dict[bytes, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.leaves) <= MAX_LOT:
            raise InvalidValue(f"a lot holds 1 to {MAX_LOT} boxes ({len(self.leaves)} given)")
        self._index_of = {leaf: i for i, leaf in enumerate(self.leaves)}
        if len(self._index_of) != len(self.leaves):
            raise InvalidValue("two boxes of the lot have the same code and secret: every box must be unique")
        width = 1 << self.depth
        level = list(self.leaves) + [bytes(32)] * (width - len(self.leaves))
        self._levels = [level]
        while len(level) > 1:
            level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
            self._levels.append(level)

    @classmethod
    def from_boxes(cls, boxes: list[Box], expires_at: int = 0) -> "Lot":
        for i, box in enumerate(boxes):
            if box.index != i:
                raise InvalidValue(f"box {i} of the lot has index {box.index}: boxes must be numbered 0, 1, 2 …")
        return cls([box_leaf(box.nullifier) for box in boxes], expires_at)

    @property
    def count(self) -> int:
        return len(self.leaves)

    @property
    def depth(self) -> int:
        return max(0, (len(self.leaves) - 1).bit_length())

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def index_of(self, nullifier_: bytes) -> int | None:
        """The index of the box with this nullifier, or None when it is not in the lot."""
        return self._index_of.get(box_leaf(nullifier_))

    def proof(self, index: int) -> list[bytes]:
        """The siblings of box ``index`` from its leaf up (what ``boxState`` checks)."""
        return self.multiproof([index])

    def multiproof(self, indexes: list[int]) -> list[bytes]:
        """The siblings the contract needs for the boxes at ``indexes`` (strictly increasing): level by
        level, left to right, those not computed from the boxes themselves."""
        if (
            any(b <= a for a, b in zip(indexes, indexes[1:]))
            or not indexes
            or indexes[0] < 0
            or indexes[-1] >= self.count
        ):
            raise InvalidValue("box indexes must be strictly increasing and inside the lot")
        proof: list[bytes] = []
        known = list(indexes)
        for level in self._levels[:-1]:
            parents: list[int] = []
            i = 0
            while i < len(known):
                pos = known[i]
                if pos % 2 == 0 and i + 1 < len(known) and known[i + 1] == pos + 1:
                    i += 2
                else:
                    proof.append(level[pos ^ 1])
                    i += 1
                parents.append(pos >> 1)
            known = parents
        return proof

    def to_json(self) -> str:
        """The public lot file: root, count, expiry and the leaves (no code, no secret)."""
        return (
            json.dumps(
                {
                    "format": "rxchain-lot-1",
                    "lot": "0x" + self.root.hex(),
                    "count": self.count,
                    "expiresAt": self.expires_at,
                    "leaves": ["0x" + leaf.hex() for leaf in self.leaves],
                },
                indent=1,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, *, source: str = "the lot file") -> "Lot":
        try:
            data = json.loads(text)
            leaves = [bytes.fromhex(h[2:] if h.startswith("0x") else h) for h in data["leaves"]]
            lot = cls(leaves, int(data.get("expiresAt", 0)))
            claimed = bytes.fromhex(data["lot"][2:])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidValue(
                f"{source} is not an rxchain lot file ({exc}): ask the manufacturer for the lot's file"
            ) from None
        if claimed != lot.root:
            raise InvalidValue(f"{source} is damaged: its leaves do not make the root it names (0x{claimed.hex()})")
        return lot

    @classmethod
    def read(cls, path: str | Path) -> "Lot":
        return cls.from_json(Path(path).read_text(), source=str(path))


def read_codes_csv(path: str | Path, *, fresh_secret=new_secret) -> list[Box]:
    """The boxes of a lot from a manufacturer's CSV with a ``code`` column (and optionally ``secret``):
    a box without a secret gets a fresh one. Codes must be 20 digits and unique."""
    text = Path(path).read_text()
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "code" not in [f.strip().lower() for f in reader.fieldnames]:
        raise InvalidValue(f"{path} has no 'code' column: a CSV with a header line 'code' (and optionally 'secret')")
    boxes: list[Box] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        try:
            code = check_code(row["code"])
            secret = check_secret(row["secret"]) if row.get("secret") else fresh_secret()
        except BadBoxCode as exc:
            raise BadBoxCode(f"{path}, line {line}: {exc}") from None
        if code in seen:
            raise BadBoxCode(f"{path}, line {line}: code {code} appears twice: every box has its own code")
        seen.add(code)
        boxes.append(Box(len(boxes), code, secret))
    if not boxes:
        raise InvalidValue(f"{path} lists no boxes")
    return boxes


def write_box_file(boxes: list[Box], path: str | Path) -> Path:
    """The manufacturer's box file (``index,code,secret``), readable by its owner only: it holds the secrets."""
    path = Path(path)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "code", "secret"])
    for box in boxes:
        writer.writerow([box.index, box.code, box.secret])
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(out.getvalue())
    return path


def read_box_file(path: str | Path) -> list[Box]:
    """The boxes of a box file written by :func:`write_box_file`."""
    boxes = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                boxes.append(Box(int(row["index"]), check_code(row["code"]), check_secret(row["secret"])))
            except (KeyError, ValueError, TypeError) as exc:
                raise BadBoxCode(f"{path}, line {line}: not a box file line ({exc})") from None
    return boxes


def reused_codes(boxes: list[Box], folder: str | Path) -> dict[str, str]:
    """The codes of ``boxes`` already issued in an earlier lot whose box file is in ``folder``: code ->
    that lot's box file name. A traceability code names one box: a second box with the same printed
    code (another secret, so another leaf) would pass as genuine beside the first."""
    wanted = {box.code for box in boxes}
    found: dict[str, str] = {}
    for path in sorted(Path(folder).glob("*.boxes.csv")):
        for box in read_box_file(path):
            if box.code in wanted and box.code not in found:
                found[box.code] = path.name
    return found


def label_text(code: str) -> str:
    """What the printed (visible) barcode of a box holds: its traceability code."""
    return check_code(code)
