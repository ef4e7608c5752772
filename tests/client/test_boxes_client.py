"""The boxes and claims client and the `rx box` / `rx claim` commands, on a real chain.

The pharmacist hears why a box is refused BEFORE anything is sent: the checks raise the contract's
named errors and no transaction is signed (the outbox stays empty).
"""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from rxchain import errors
from rxchain.chain.boxes import BoxesClient, BoxState, ClaimStatus, UnknownBox
from rxchain.core import boxes as core
from rxchain.core.insurance import ClaimOpening
from rxchain.core.labels import read_scratch_code, scratch_text
from rxchain.workflow import confirm_payload_receipt, issue_prescription, redeem_payload
from rxchain.dev.demo import demo_document

YEAR = 365 * 86_400


@pytest.fixture
def boxes(client, deployment) -> BoxesClient:
    return BoxesClient.for_deployment(client, deployment)


def make_lot(boxes, manufacturer, count=6, *, expires_in=YEAR, first=1):
    made = [
        core.Box(i, f"{82_000_000_000_000_000_000 + first * 1000 + i:020d}", core.new_secret()) for i in range(count)
    ]
    lot = core.Lot.from_boxes(made, boxes.registry.latest_block_time() + expires_in)
    boxes.register_lot(manufacturer, lot)
    return lot, made


def dispensed(client, ids, pharmacy_name="pharmacy", fills=1):
    issued = issue_prescription(
        client, ids["doctor"], demo_document(ids["doctor"].address, client.latest_block_time()), fills=fills
    )
    redeem_payload(client, ids[pharmacy_name], issued.payload_text)
    return issued


def test_a_fill_is_dispensed_received_claimed_and_approved(client, boxes, ids):
    lot, made = make_lot(boxes, ids["manufacturer"], first=1)
    issued = dispensed(client, ids)
    tx, nullifiers = boxes.dispense(ids["pharmacy"], issued.rx_id, [(b.code, b.secret) for b in made[:3]], [lot])
    assert [e["event"] for e in boxes.receipt_events(tx)] == ["FillBoxesRecorded"]
    assert nullifiers == [b.nullifier for b in made[:3]]
    assert boxes.check_box(made[0].code, made[0].secret, [lot]).state is BoxState.DISPENSED
    assert boxes.check_box(made[5].code, made[5].secret, [lot]).state is BoxState.UNSOLD

    with pytest.raises(errors.FillNotReceived):
        boxes.file_claim(ids["pharmacy"], issued.rx_id, 0, ids["insurer"].address, ClaimOpening.new({"total": 1}, "X1"))
    client.deliver(ids["pharmacy"], issued.rx_id)
    confirm_payload_receipt(client, ids["pharmacy"], issued.payload_text)

    opening = ClaimOpening.new({"total": 12_800, "copay": 2_560}, "INS-3301-0042")
    boxes.file_claim(ids["pharmacy"], issued.rx_id, 0, ids["insurer"].address, opening)
    filed = boxes.claim_events(issued.rx_id, 0)["filed"]
    assert filed["commitment"] == "0x" + opening.commitment.hex()
    assert filed["insurer"] == ids["insurer"].address
    with pytest.raises(errors.ClaimAlreadyFiled):
        boxes.file_claim(ids["pharmacy"], issued.rx_id, 0, ids["insurer"].address, opening)
    with pytest.raises(errors.NotClaimInsurer):
        boxes.approve(ids["pharmacy2"], issued.rx_id, 0, "PAY-1")
    boxes.approve(ids["insurer"], issued.rx_id, 0, "PAY-2026-11-28-0001")
    record = boxes.fill(issued.rx_id, 0)
    assert (record.pharmacy, record.boxes, record.claim) == (ids["pharmacy"].address, 3, ClaimStatus.PAID)
    assert boxes.claim_events(issued.rx_id, 0)["paid"]["paymentReference"] == "PAY-2026-11-28-0001"


def test_refusals_are_named_before_anything_is_sent(client, boxes, ids, regulator, w3):
    lot, made = make_lot(boxes, ids["manufacturer"], first=2)
    first = dispensed(client, ids)
    boxes.dispense(ids["pharmacy"], first.rx_id, [(made[0].code, made[0].secret)], [lot])
    second = dispensed(client, ids, "pharmacy2")
    sent_before = w3.eth.get_transaction_count(ids["pharmacy2"].address)

    with pytest.raises(errors.BoxAlreadyDispensed) as caught:
        boxes.dispense(ids["pharmacy2"], second.rx_id, [(made[0].code, made[0].secret)], [lot])
    assert "dispensed already" in str(caught.value)
    with pytest.raises(UnknownBox):  # the printed code with a guessed secret
        boxes.dispense(ids["pharmacy2"], second.rx_id, [(made[1].code, core.new_secret())], [lot])
    with pytest.raises(errors.NotCustodian):
        boxes.dispense(ids["pharmacy2"], first.rx_id, [(made[1].code, made[1].secret)], [lot])
    boxes.recall(regulator, lot.root)
    with pytest.raises(errors.LotIsRecalled):
        boxes.dispense(ids["pharmacy2"], second.rx_id, [(made[1].code, made[1].secret)], [lot])
    extra = core.Box(0, "82000000000000099999", core.new_secret())
    unregistered = core.Lot.from_boxes([extra], 0)  # its lot file exists, the lot was never registered
    with pytest.raises(errors.UnknownLot):
        boxes.dispense(ids["pharmacy2"], second.rx_id, [(extra.code, extra.secret)], [unregistered])
    assert w3.eth.get_transaction_count(ids["pharmacy2"].address) == sent_before  # nothing was sent


def test_an_expired_lot_is_named_before_sending(client, boxes, ids, w3):
    lot, made = make_lot(boxes, ids["manufacturer"], first=3, expires_in=3_600)
    w3.provider.make_request("evm_increaseTime", [7_200])
    w3.provider.make_request("evm_mine", [])
    issued = dispensed(client, ids)
    with pytest.raises(errors.LotExpired):
        boxes.dispense(ids["pharmacy"], issued.rx_id, [(made[0].code, made[0].secret)], [lot])
    assert boxes.check_box(made[0].code, made[0].secret, [lot]).state is BoxState.EXPIRED


def test_a_dispensed_box_is_found_without_its_lot_file(client, boxes, ids):
    lot, made = make_lot(boxes, ids["manufacturer"], first=4)
    issued = dispensed(client, ids)
    boxes.dispense(ids["pharmacy"], issued.rx_id, [(made[2].code, made[2].secret)], [lot])
    check = boxes.check_box(made[2].code, made[2].secret)
    assert check.state is BoxState.DISPENSED
    assert check.dispensed["rxId"] == str(issued.rx_id) and check.dispensed["pharmacy"] == ids["pharmacy"].address
    assert boxes.check_box(made[3].code, made[3].secret).state is BoxState.UNKNOWN


def test_the_label_sheet_carries_real_datamatrix_codes(tmp_path):
    import zxingcpp

    from rxchain.core.labels import label_sheet_png

    made = [core.Box(i, f"{83_000_000_000_000_000_000 + i:020d}", core.new_secret()) for i in range(3)]
    path = label_sheet_png(made, tmp_path / "labels.png", columns=3)
    found = {r.text for r in zxingcpp.read_barcodes(Image.open(path).convert("L"))}
    assert {b.code for b in made} | {scratch_text(b) for b in made} <= found
    assert read_scratch_code(scratch_text(made[1])) == (made[1].code, made[1].secret)


def test_rx_box_and_rx_claim_commands(rx, tmp_path, client, ids, boxes):
    codes = tmp_path / "codes.csv"
    codes.write_text("code\n" + "".join(f"{84_000_000_000_000_000_000 + i:020d}\n" for i in range(5)))
    code, out, err = rx(
        "box", "register", "--csv", str(codes), "--out", str(tmp_path / "lots"), "--as", "manufacturer", json_out=True
    )
    assert code == 0, err
    lot_root, box_file = out["lot"], out["boxFile"]
    with open(box_file) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and all(len(r["secret"]) == 20 for r in rows)
    assert len({r["secret"] for r in rows}) == 5
    # the same printed codes again (fresh secrets would make them new leaves): refused before anything is sent
    again = tmp_path / "again.csv"
    again.write_text("code\n" + f"{84_000_000_000_000_000_099:020d}\n" + rows[3]["code"] + "\n")
    lots_before = sorted(p.name for p in (tmp_path / "lots").iterdir())
    code, out, err = rx("box", "register", "--csv", str(again), "--out", str(tmp_path / "lots"), "--as", "manufacturer")
    assert code == errors.InvalidValue.exit_code and "issued in an earlier lot" in err and rows[3]["code"] in err
    assert sorted(p.name for p in (tmp_path / "lots").iterdir()) == lots_before

    code, out, err = rx("box", "labels", "--boxes", box_file, "--out", str(tmp_path / "labels.png"), json_out=True)
    assert code == 0 and out["labels"] == 5, err

    issued = dispensed(client, ids)
    rx_id = str(issued.rx_id)
    code, out, err = rx(
        "box", "check", rows[0]["code"], rows[0]["secret"], "--lot", str(tmp_path / "lots"), json_out=True
    )
    assert code == 0 and out["state"] == "unsold", err
    code, out, err = rx(
        "box",
        "dispense",
        rx_id,
        "--box",
        f"{rows[0]['code']}:{rows[0]['secret']}",
        "--scan",
        f"RXS1:{rows[1]['code']}:{rows[1]['secret']}",
        "--lot",
        str(tmp_path / "lots"),
        "--as",
        "pharmacy",
        json_out=True,
    )
    assert code == 0 and out["boxes"] == 2, err
    code, out, err = rx("box", "check", rows[0]["code"], rows[0]["secret"], "--lot", str(tmp_path / "lots"))
    assert code == errors.Refused.exit_code and "already sold" in out
    # a second dispense of the same box: refused, named, exit 1
    other = dispensed(client, ids, "pharmacy2")
    code, out, err = rx(
        "box",
        "dispense",
        str(other.rx_id),
        "--box",
        f"{rows[0]['code']}:{rows[0]['secret']}",
        "--lot",
        str(tmp_path / "lots"),
        "--as",
        "pharmacy2",
    )
    assert code == errors.Refused.exit_code and "BoxAlreadyDispensed" in err
    # ... and the second scan went on chain first, as the regulator's duplicate alarm
    reports = boxes.events("DuplicateBoxScanned")
    first_box = core.nullifier(rows[0]["code"], rows[0]["secret"])
    assert [(r["args"]["pharmacy"], bytes(r["args"]["nullifier"])) for r in reports] == [
        (ids["pharmacy2"].address, first_box)
    ]
    assert "reported to the regulator" in out + err
    code, out, err = rx(
        "box",
        "dispense",
        str(other.rx_id),
        "--box",
        f"{rows[0]['code']}:{rows[0]['secret']}",
        "--lot",
        str(tmp_path / "lots"),
        "--no-report",
        "--as",
        "pharmacy2",
    )
    assert code == errors.Refused.exit_code and "BoxAlreadyDispensed" in err
    assert len(boxes.events("DuplicateBoxScanned")) == 1  # --no-report: refused, nothing reported

    assert rx("deliver", rx_id, "--as", "pharmacy")[0] == 0  # the CLI holds the pharmacy's nonces now
    assert rx("confirm", "--payload", issued.payload_text, "--as", "pharmacy")[0] == 0
    opening_file = tmp_path / "opening.json"
    code, out, err = rx(
        "claim",
        "file",
        rx_id,
        "--insurer",
        "insurer",
        "--amount",
        "total=12800",
        "--insurance-ref",
        "INS-0042",
        "--out",
        str(opening_file),
        "--as",
        "pharmacy",
        json_out=True,
    )
    assert code == 0, err
    opening = json.loads(opening_file.read_text())
    assert opening["insuranceReference"] == "INS-0042" and opening["commitment"] == out["commitment"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**opening, "amounts": {"total": 99_999}}))
    code, out, err = rx(
        "claim",
        "approve",
        rx_id,
        "--fills-left",
        "0",
        "--payment-ref",
        "PAY-1",
        "--opening",
        str(tampered),
        "--as",
        "insurer",
    )
    assert code == errors.Refused.exit_code and "does not match" in err
    code, out, err = rx(
        "claim",
        "approve",
        rx_id,
        "--fills-left",
        "0",
        "--opening",
        str(opening_file),
        "--as",
        "insurer",
        json_out=True,
    )
    assert code == 0 and out["paid"] is False, err
    code, out, err = rx("claim", "show", rx_id, json_out=True)
    assert code == 0 and out["claim"] == "approved" and "paid" not in out, (out, err)
    code, out, err = rx("claim", "pay", rx_id, "--fills-left", "0", "--payment-ref", "PAY-1", "--as", "pharmacy")
    assert code == errors.Refused.exit_code and "NotClaimInsurer" in err
    code, out, err = rx("claim", "pay", rx_id, "--fills-left", "0", "--payment-ref", "PAY-1", "--as", "insurer")
    assert code == 0, err
    code, out, err = rx("claim", "show", rx_id, json_out=True)
    assert code == 0 and out["claim"] == "paid" and out["paid"]["paymentReference"] == "PAY-1", (out, err)
    code, out, err = rx("claim", "pay", rx_id, "--fills-left", "0", "--payment-ref", "PAY-2", "--as", "insurer")
    assert code == errors.Refused.exit_code and "ClaimNotApproved" in err
    code, out, err = rx("claim", "reject", rx_id, "--fills-left", "0", "--reason", "4", "--as", "insurer")
    assert code == errors.Refused.exit_code and "ClaimNotPending" in err
    code, out, err = rx("box", "recall", lot_root, "--as", "pharmacy")
    assert code == errors.Refused.exit_code and "NotLotManufacturer" in err
    code, out, err = rx("box", "recall", lot_root, "--as", "manufacturer", json_out=True)
    assert code == 0, err


def test_the_regulator_voiding_custody_voids_the_fill_for_claims(rx, client, boxes, ids):
    """The pharmacy recorded a fill's boxes, was revoked holding it, and the regulator voided its custody:
    the registry shows the prescription Refillable (as after a receipt), so without the fill's void the
    readmitted pharmacy could claim a fill the patient never got."""
    lot, made = make_lot(boxes, ids["manufacturer"], first=5)
    issued = dispensed(client, ids, fills=2)
    boxes.dispense(ids["pharmacy"], issued.rx_id, [(made[0].code, made[0].secret)], [lot])
    rx_id = str(issued.rx_id)
    pharmacy = ids["pharmacy"].address
    assert rx("member", "revoke", pharmacy, "pharmacy", "--as", "regulator", json_out=True)[0] == 0
    code, out, err = rx("custody", "void", rx_id, "--as", "regulator", json_out=True)
    assert code == 0 and out["fillVoidedTx"], (out, err)
    assert boxes.fill(issued.rx_id, 1).claim is ClaimStatus.VOID
    assert rx("member", "add", pharmacy, "pharmacy", "--days", "30", "--as", "regulator", json_out=True)[0] == 0
    with pytest.raises(errors.FillIsVoid) as caught:
        boxes.file_claim(ids["pharmacy"], issued.rx_id, 1, ids["insurer"].address, ClaimOpening.new({"total": 1}, "X"))
    assert "voided by the regulator" in str(caught.value)
    code, out, err = rx("claim", "show", rx_id, "--fills-left", "1", json_out=True)
    assert code == 0 and out["claim"] == "void", (out, err)
