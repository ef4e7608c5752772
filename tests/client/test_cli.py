"""The ``rx`` command against an ephemeral chain: every subcommand's happy path, main refusals,
``--json`` output parsed, exit codes."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone


from rxchain.cli import main as cli
from rxchain.core.document import dump_document
from rxchain.dev.demo import demo_document
from rxchain.paths import project_root


def issue_one(rx, tmp_path, *extra: str) -> dict:
    code, out, err = rx(
        "issue",
        "--drug",
        "Metformin 500 mg tablet",
        "--supply-days",
        "7",
        "--out",
        str(tmp_path / "qr"),
        "--as",
        "doctor",
        *extra,
        json_out=True,
    )
    assert code == 0, err
    return out


def test_issue_writes_the_qr_payload_and_png(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    assert issued["id"].startswith("0x") and len(issued["id"]) == 66
    assert open(issued["payloadFile"]).read().strip() == issued["payload"]
    assert open(issued["qrPng"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_issue_writes_nothing_unless_asked_and_then_for_its_owner_alone(rx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    code, issued, err = rx("issue", "--drug", "Metformin 500 mg tablet", "--as", "doctor", json_out=True)
    assert code == 0, err
    assert issued["handover"] == "app" and issued["payload"].startswith("RX1.") and "payloadFile" not in issued
    assert {p for p in tmp_path.rglob("*") if p.suffix in (".rxqr", ".png")} - before == set()

    code, _, err = rx("issue", "--drug", "Metformin 500 mg tablet", "--out", str(tmp_path / "qr"), "--as", "doctor")
    assert code == 0, err
    written = list((tmp_path / "qr").iterdir())
    assert {p.suffix for p in written} == {".rxqr", ".png"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in written)
    assert "delete them once the patient has it" in " ".join(err.split())


def test_app_mode_through_the_command_line_the_key_never_leaves_the_patient(rx, tmp_path, ids):
    code, issued, err = rx(
        "issue", "--drug", "Metformin 500 mg tablet", "--fills", "2", "--as", "doctor", json_out=True
    )
    assert code == 0, err
    prescription = issued["payload"]  # what the patient's app took home at the desk

    code, request, err = rx("consent-request", "--as", "pharmacy", json_out=True)
    assert code == 0, err
    assert request["code"].startswith("RXP1.") and request["pharmacy"] == ids["pharmacy"].address
    code, auth, err = rx("patient", "consent", "--code", prescription, "--request", request["code"], json_out=True)
    assert code == 0, err
    assert auth["code"].startswith("RXA1.") and auth["fillsLeft"] == 2
    code, shown, _ = rx("show", "--payload", auth["code"], json_out=True)
    assert code == 0 and shown["status"] == "active"

    code, _, err = rx("redeem", "--code", auth["code"], "--as", "pharmacy2")  # shown to another pharmacy
    assert code == cli.EXIT_BAD_INPUT and "the patient must consent here" in " ".join(err.split())
    assert rx("redeem", "--code", auth["code"], "--as", "pharmacy", json_out=True)[0] == 0
    assert rx("dispatch", issued["id"], "--courier", "courier", "--as", "pharmacy", json_out=True)[0] == 0

    code, delivery, err = rx("delivery-request", issued["id"], "--as", "courier", json_out=True)
    assert code == 0, err
    code, receipt, err = rx("patient", "receive", "--code", prescription, "--request", delivery["code"], json_out=True)
    assert code == 0, err
    assert receipt["code"].startswith("RXR1.") and receipt["fillsLeft"] == 1
    code, _, err = rx(
        "deliver", issued["id"], "--receipt", receipt["code"], "--as", "courier2"
    )  # not the courier asked
    assert code == cli.EXIT_BAD_INPUT and "another hand-over" in " ".join(err.split())
    assert rx("deliver", issued["id"], "--receipt", receipt["code"], "--as", "courier", json_out=True)[0] == 0

    code, steps, _ = rx("trail", issued["id"], json_out=True)
    assert [s["step"] for s in steps] == ["issued", "redeemed", "dispatched", "delivered", "received"]
    code, _, err = rx("redeem", "--code", auth["code"], "--as", "pharmacy")  # fill 2 needs a new consent
    assert code == cli.EXIT_BAD_INPUT and "belongs to another fill" in " ".join(err.split())


def test_paper_mode_writes_one_slip_per_fill_and_no_key(rx, tmp_path):
    code, _, err = rx("issue", "--drug", "Metformin 500 mg tablet", "--handover", "paper", "--as", "doctor")
    assert code == cli.EXIT_USAGE and "--out" in err
    code, paper, err = rx(
        "issue",
        "--drug",
        "Metformin 500 mg tablet",
        "--fills",
        "2",
        "--handover",
        "paper",
        "--out",
        str(tmp_path / "slips"),
        "--as",
        "doctor",
        json_out=True,
    )
    assert code == 0, err
    assert "payload" not in paper and len(paper["fillSlips"]) == 2 and len(paper["receiptSlips"]) == 2
    files = list((tmp_path / "slips").iterdir())
    assert len(files) == 9 and all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    sheet = open(paper["sheet"]).read()
    assert sheet.count("<img") == 4 and "open it only when the drugs are in your hands" in sheet
    assert not any("RX1." in p.read_text(errors="ignore") for p in files if p.suffix == ".txt")

    first = next(f["code"] for f in paper["files"] if f["kind"] == "fill" and f["fill"] == 1)
    assert rx("redeem", "--code", "@" + first, "--as", "pharmacy2", json_out=True)[0] == 0
    assert rx("deliver", paper["id"], "--receipt", paper["receiptSlips"][0], "--as", "pharmacy2", json_out=True)[0] == 0
    code, _, err = rx("redeem", "--code", "@" + first, "--as", "pharmacy2")
    assert code == cli.EXIT_BAD_INPUT and "belongs to another fill" in " ".join(err.split())
    assert rx("redeem", "--code", paper["fillSlips"][1], "--as", "pharmacy", json_out=True)[0] == 0


def test_full_flow_through_the_command_line(rx, tmp_path):
    issued = issue_one(rx, tmp_path)
    payload = "@" + issued["payloadFile"]

    code, shown, _ = rx("show", "--payload", payload, json_out=True)
    assert code == 0 and shown["status"] == "active" and shown["fillsLeft"] == 1

    assert rx("redeem", "--payload", payload, "--as", "pharmacy", json_out=True)[0] == 0
    assert rx("dispatch", issued["id"], "--courier", "courier", "--as", "pharmacy", json_out=True)[0] == 0
    assert rx("deliver", issued["id"], "--as", "courier", json_out=True)[0] == 0
    assert rx("confirm", "--payload", payload, "--as", "courier", json_out=True)[0] == 0

    code, steps, _ = rx("trail", issued["id"], json_out=True)
    assert code == 0
    assert [s["step"] for s in steps] == ["issued", "redeemed", "dispatched", "delivered", "received"]
    assert all(s["blockTime"] > 0 and s["txHash"].startswith("0x") for s in steps)

    code, text, _ = rx("trail", issued["id"])
    assert code == 0 and "dispatched" in text


def test_second_redeem_exits_1_with_the_error_name(rx, tmp_path):
    issued = issue_one(rx, tmp_path)
    payload = "@" + issued["payloadFile"]
    rx("redeem", "--payload", payload, "--as", "pharmacy")

    code, _, err = rx("redeem", "--payload", payload, "--as", "pharmacy2")

    assert code == cli.EXIT_REFUSED
    assert "AlreadyRedeemed" in err
    assert "Traceback" not in err


def test_malformed_payload_exits_4_without_traceback(rx):
    code, _, err = rx("redeem", "--payload", "RX1.not-a-payload", "--as", "pharmacy")

    assert code == cli.EXIT_BAD_INPUT
    assert "Traceback" not in err and err.strip().startswith("error:")


def test_unknown_signer_exits_4(rx):
    code, _, err = rx("redeem", "--payload", "RX1.x", "--as", "nobody")

    assert code == cli.EXIT_BAD_INPUT


def test_a_malformed_id_is_bad_input_named_as_such(rx):
    code, _, err = rx("show", "0x1234")

    assert code == cli.EXIT_BAD_INPUT and "is not a prescription id (0x and 64 hex digits)" in err


def test_cancel_then_redeem_is_refused(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    assert rx("cancel", issued["id"], "--as", "doctor", json_out=True)[0] == 0
    code, _, err = rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")

    assert code == cli.EXIT_REFUSED and "PrescriptionIsCancelled" in err


def test_member_commands(rx, ids):
    stranger = ids["courier2"].address

    assert rx("member", "add", stranger, "courier", "--days", "30", "--as", "regulator", json_out=True)[0] == 0
    code, members, _ = rx("member", "list", json_out=True)
    record = next(m for m in members if m["account"] == stranger)
    assert record["roles"] == ["courier"] and record["inGoodStanding"]

    assert rx("member", "renew", stranger, "--days", "60", "--as", "regulator", json_out=True)[0] == 0
    assert rx("member", "revoke", stranger, "courier", "--as", "regulator", json_out=True)[0] == 0
    code, members, _ = rx("member", "list", json_out=True)
    assert next(m for m in members if m["account"] == stranger)["inGoodStanding"] is False

    code, _, err = rx("member", "add", stranger, "courier", "--as", "pharmacy")
    assert code == cli.EXIT_REFUSED and "AccessControlUnauthorizedAccount" in err


def test_regulator_reassigns_and_voids_what_a_revoked_member_holds_through_the_command_line(rx, tmp_path):
    """Issue 11, finding 6, from the regulator's desk: nothing while the holder is in good standing,
    a pharmacy's drugs only to a pharmacy, and the trail says what was done."""
    issued = issue_one(rx, tmp_path, "--fills", "2")
    assert rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy", json_out=True)[0] == 0
    code, _, err = rx("custody", "void", issued["id"], "--as", "regulator")
    assert code == cli.EXIT_REFUSED and "CustodianInGoodStanding" in err

    assert rx("member", "revoke", "pharmacy", "pharmacy", "--as", "regulator", json_out=True)[0] == 0
    code, _, err = rx("custody", "reassign", issued["id"], "--to", "courier", "--as", "regulator")
    assert code == cli.EXIT_REFUSED and "AccessControlUnauthorizedAccount" in err
    assert rx("custody", "reassign", issued["id"], "--to", "pharmacy2", "--as", "regulator", json_out=True)[0] == 0
    assert rx("dispatch", issued["id"], "--courier", "courier", "--as", "pharmacy2", json_out=True)[0] == 0
    assert rx("member", "revoke", "courier", "courier", "--as", "regulator", json_out=True)[0] == 0
    code, voided, err = rx("custody", "void", issued["id"], "--as", "regulator", json_out=True)

    assert code == 0, err
    assert (voided["status"], voided["fillsLeft"]) == ("refillable", 1)
    code, steps, _ = rx("trail", issued["id"], json_out=True)
    assert [s["step"] for s in steps] == ["issued", "redeemed", "custody reassigned", "dispatched", "custody voided"]


def test_a_doctor_the_regulator_revoked_comes_back_only_through_readmit(rx, ids):
    doctor = ids["doctor"].address
    assert rx("member", "revoke", doctor, "doctor", "--as", "regulator", json_out=True)[0] == 0
    code, _, err = rx("member", "add", doctor, "doctor", "--days", "30", "--as", "hospital")
    assert code == cli.EXIT_REFUSED and "BarredByRegulator" in err
    code, _, err = rx("member", "readmit", doctor, "--as", "hospital")
    assert code == cli.EXIT_REFUSED and "AccessControlUnauthorizedAccount" in err

    assert rx("member", "readmit", doctor, "--as", "regulator", json_out=True)[0] == 0

    assert rx("member", "add", doctor, "doctor", "--days", "30", "--as", "hospital", json_out=True)[0] == 0


def test_verify_detects_a_tampered_document(rx, tmp_path, client, doctor):
    document = demo_document(doctor.address, client.latest_block_time())
    original = tmp_path / "rx.json"
    dump_document(document, original)
    code, issued, err = rx(
        "issue", "--doc", str(original), "--out", str(tmp_path / "qr"), "--as", "doctor", json_out=True
    )
    assert code == 0, err

    code, check, _ = rx("verify", issued["id"], "--doc", str(original), json_out=True)
    assert code == 0 and check["matches"] is True
    assert set(check) == {"matches", "id", "documentHash", "onChainHash", "problems"}

    document["entry"][0]["resource"]["dispenseRequest"]["quantity"]["value"] = 150
    tampered = tmp_path / "tampered.json"
    dump_document(document, tampered)
    code, text, _ = rx("verify", issued["id"], "--doc", str(tampered))
    assert code == cli.EXIT_REFUSED and "MISMATCH" in text


def test_evidence_bundle_round_trip(rx, tmp_path):
    issued = issue_one(rx, tmp_path)
    rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")
    bundle_file = tmp_path / "evidence.json"

    code, exported, _ = rx("audit", "export", issued["id"], "--out", str(bundle_file), json_out=True)
    assert code == 0 and exported["events"] == 2
    code, checked, _ = rx("audit", "check", str(bundle_file), json_out=True)
    assert code == 0 and checked["ok"] is True

    bundle = json.loads(bundle_file.read_text())
    bundle["events"][1]["blockTime"] += 3600  # someone moves the redemption by an hour
    bundle_file.write_text(json.dumps(bundle))
    code, _, _ = rx("audit", "check", str(bundle_file))
    assert code == cli.EXIT_REFUSED


def test_audit_member_report_counts_activity(rx, tmp_path, ids):
    issued = issue_one(rx, tmp_path)
    rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")

    code, report, _ = rx("audit", "members", json_out=True)
    assert code == 0
    by_account = {r["account"]: r for r in report}
    assert by_account[ids["doctor"].address]["activity"]["issued"] >= 1
    assert by_account[ids["pharmacy"].address]["activity"]["redeemed"] >= 1
    assert by_account[ids["doctor"].address]["hospital"] == ids["hospital"].address


def test_redeem_from_a_photo_of_the_qr_code(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    code, shown, _ = rx("show", "--qr-image", issued["qrPng"], json_out=True)
    assert code == 0 and shown["id"] == issued["id"]
    code, redeemed, err = rx("redeem", "--qr-image", issued["qrPng"], "--as", "pharmacy", json_out=True)
    assert code == 0, err and redeemed["id"] == issued["id"]


def test_a_picture_without_a_qr_code_exits_4(rx, tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    not_a_picture = tmp_path / "note.png"
    not_a_picture.write_text("hello")

    code, _, err = rx("redeem", "--qr-image", str(blank), "--as", "pharmacy")
    assert code == cli.EXIT_BAD_INPUT and "no QR code" in err
    code, _, err = rx("redeem", "--qr-image", str(not_a_picture), "--as", "pharmacy")
    assert code == cli.EXIT_BAD_INPUT and "not a picture" in err


def test_member_report_over_a_time_range(rx, tmp_path, ids, client, chain):
    issue_one(rx, tmp_path)
    day = 86_400
    chain.mine(timestamp=client.latest_block_time() + 2 * day)
    later = issue_one(rx, tmp_path)
    rx("redeem", "--payload", "@" + later["payloadFile"], "--as", "pharmacy")
    cut = datetime.fromtimestamp(client.latest_block_time() - day, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")

    code, report, _ = rx("audit", "members", "--since", cut, json_out=True)
    doctor = next(r for r in report if r["account"] == ids["doctor"].address)
    assert code == 0 and doctor["activity"] == {"issued": 1}
    code, report, _ = rx("audit", "members", "--until", cut, json_out=True)
    doctor = next(r for r in report if r["account"] == ids["doctor"].address)
    assert doctor["activity"] == {"issued": 1}


def test_outbox_status_and_resume(rx, tmp_path, w3, deployment, doctor):
    """A transaction signed and recorded by a run that died before sending: `rx outbox status` lists
    it without a node; `rx outbox resume` sends exactly those bytes and reports it mined."""
    from rxchain.chain.client import RegistryClient
    from rxchain.chain.outbox import Outbox
    from rxchain.core.payload import ClaimKey

    code, _, err = rx("outbox", "status")
    assert code == 2 and "no outbox at" in err

    box = Outbox(tmp_path / "cli-outbox.sqlite")
    client = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=box)
    call = client.contract.functions.issue(
        b"\x01" * 32, ClaimKey.generate().address, "0x" + "00" * 20, client.latest_block_time() + 86400, 1
    )
    entry = client.sender.sign(doctor, call, 200_000, "issue:died-before-sending", "issue")
    box.record([entry])

    code, status, _ = rx("outbox", "status", json_out=True)
    assert code == 0 and status["counts"] == {"pending": 1}
    assert [(e["txHash"], e["state"], e["nonce"]) for e in status["entries"]] == [
        (entry.tx_hash, "pending", entry.nonce)
    ]

    code, resumed, err = rx("outbox", "resume", json_out=True)
    assert code == 0, err
    assert [(r["ok"], r["txHash"]) for r in resumed["results"]] == [(True, entry.tx_hash)]
    assert resumed["counts"] == {"mined": 1}
    assert w3.eth.get_transaction_receipt(entry.tx_hash)["status"] == 1

    code, again, _ = rx("outbox", "resume", json_out=True)
    assert code == 0 and again["results"] == []


# ----------------------------------------------------------------- what a new user gets wrong
#
# Each case once printed a Python traceback or a misleading line. Now: one line that names the
# problem and what to do, and the exit code of the error's category.


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    assert err.strip().startswith("error:")
    return " ".join(err.split())


def test_a_missing_payload_file_is_named(rx, tmp_path):
    code, _, err = rx("redeem", "--payload", f"@{tmp_path}/missing.rxqr", "--as", "pharmacy")

    assert code == cli.EXIT_BAD_INPUT
    assert "missing.rxqr: no such QR payload file" in _one_line_error(err)


def test_a_folder_given_as_the_payload_file_is_named(rx, tmp_path):
    code, _, err = rx("redeem", "--payload", f"@{tmp_path}", "--as", "pharmacy")

    assert code == cli.EXIT_BAD_INPUT and "is a folder: give the QR payload file" in _one_line_error(err)


def test_a_photo_given_as_the_payload_file_points_to_qr_image(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    code, _, err = rx("redeem", "--payload", "@" + issued["qrPng"], "--as", "pharmacy")

    assert code == cli.EXIT_BAD_INPUT
    assert (
        f"is not a text file: if it is a photo of the QR code, give it as --qr-image {issued['qrPng']}"
        in _one_line_error(err)
    )


def test_a_missing_receipt_payload_file_is_named(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    code, _, err = rx("deliver", issued["id"], "--receipt-payload", f"@{tmp_path}/missing.rxqr", "--as", "courier")

    assert code == cli.EXIT_BAD_INPUT and "no such QR payload file" in _one_line_error(err)


def test_a_receipt_for_another_prescription_is_refused_before_sending(rx, tmp_path, client):
    first = issue_one(rx, tmp_path)
    second = issue_one(rx, tmp_path, "--quantity", "2")
    for issued in (first, second):
        assert rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")[0] == 0
        assert rx("dispatch", issued["id"], "--courier", "courier", "--as", "pharmacy")[0] == 0

    code, _, err = rx("deliver", first["id"], "--receipt-payload", "@" + second["payloadFile"], "--as", "courier")

    assert code == cli.EXIT_BAD_INPUT
    assert (
        f"the receipt payload is for prescription {second['id']}, not {first['id']}: nothing was sent"
        in _one_line_error(err)
    )
    assert [rx("show", i["id"], json_out=True)[1]["status"] for i in (first, second)] == ["dispatched", "dispatched"]


def test_an_evidence_file_in_a_missing_folder_is_named(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    code, _, err = rx("audit", "export", issued["id"], "--out", str(tmp_path / "no" / "such" / "e.json"))

    assert code == cli.EXIT_BAD_INPUT and "the folder" in err and "does not exist" in _one_line_error(err)


def test_a_folder_given_as_the_outbox_is_named(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    code, _, err = rx("--outbox", str(tmp_path), "redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")

    assert code == cli.EXIT_BAD_INPUT
    assert "is a folder: the outbox is one SQLite file" in _one_line_error(err)
    assert rx("show", issued["id"], json_out=True)[1]["status"] == "active"


def test_a_short_address_is_named_as_a_bad_address(rx, tmp_path):
    issued = issue_one(rx, tmp_path)
    assert rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")[0] == 0

    code, _, err = rx("dispatch", issued["id"], "--courier", "0x12345", "--as", "pharmacy")

    assert code == cli.EXIT_BAD_INPUT and "'0x12345' is not an address: 0x and 40 hex digits" in _one_line_error(err)


def test_a_missing_keystore_file_is_named(rx, tmp_path):
    code, _, err = rx("cancel", "0x" + "11" * 32, "--as", str(tmp_path / "missing-keystore.json"))

    assert code == cli.EXIT_BAD_INPUT and "no keystore file" in _one_line_error(err)


def test_cancelling_a_redeemed_prescription_says_why(rx, tmp_path):
    issued = issue_one(rx, tmp_path)
    assert rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")[0] == 0

    code, _, err = rx("cancel", issued["id"], "--as", "doctor")

    assert code == cli.EXIT_REFUSED and "can be neither filled again nor cancelled" in _one_line_error(err)


def test_an_expired_prescription_names_its_expiry_as_a_date_too(rx, tmp_path, chain):
    issued = issue_one(rx, tmp_path)
    chain.mine(timestamp=issued["expiresAt"] + 1)

    code, _, err = rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")

    when = datetime.fromtimestamp(issued["expiresAt"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert code == cli.EXIT_REFUSED and f"expired at {issued['expiresAt']} ({when} UTC)" in _one_line_error(err)


def test_a_receipt_before_delivery_names_the_next_step(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    code, _, err = rx("confirm", "--payload", "@" + issued["payloadFile"], "--as", "courier")

    assert code == cli.EXIT_REFUSED
    assert (
        "is ACTIVE: this step does not apply now (it has not been redeemed yet: a pharmacy redeems it first)"
        in _one_line_error(err)
    )


def test_an_id_typed_in_capitals_without_0x_is_printed_in_the_one_form(rx, tmp_path, monkeypatch):
    issued = issue_one(rx, tmp_path)
    typed = issued["id"][2:].upper()
    assert rx("redeem", "--payload", "@" + issued["payloadFile"], "--as", "pharmacy")[0] == 0

    for args in (
        ("dispatch", typed, "--courier", "courier", "--as", "pharmacy"),
        ("delivery-request", typed, "--as", "courier"),
        ("show", typed),
    ):
        code, out, err = rx(*args, json_out=True)
        assert code == 0 and out["id"] == issued["id"], (args, err)
    monkeypatch.chdir(tmp_path)
    code, out, _ = rx("audit", "export", typed, json_out=True)
    assert code == 0 and out["file"] == f"{issued['id']}.evidence.json" and (tmp_path / out["file"]).is_file()


def test_an_unknown_id_exits_1_for_show_and_trail_alike(rx):
    unknown = "0x" + "42" * 32

    assert rx("show", unknown)[0] == rx("trail", unknown)[0] == cli.EXIT_REFUSED


def test_a_document_of_another_doctor_is_bad_input_and_nothing_is_sent(rx, tmp_path, client, ids):
    document = demo_document(ids["doctor2"].address, client.latest_block_time())
    path = tmp_path / "other.json"
    dump_document(document, path)
    nonce = client.w3.eth.get_transaction_count(ids["doctor"].address)

    code, _, err = rx("issue", "--doc", str(path), "--as", "doctor")

    assert code == cli.EXIT_BAD_INPUT and "Traceback" not in err
    assert client.w3.eth.get_transaction_count(ids["doctor"].address) == nonce


def test_a_document_naming_the_patient_says_what_to_do_on_the_command_line_and_sends_nothing(rx, tmp_path, client, ids):
    document = demo_document(ids["doctor"].address, client.latest_block_time())
    for entry in document["entry"]:
        entry["resource"]["subject"]["identifier"]["value"] = "zhang.san@example.com"
    dump_document(document, tmp_path / "named.json")
    nonce = client.w3.eth.get_transaction_count(ids["doctor"].address)

    code, _, err = rx("issue", "--doc", str(tmp_path / "named.json"), "--as", "doctor")

    line = _one_line_error(err)
    assert code == cli.EXIT_BAD_INPUT and "the value looks like a name or an e-mail address" in line
    assert "rx issue --drug makes one" in line and "zhang" not in line
    assert client.w3.eth.get_transaction_count(ids["doctor"].address) == nonce


def test_trail_and_evidence_json_are_camel_case_like_show(rx, tmp_path):
    issued = issue_one(rx, tmp_path)
    code, trail, _ = rx("trail", issued["id"], json_out=True)
    assert code == 0 and set(trail[0]) == {
        "step",
        "actor",
        "blockNumber",
        "blockHash",
        "blockTime",
        "txHash",
        "logIndex",
        "details",
    }

    code, _, _ = rx("audit", "export", issued["id"], "--out", str(tmp_path / "e.json"))
    bundle = json.loads((tmp_path / "e.json").read_text())
    assert code == 0 and bundle["format"] == "rxchain-evidence/2" and bundle["events"][0] == trail[0]


def test_an_evidence_bundle_of_format_1_still_verifies(rx, tmp_path):
    issued = issue_one(rx, tmp_path)
    assert rx("audit", "export", issued["id"], "--out", str(tmp_path / "e.json"))[0] == 0
    bundle = json.loads((tmp_path / "e.json").read_text())
    snake = {
        "blockNumber": "block_number",
        "blockHash": "block_hash",
        "blockTime": "block_time",
        "txHash": "tx_hash",
        "logIndex": "log_index",
    }
    bundle["format"] = "rxchain-evidence/1"
    bundle["events"] = [{snake.get(k, k): v for k, v in e.items()} for e in bundle["events"]]
    (tmp_path / "v1.json").write_text(json.dumps(bundle))

    code, checked, _ = rx("audit", "check", str(tmp_path / "v1.json"), json_out=True)

    assert code == 0 and checked == {"ok": True, "problems": []}


def test_deploy_deploys_from_this_process_and_records_what_it_deployed(rx, tmp_path, w3, rpc_url, deployment):
    code, out, err = rx("--rpc", rpc_url, "deploy", "--force", json_out=True)

    assert code == 0, err
    record = json.loads((tmp_path / "deployments" / "local.json").read_text())
    assert record["registry"] == out["registry"] != deployment.registry and record["boxes"] == out["boxes"]
    assert w3.eth.get_code(out["registry"]) and w3.eth.get_code(out["boxes"])
    assert rx("member", "list", json_out=True)[1] == []  # the new registry answers, and has no members yet


def test_deploy_to_a_node_that_does_not_answer_is_unavailable_in_one_line(rx):
    code, _, err = rx("--rpc", "http://127.0.0.1:9", "deploy", "--force")

    assert code == cli.EXIT_UNAVAILABLE and "no answer from http://127.0.0.1:9" in _one_line_error(err)


def test_deploy_of_contracts_that_do_not_compile_is_a_build_failure_and_sends_nothing(rx, tmp_path, monkeypatch):
    """A project whose contract has a syntax error (the real compile script, compiler and packages)."""
    root = project_root()
    broken = tmp_path / "project"
    (broken / "contracts").mkdir(parents=True)
    (broken / "tools").mkdir()
    for name in ("ape-config.yaml", "package-lock.json", "tools/compile.sh"):
        shutil.copy(root / name, broken / name)
    (broken / "node_modules").symlink_to(root / "node_modules")
    (broken / "contracts" / "Broken.sol").write_text("pragma solidity 0.8.30;\ncontract Broken { function f( }\n")
    monkeypatch.setenv("RXCHAIN_ROOT", str(broken))

    code, _, err = rx("--rpc", "http://127.0.0.1:9", "deploy")  # no node: a send would fail otherwise

    assert code == cli.EXIT_UNAVAILABLE and "ParserError" in err
    assert "compiling the contracts failed (nothing was deployed)" in _one_line_error(err)


def test_totals_of_a_database_without_an_index_is_bad_input_in_one_line(tmp_path, capsys):
    try:
        cli.main(["index", "totals", "--db", str(tmp_path / "empty.sqlite")])
        code = 0
    except SystemExit as exit_:
        code = exit_.code

    assert code == cli.EXIT_BAD_INPUT
    assert "empty.sqlite holds no index: build one first (rx index run)" in _one_line_error(capsys.readouterr().err)


def test_demo_runs_the_one_lifecycle_and_shows_the_refused_second_fill(rx):
    code, out, err = rx("demo")

    assert code == 0, err
    for step in (
        "1. issue",
        "2. redeem",
        "3. dispatch",
        "4. deliver",
        "5. confirm",
        "AlreadyRedeemed",
        "the patient's QR code:",
    ):
        assert step in out
    assert "received" in out  # the trail table's last step
