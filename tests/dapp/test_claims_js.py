"""The claim's opening in JavaScript (dapp/claims.js, what the pharmacy dApp runs) against the Python module
(rxchain.core.insurance), with node: the same amounts, insurance reference and salt give the same canonical
bytes, the same commitment and the same opening file, byte for byte, on random openings (names and references
with quotes, controls, non-ASCII and characters past U+FFFF, which JavaScript's own sort orders otherwise);
bad input is refused on both sides, by name in JavaScript; an opening file either side wrote reads on the other."""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import replace

import pytest

from rxchain.core.insurance import ClaimOpening
from rxchain.errors import InvalidValue

from .nodejs import run_node


#: Runs the operations read from stdin (a JSON list) with dapp/claims.js; prints one result per operation.
RUNNER = """
import { readFileSync } from "node:fs";
import { ethers } from "ethers";
const claims = await import(new URL("./dapp/claims.js", "file://" + process.cwd() + "/").href);
const ops = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const op of ops) {
  try {
    if (op.op === "open") {
      const opening = claims.newOpening(op.amounts, op.reference, op.salt);
      out.push({ ok: {
        canonical: ethers.hexlify(ethers.toUtf8Bytes(claims.canonicalText(opening))),
        commitment: claims.commitment(opening),
        file: claims.openingFileText(op.id, op.fillsLeft, opening),
        fileName: claims.openingFileName(op.id, op.fillsLeft),
      } });
    } else if (op.op === "read") {
      out.push({ ok: { commitment: claims.commitment(claims.readOpening(JSON.parse(op.text))) } });
    } else if (op.op === "salts") {
      const salts = Array.from({ length: op.count }, () => ethers.hexlify(claims.newOpening({ total: 1 }, "R").salt));
      out.push({ ok: salts });
    }
  } catch (error) {
    const { name, code, key, message } = error;
    out.push({ error: { name, code: code || "exception", key: key ?? null, message: String(message) } });
  }
}
console.log(JSON.stringify(out));
"""


def run_js(ops: list[dict]) -> list[dict]:
    return run_node(RUNNER, ops)


#: Characters that test the canonical text: JSON escapes, controls, non-ASCII, a private-use character
#: (U+E000, which JavaScript's sort puts after U+1F48A) and characters past U+FFFF.
ALPHABET = list("abcXYZ019 -_") + ['"', "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f", "é", "ß", "€", "\u2028"]
ALPHABET += ["\ue000", "\uffee", "\U0001f48a", "\U00010348", "漢", "\u0301"]
#: Whitespace Python's str.strip() removes (three of them String.prototype.trim keeps) and U+FEFF (the reverse).
EDGES = [" ", "\t", "\x1c", "\x1f", "\x85", "\u3000"]


def random_text(rng: random.Random, low: int = 1, high: int = 12) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, high)))


def random_amount(rng: random.Random) -> int:
    return rng.choice([0, 1, 2_560, 12_800, rng.randrange(10**6), rng.randrange(2**53), rng.randrange(2**53, 10**30)])


def random_case(rng: random.Random, n: int) -> tuple[dict, dict]:
    """(the Python opening's inputs, the JavaScript operation) for one random opening."""
    names = {"total", "copay"} if n % 5 == 0 else {random_text(rng) for _ in range(rng.randint(1, 5))}
    amounts = {name: random_amount(rng) for name in names}
    reference = rng.choice(["", *EDGES]) + random_text(rng, 1, 30) + rng.choice(["", *EDGES, "\ufeff"])
    salt = secrets.token_bytes(16)
    rx_id = "0x" + secrets.token_hex(32)
    fills_left = rng.randint(0, 255)
    # big amounts go to JavaScript as text (a JSON number past 2**53 is not exact there); small ones as numbers
    js_amounts = [[k, v if v < 2**53 else str(v)] for k, v in amounts.items()]
    op = {
        "op": "open",
        "amounts": js_amounts,
        "reference": reference,
        "salt": "0x" + salt.hex(),
        "id": rx_id,
        "fillsLeft": fills_left,
    }
    return {"amounts": amounts, "reference": reference, "salt": salt, "id": rx_id, "fillsLeft": fills_left}, op


def python_file(case: dict, opening: ClaimOpening) -> str:
    """The opening file exactly as `rx claim file` writes it."""
    return json.dumps({"id": case["id"], "fillsLeft": case["fillsLeft"], **opening.as_json()}, indent=2) + "\n"


def test_random_openings_give_the_same_bytes_commitment_and_file_on_both_sides():
    rng = random.Random(1414)
    cases, ops = zip(*(random_case(rng, n) for n in range(300)))
    answers = run_js(list(ops))
    compared = 0
    for case, answer in zip(cases, answers):
        try:
            opening = replace(ClaimOpening.new(case["amounts"], case["reference"]), salt=case["salt"])
        except InvalidValue:
            # only an empty reference is refused here (every amount is a whole number >= 0)
            assert answer.get("error", {}).get("name") == "EmptyInsuranceReference", (case, answer)
            continue
        assert "ok" in answer, (case, answer)
        assert answer["ok"]["canonical"] == "0x" + opening.canonical().hex(), case
        assert answer["ok"]["commitment"] == "0x" + opening.commitment.hex(), case
        assert answer["ok"]["file"] == python_file(case, opening), case
        assert answer["ok"]["fileName"] == f"{case['id']}-{case['fillsLeft']}.json"
        compared += 1
    assert compared > 250


def test_keys_sort_by_code_point_and_whitespace_strips_as_in_python():
    """The two places where JavaScript's defaults differ from Python's json.dumps and str.strip."""
    salt = bytes(range(16))
    amounts = {"\ue000": 1, "\U0001f48a": 2, "z": 3}
    for reference in ("\x1cINS-1\x85", "\ufeffINS-1", "\u3000INS 1\u3000"):
        py = replace(ClaimOpening.new(amounts, reference), salt=salt)
        (answer,) = run_js(
            [
                {
                    "op": "open",
                    "amounts": amounts,
                    "reference": reference,
                    "salt": "0x" + salt.hex(),
                    "id": "0x" + "11" * 32,
                    "fillsLeft": 0,
                }
            ]
        )
        assert answer["ok"]["canonical"] == "0x" + py.canonical().hex(), reference
        assert answer["ok"]["commitment"] == "0x" + py.commitment.hex(), reference
    assert (
        py.canonical().decode().index("z")
        < py.canonical().decode().index("\ue000")
        < py.canonical().decode().index("\U0001f48a")
    )


@pytest.mark.parametrize(
    "amounts, reference, name, key",
    [
        ({"total": 12800}, "", "EmptyInsuranceReference", None),
        ({"total": 12800}, " \t\x1c\u3000 ", "EmptyInsuranceReference", None),
        ({"total": -1}, "INS-1", "InvalidAmount", "total"),
        ({"total": 12800, "copay": 12.5}, "INS-1", "InvalidAmount", "copay"),
        ({"total": True}, "INS-1", "InvalidAmount", "total"),
        ({"total": None}, "INS-1", "InvalidAmount", "total"),
        ({}, "INS-1", "NoAmounts", None),
        ({}, "", "EmptyInsuranceReference", None),  # Python's order: the reference first
    ],
)
def test_bad_input_is_refused_on_both_sides_by_name(amounts, reference, name, key):
    with pytest.raises(InvalidValue):
        ClaimOpening.new(amounts, reference)
    (answer,) = run_js(
        [{"op": "open", "amounts": amounts, "reference": reference, "id": "0x" + "22" * 32, "fillsLeft": 0}]
    )
    assert answer["error"]["name"] == name, answer
    assert answer["error"]["key"] == key, answer


@pytest.mark.parametrize("text", ["12.80", "1e3", "-5", "", "0x10", "１２"])
def test_amounts_typed_as_text_are_whole_decimal_numbers(text):
    (answer,) = run_js(
        [{"op": "open", "amounts": [["total", text]], "reference": "INS-1", "id": "0x" + "33" * 32, "fillsLeft": 0}]
    )
    assert answer["error"]["name"] == "InvalidAmount", answer
    (answer,) = run_js(
        [
            {
                "op": "open",
                "amounts": [["total", " 0012800 "]],
                "reference": "INS-1",
                "salt": "0x" + "00" * 16,
                "id": "0x" + "33" * 32,
                "fillsLeft": 0,
            }
        ]
    )
    assert (
        answer["ok"]["commitment"]
        == "0x" + replace(ClaimOpening.new({"total": 12800}, "INS-1"), salt=bytes(16)).commitment.hex()
    )


def test_an_opening_written_by_either_side_reads_on_the_other():
    rng = random.Random(7)
    case, op = random_case(rng, 1)
    case["reference"] = op["reference"] = "INS-7 " + random_text(rng)
    (made,) = run_js([op])
    read_back = ClaimOpening.from_json(json.loads(made["ok"]["file"]))
    assert "0x" + read_back.commitment.hex() == made["ok"]["commitment"]
    py = ClaimOpening.new({"total": 2**53 - 1, "copay": 7, "é\U0001f48a": 0}, '\u00a0INS-"8"\n')
    (answer,) = run_js([{"op": "read", "text": python_file({"id": "0x" + "44" * 32, "fillsLeft": 3}, py)}])
    assert answer["ok"]["commitment"] == "0x" + py.commitment.hex()
    # JSON.parse reads a number past 2**53 inexactly: refused by name, never hashed rounded
    big = ClaimOpening.new({"total": 10**25}, "INS-9")
    (answer,) = run_js([{"op": "read", "text": python_file({"id": "0x" + "44" * 32, "fillsLeft": 3}, big)}])
    assert answer["error"]["name"] == "InvalidAmount", answer


def test_salts_are_fresh_16_bytes():
    (answer,) = run_js([{"op": "salts", "count": 64}])
    salts = answer["ok"]
    assert all(len(bytes.fromhex(s[2:])) == 16 for s in salts)
    assert len(set(salts)) == 64
