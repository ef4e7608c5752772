"""The box formats in JavaScript (dapp/boxes.js, what the box check page and the dApp's boxes step run)
against the Python module (rxchain.core.boxes), with node: nullifiers, leaves, roots, proofs, multiproofs
and the lot file byte for byte on random lots, and bad input refused for the same reason."""

from __future__ import annotations

import json
import random

import pytest

from rxchain.core import boxes as core
from rxchain.core.labels import read_scratch_code
from rxchain.errors import InvalidValue

from .nodejs import run_node


#: Runs the operations read from stdin (JSON list) with dapp/boxes.js; prints one result per operation.
RUNNER = """
import { readFileSync } from "node:fs";
const b = await import(new URL("./dapp/boxes.js", "file://" + process.cwd() + "/").href);
const ops = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const op of ops) {
  try {
    if (op.op === "lot") {
      const nullifiers = op.boxes.map(([code, secret]) => b.nullifier(code, secret));
      const leaves = nullifiers.map(b.boxLeaf);
      const lot = new b.Lot(leaves, op.expiresAt);
      const again = b.Lot.fromJson(lot.toJson());
      out.push({ ok: {
        nullifiers, leaves, root: lot.root, depth: lot.depth, json: lot.toJson(), reread: again.root,
        indexes: nullifiers.map((n) => lot.indexOf(n)),
        proofs: op.proofs.map((i) => lot.proof(i)),
        rootsFromProofs: op.proofs.map((i) => b.proofRoot(nullifiers[i], i, lot.proof(i))),
        multiproofs: op.multiproofs.map((indexes) => lot.multiproof(indexes)),
        // from Python's single proofs alone, in a shuffled order (what the dApp's boxes step sends)
        fromProofs: op.multiproofs.map((indexes) =>
          b.multiproofFromProofs([...indexes].reverse().map((i) => ({ index: i, proof: op.singles[i] })))),
        dispense: b.dispenseArgs(op.multiproofs[op.multiproofs.length - 1].map((i) =>
          ({ root: lot.root, index: i, nullifier: nullifiers[i], proof: op.singles[i] }))),
      } });
    } else if (op.op === "scan") {
      out.push({ ok: b.readScratchCode(op.text) });
    } else if (op.op === "box") {
      out.push({ ok: b.readBox("", op.code, op.secret) });
    } else if (op.op === "lotfile") {
      out.push({ ok: b.Lot.fromJson(op.text).root });
    }
  } catch (error) {
    out.push({ error: { code: error.code || "exception", message: String(error.message) } });
  }
}
console.log(JSON.stringify(out));
"""


def run_js(ops: list[dict]) -> list[dict]:
    return run_node(RUNNER, ops, timeout=300)


def hexes(values: list[bytes]) -> list[str]:
    return ["0x" + bytes(v).hex() for v in values]


def random_subsets(rng: random.Random, count: int, n: int = 6) -> list[list[int]]:
    subsets = [[0], [count - 1], list(range(count))]
    for _ in range(n):
        k = rng.randint(1, count)
        subsets.append(sorted(rng.sample(range(count), k)))
    return subsets


@pytest.mark.parametrize("count", [1, 2, 3, 5, 300])
def test_random_lots_match_python_byte_for_byte(count):
    rng = random.Random(1400 + count)
    made = [core.Box(i, f"{rng.randrange(10**20):020d}", f"{rng.randrange(10**20):020d}") for i in range(count)]
    while len({(b.code, b.secret) for b in made}) != count:  # pragma: no cover - 10**-30 odds
        made = [core.Box(i, f"{rng.randrange(10**20):020d}", b.secret) for i, b in enumerate(made)]
    lot = core.Lot.from_boxes(made, rng.randrange(2**40))
    proofs = sorted({0, count - 1, *rng.sample(range(count), min(count, 8))})
    multiproofs = random_subsets(rng, count)
    op = {
        "op": "lot",
        "boxes": [[b.code, b.secret] for b in made],
        "expiresAt": lot.expires_at,
        "proofs": proofs,
        "multiproofs": multiproofs,
        "singles": [hexes(lot.proof(i)) for i in range(count)],
    }
    (answer,) = run_js([op])
    assert "ok" in answer, answer
    js = answer["ok"]
    assert js["nullifiers"] == hexes([b.nullifier for b in made])
    assert js["leaves"] == hexes(lot.leaves)
    assert js["root"] == "0x" + lot.root.hex() == js["reread"]
    assert js["depth"] == lot.depth
    assert js["json"] == lot.to_json()  # the lot file, byte for byte
    assert js["indexes"] == list(range(count))
    assert js["proofs"] == [hexes(lot.proof(i)) for i in proofs]
    assert js["rootsFromProofs"] == ["0x" + lot.root.hex()] * len(proofs)
    assert js["multiproofs"] == [hexes(lot.multiproof(indexes)) for indexes in multiproofs]
    assert js["fromProofs"] == js["multiproofs"]
    last = multiproofs[-1]
    assert js["dispense"] == [  # as BoxesClient.dispense_args builds it
        [
            "0x" + lot.root.hex(),
            last,
            hexes([made[i].nullifier for i in last]),
            hexes(lot.multiproof(last)),
        ]
    ]


def test_scanned_and_typed_boxes_read_as_python_reads_them():
    code, secret = "81234567890123456789", "00012345678901234567"
    good = [f"RXS1:{code}:{secret}", f"  RXS1:{code}:{secret}\n"]
    bad = [
        "",
        f"RXS:{code}:{secret}",
        f"RXS1:{code}",
        f"RXS1:{code}:{secret}:9",
        f"RXS1:{code[:-1]}:{secret}",
        f"RXS1:{code}:{secret[:-1]}",
        f"RXS1:{code}:1234567890123456789X",
    ]
    answers = run_js([{"op": "scan", "text": text} for text in good + bad])
    for text, answer in zip(good, answers):
        assert answer == {"ok": dict(zip(("code", "secret"), read_scratch_code(text)))}
    for text, answer in zip(bad, answers[len(good) :]):
        with pytest.raises(InvalidValue) as caught:
            read_scratch_code(text)
        js = answer["error"]
        if isinstance(caught.value, core.BadBoxCode) and "traceability code" in str(caught.value):
            assert js["code"] == "bad-code", text
        elif isinstance(caught.value, core.BadBoxCode):
            assert js["code"] == "bad-secret", text
            assert str(caught.value).split("(got ")[1] in js["message"]  # the same count of characters
        else:
            assert js["code"] == "not-a-scratch-code", text

    typed = [(" 8123 4567 8901 2345 6789 ", "0001-2345-6789-0123-4567"), (code, secret), ("8123", secret), (code, "12")]
    answers = run_js([{"op": "box", "code": c, "secret": s} for c, s in typed])
    for (c, s), answer in zip(typed, answers):
        try:
            expected = {"code": core.check_code(c), "secret": core.check_secret(s)}
        except core.BadBoxCode as exc:
            assert answer["error"]["code"] == ("bad-code" if "traceability" in str(exc) else "bad-secret")
        else:
            assert answer == {"ok": expected}
            assert core.nullifier(c, s) == core.nullifier(expected["code"], expected["secret"])


def test_a_damaged_or_foreign_lot_file_is_refused_on_both_sides():
    made = [core.Box(i, f"{85_000_000_000_000_000_000 + i:020d}", core.new_secret()) for i in range(4)]
    text = core.Lot.from_boxes(made, 99).to_json()
    data = json.loads(text)
    damaged = json.dumps({**data, "leaves": list(reversed(data["leaves"]))})
    for bad in (damaged, "{}", "not json", json.dumps({**data, "leaves": []})):
        with pytest.raises(InvalidValue):
            core.Lot.from_json(bad)
        (answer,) = run_js([{"op": "lotfile", "text": bad}])
        assert answer["error"]["code"] == "bad-lot", bad
    (answer,) = run_js([{"op": "lotfile", "text": text}])
    assert answer == {"ok": data["lot"]}
