"""The ``rx`` command against an ephemeral chain: every subcommand's happy path, main refusals,
``--json`` output parsed, exit codes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from rxchain.cli import main as cli
from rxchain.chain.deployment import save_deployment
from rxchain.core.document import dump_document
from rxchain.dev.demo import demo_document


@pytest.fixture
def rx(deployment, tmp_path, monkeypatch, capsys):
    """Runs ``rx --network local ...`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    save_deployment(deployment)
    outbox = str(tmp_path / "cli-outbox.sqlite")

    def run(*args: str, json_out: bool = False):
        argv = ["--network", "local", "--outbox", outbox] + (["--json"] if json_out else []) + list(args)
        capsys.readouterr()
        try:
            cli.main(argv)
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return code, (json.loads(out) if json_out and code == 0 else out), err

    return run


def issue_one(rx, tmp_path, *extra: str) -> dict:
    code, out, err = rx("issue", "--drug", "Metformin 500 mg tablet", "--supply-days", "7", "--out", str(tmp_path / "qr"),
                        "--as", "doctor", *extra, json_out=True)  # fmt: skip
    assert code == 0, err
    return out


def test_issue_writes_the_qr_payload_and_png(rx, tmp_path):
    issued = issue_one(rx, tmp_path)

    assert issued["id"].startswith("0x") and len(issued["id"]) == 66
    assert open(issued["payloadFile"]).read().strip() == issued["payload"]
    assert open(issued["qrPng"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


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
    assert all(s["block_time"] > 0 and s["tx_hash"].startswith("0x") for s in steps)

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


def test_bad_id_is_a_usage_error(rx):
    code, _, _ = rx("show", "0x1234")

    assert code == cli.EXIT_USAGE


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


def test_verify_detects_a_tampered_document(rx, tmp_path, client, doctor):
    document = demo_document(doctor.address, client.latest_block_time())
    original = tmp_path / "rx.json"
    dump_document(document, original)
    code, issued, err = rx("issue", "--doc", str(original), "--out", str(tmp_path / "qr"), "--as", "doctor", json_out=True)
    assert code == 0, err

    code, check, _ = rx("verify", issued["id"], "--doc", str(original), json_out=True)
    assert code == 0 and check["matches"] is True

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
    bundle["events"][1]["block_time"] += 3600  # someone moves the redemption by an hour
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
    call = client.contract.functions.issue(b"\x01" * 32, ClaimKey.generate().address, "0x" + "00" * 20, client.latest_block_time() + 86400, 1)
    entry = client._sign(doctor, call, 200_000, "issue:died-before-sending", "issue")
    box.record([entry])

    code, status, _ = rx("outbox", "status", json_out=True)
    assert code == 0 and status["counts"] == {"pending": 1}
    assert [(e["txHash"], e["state"], e["nonce"]) for e in status["entries"]] == [(entry.tx_hash, "pending", entry.nonce)]

    code, resumed, err = rx("outbox", "resume", json_out=True)
    assert code == 0, err
    assert [(r["ok"], r["txHash"]) for r in resumed["results"]] == [(True, entry.tx_hash)]
    assert resumed["counts"] == {"mined": 1}
    assert w3.eth.get_transaction_receipt(entry.tx_hash)["status"] == 1

    code, again, _ = rx("outbox", "resume", json_out=True)
    assert code == 0 and again["results"] == []
