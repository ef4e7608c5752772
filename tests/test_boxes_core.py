"""rxchain.core.boxes, rxchain.core.insurance and rxchain.core.labels without a node: codes, secrets,
nullifiers, lots and their files, claim openings, scratch-panel codes."""

from __future__ import annotations

import json

import pytest
from eth_utils import keccak

from rxchain import errors
from rxchain.core import boxes as core
from rxchain.core.insurance import ClaimOpening, payment_reference, payment_reference_text
from rxchain.core.labels import read_scratch_code, scratch_text

CODE = "81234567890123456789"


def test_secrets_are_twenty_csprng_digits_and_differ():
    drawn = {core.new_secret() for _ in range(200)}
    assert len(drawn) == 200 and all(len(s) == 20 and s.isdigit() for s in drawn)


@pytest.mark.parametrize(
    "bad", ["", "1234", "8123456789012345678X", "812345678901234567890", "８１２３４５６７８９０１２３４５６７８９"]
)
def test_a_traceability_code_is_twenty_ascii_digits(bad):
    with pytest.raises(core.BadBoxCode):
        core.check_code(bad)


def test_the_nullifier_reveals_neither_code_nor_secret_and_is_not_the_leaf():
    secret = core.new_secret()
    n = core.nullifier(CODE, secret)
    assert n == keccak(f"rxchain-box-v1:{CODE}:{secret}".encode())
    assert core.box_leaf(n) == keccak(n) != n
    assert core.nullifier(CODE, core.new_secret()) != n  # the printed code alone names no box
    assert core.nullifier(" 8123 4567 8901 2345 6789 ", secret) == n  # spaces as printed are ignored


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 9, 100])
def test_every_multiproof_rebuilds_the_root(count):
    boxes = [core.Box(i, f"{81_000_000_000_000_000_000 + i:020d}", core.new_secret()) for i in range(count)]
    lot = core.Lot.from_boxes(boxes)
    for indexes in ([0], [count - 1], list(range(count)), list(range(0, count, 3)), list(range(1, count, 2)) or [0]):
        assert (
            _root_as_the_contract(lot.depth, indexes, [lot.leaves[i] for i in indexes], lot.multiproof(indexes))
            == lot.root
        )
        assert lot.index_of(boxes[indexes[0]].nullifier) == indexes[0]


def _root_as_the_contract(depth, positions, hashes, proof):
    """DrugBoxes._root, transcribed."""
    positions, hashes, used = list(positions), list(hashes), 0
    for _ in range(depth):
        new_positions, new_hashes, i = [], [], 0
        while i < len(positions):
            pos, h = positions[i], hashes[i]
            if pos % 2 == 0 and i + 1 < len(positions) and positions[i + 1] == pos + 1:
                parent, i = keccak(h + hashes[i + 1]), i + 2
            elif pos % 2 == 0:
                parent, used, i = keccak(h + proof[used]), used + 1, i + 1
            else:
                parent, used, i = keccak(proof[used] + h), used + 1, i + 1
            new_positions.append(pos >> 1)
            new_hashes.append(parent)
        positions, hashes = new_positions, new_hashes
    assert used == len(proof)
    return hashes[0]


def test_the_lot_file_round_trips_and_a_damaged_one_is_refused(tmp_path):
    boxes = [core.Box(i, f"{81_000_000_000_000_000_000 + i:020d}", core.new_secret()) for i in range(5)]
    lot = core.Lot.from_boxes(boxes, 1_900_000_000)
    text = lot.to_json()
    assert all(b.code not in text and b.secret not in text for b in boxes)
    again = core.Lot.from_json(text)
    assert (again.root, again.count, again.expires_at) == (lot.root, 5, 1_900_000_000)
    data = json.loads(text)
    data["leaves"][2] = "0x" + "11" * 32
    with pytest.raises(errors.InvalidValue, match="damaged"):
        core.Lot.from_json(json.dumps(data))


def test_a_codes_csv_gets_fresh_secrets_and_refuses_duplicates(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text(f"code,secret\n{CODE},\n81234567890123456780,11112222333344445555\n")
    boxes = core.read_codes_csv(path)
    assert (
        [b.index for b in boxes] == [0, 1] and len(boxes[0].secret) == 20 and boxes[1].secret == "11112222333344445555"
    )
    box_file = core.write_box_file(boxes, tmp_path / "lot.boxes.csv")
    assert box_file.stat().st_mode & 0o077 == 0, "the box file holds the secrets: its owner's only"
    assert core.read_box_file(box_file) == boxes
    path.write_text(f"code\n{CODE}\n{CODE}\n")
    with pytest.raises(core.BadBoxCode, match="line 3"):
        core.read_codes_csv(path)


def test_a_claim_commitment_hides_its_opening_behind_a_salt():
    one = ClaimOpening.new({"total": 12_800}, "INS-1")
    two = ClaimOpening.new({"total": 12_800}, "INS-1")
    assert one.commitment != two.commitment  # a fresh salt each time: a dictionary of references does not open it
    assert ClaimOpening.from_json(json.loads(json.dumps(one.as_json()))).commitment == one.commitment
    with pytest.raises(errors.InvalidValue):
        ClaimOpening.new({"total": -1}, "INS-1")
    with pytest.raises(errors.InvalidValue):
        ClaimOpening.new({"total": 1}, "  ")


def test_payment_references_are_short_ascii():
    assert payment_reference_text(payment_reference("PAY-2026-0001")) == "PAY-2026-0001"
    for bad in ("", "x" * 33, "付款"):
        with pytest.raises(errors.InvalidValue):
            payment_reference(bad)


def test_the_scratch_panel_code_reads_back():
    box = core.Box(0, CODE, core.new_secret())
    assert read_scratch_code(scratch_text(box)) == (CODE, box.secret)
    with pytest.raises(errors.InvalidValue):
        read_scratch_code(CODE)
