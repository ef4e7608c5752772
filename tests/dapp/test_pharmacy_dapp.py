"""The pharmacy dApp in a real browser (headless Debian chromium) against ape's ephemeral anvil.

Every test starts from a freshly onboarded registry (ape reverts the chain after each test), opens
a fresh page and fails if the page logged any console error or uncaught exception (the ``dapp``
fixture checks at teardown; the tests also check explicitly). Screenshots of the main states go to
artifacts/dapp/.
"""

from __future__ import annotations

import base64
import json
import zlib
from datetime import datetime, timezone

import pytest
import rfc8785
from ape import chain
from eth_utils import keccak

from rxchain.audit import trail
from rxchain.dev.demo import demo_document
from rxchain.core.payload import ClaimKey, PrescriptionPayload, encode_payload
from rxchain.core.qr import payload_png
from rxchain.core.status import Status

from .conftest import save_docs_image

expect = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the Python package playwright (fix: make setup)"
).expect


def encode_raw(obj: dict) -> str:
    """A prescription code around any object, framed exactly as rxchain.core.payload frames one."""
    body = zlib.compress(rfc8785.dumps(obj), 9)
    return "RX1." + base64.urlsafe_b64encode(body + keccak(body)[:4]).rstrip(b"=").decode()


def payload_object(text: str) -> dict:
    """The JSON object inside a prescription code."""
    raw = base64.urlsafe_b64decode(text[4:] + "=" * (-len(text[4:]) % 4))
    return json.loads(zlib.decompress(raw[:-4]))


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_gas_legacy(w3, tx_hash: str, sender: str) -> None:
    """The transaction was a type-0 transaction at gas price 0 from ``sender``."""
    tx = w3.eth.get_transaction(tx_hash)
    assert tx["type"] == 0
    assert tx["gasPrice"] == 0
    assert tx["from"] == sender


# ------------------------------------------------------------------------------------ happy path


def test_happy_path_paste_redeem_dispatch_and_trail(dapp, client, issue, ids, w3):
    issued = issue()
    page = dapp.open().page
    dapp.paste(issued.payload_text)

    expect(page.locator("#rx-status")).to_contain_text("Active")
    expect(page.locator("#rx-id")).to_have_text("0x" + issued.rx_id.hex())
    expect(page.locator("#rx-doctor")).to_contain_text(ids["doctor"].address)
    expect(page.locator("#rx-pharmacy")).to_have_text("any pharmacy")
    expect(page.locator("#rx-fills")).to_have_text("1")
    expect(page.locator("#rx-document")).to_have_text("matches the chain")
    expect(page.locator("#rx-expires time")).to_have_attribute("datetime", iso(issued.expires_at))
    expect(page.locator("#rx-meds tbody")).to_contain_text("Amoxicillin 500 mg oral capsule")
    expect(page.locator("#rx-checks li.bad")).to_have_count(0)
    expect(page.locator("#redeem")).to_be_enabled()
    expect(page.locator("#rx-verdict")).to_have_text("Ready to redeem.")
    dapp.screenshot("01-ready-to-redeem")

    page.click("#redeem")
    outcome = page.locator("#redeem-outcome")
    expect(outcome).to_contain_text("Redeemed in block")
    state = client.prescription(issued.rx_id)
    assert state.status is Status.DISPENSED
    assert state.custodian == ids["pharmacy"].address
    redeem_tx = outcome.locator(".mono").inner_text().removeprefix("transaction ").strip()
    free_gas_legacy(w3, redeem_tx, ids["pharmacy"].address)
    expect(page.locator("#rx-status")).to_contain_text("Dispensed")
    expect(page.locator("#redeem")).to_be_disabled()
    expect(page.locator("#dispatch")).to_be_enabled()
    expect(page.locator("#handover-heading")).to_be_focused()
    dapp.screenshot("02-redeemed")
    save_docs_image(dapp)

    page.select_option("#dev-courier", ids["courier"].address)
    expect(page.locator("#courier")).to_have_value(ids["courier"].address)
    page.click("#dispatch")
    expect(page.locator("#handover-outcome")).to_contain_text("Dispatched to the courier in block")
    state = client.prescription(issued.rx_id)
    assert state.status is Status.DISPATCHED
    assert state.custodian == ids["courier"].address
    expect(page.locator("#handover-reason")).to_contain_text("the courier records the delivery")

    chain_steps = trail(client, issued.rx_id)
    assert [s.step for s in chain_steps] == ["issued", "redeemed", "dispatched"]
    rows = page.locator("#trail tbody tr")
    expect(rows).to_have_count(3)
    for row, step in zip(rows.all(), chain_steps):
        assert row.get_attribute("data-step") == step.step
        cells = row.locator("td")
        assert step.actor in cells.nth(1).inner_text()
        assert cells.nth(2).inner_text() == str(step.block_number)
        assert cells.nth(3).locator("time").get_attribute("datetime") == iso(step.block_time)
        assert cells.nth(4).locator("span").get_attribute("title") == step.tx_hash
    dapp.screenshot("03-dispatched")
    dapp.assert_clean()


def test_over_the_counter_handover(dapp, client, issue, ids):
    issued = issue(designated_pharmacy=ids["pharmacy"].address)
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    expect(page.locator("#rx-pharmacy")).to_contain_text("this pharmacy")
    expect(dapp.check("pharmacy")).to_have_text("It is designated for this pharmacy.")
    page.click("#redeem")
    expect(page.locator("#redeem-outcome")).to_contain_text("Redeemed in block")

    page.click("#deliver")
    expect(page.locator("#handover-outcome")).to_contain_text("Handed over at the counter in block")
    assert client.prescription(issued.rx_id).status is Status.DELIVERED
    expect(page.locator("#trail tbody tr[data-step='handed over in store']")).to_have_count(1)
    expect(page.locator("#dispatch")).to_be_disabled()
    expect(page.locator("#deliver")).to_be_disabled()
    dapp.assert_clean()


def test_keyboard_only(dapp, issue, client):
    """Scanner-style: the code arrives as typed text ending in Enter; Tab reaches Redeem; Enter redeems."""
    issued = issue()
    page = dapp.open().page
    page.focus("#payload")
    page.keyboard.insert_text(issued.payload_text)
    page.keyboard.press("Enter")
    expect(page.locator("#rx-heading")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#redeem")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
    assert client.prescription(issued.rx_id).status is Status.DISPENSED
    # Every control has a label a screen reader announces.
    for control in ("#payload", "#qr-file", "#dev-account", "#courier", "#dev-courier"):
        assert page.locator(control).evaluate("el => el.labels.length") == 1, control
    expect(page.locator("#status")).to_have_attribute("aria-live", "polite")
    dapp.assert_clean()


# --------------------------------------------------------------------------- refused before sending


def test_second_redeem_of_the_same_code_shows_already_redeemed(dapp, issue, client, w3):
    issued = issue()
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    page.click("#redeem")
    expect(page.locator("#redeem-outcome")).to_contain_text("Redeemed in block")

    page.click("#clear-code")
    expect(page.locator("#rx-section")).to_be_hidden()
    dapp.paste(issued.payload_text)
    block = w3.eth.block_number
    expect(page.locator("#rx-status")).to_contain_text("Dispensed")
    expect(dapp.check("redeemable")).to_have_class("done")
    expect(page.locator("#redeem")).to_be_disabled()
    expect(page.locator("#redeem-reason")).to_have_text("Already redeemed by this pharmacy; it cannot be filled again.")
    expect(page.locator("#rx-verdict")).to_contain_text("Redeemed by this pharmacy")
    dapp.screenshot("04-already-redeemed-here")

    # The same code at another pharmacy: refused before sending, in plain words.
    page.select_option("#dev-account", "pharmacy2")
    expect(page.locator("#redeem-reason")).to_have_text(
        "Cannot redeem: This prescription has already been redeemed; it cannot be filled again."
    )
    expect(dapp.check("redeemable")).to_have_class("bad")
    expect(page.locator("#redeem")).to_be_disabled()
    expect(page.locator("#rx-verdict")).to_contain_text("already redeemed by another pharmacy")
    dapp.screenshot("04-already-redeemed-elsewhere")
    assert w3.eth.block_number == block
    dapp.assert_clean()


def test_redeemed_elsewhere_meanwhile_shows_the_decoded_custom_error(dapp, issue, client, ids):
    """The code was checked, then another pharmacy redeemed it: the refusal is the registry's own error."""
    issued = issue()
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    expect(page.locator("#redeem")).to_be_enabled()

    from rxchain.workflow import redeem_payload

    redeem_payload(client, ids["pharmacy2"], issued.payload_text)
    page.click("#redeem")
    outcome = page.locator("#redeem-outcome")
    expect(outcome).to_contain_text("Redemption refused — AlreadyRedeemed: This prescription has already been redeemed")
    expect(outcome).to_have_attribute("data-error", "AlreadyRedeemed")
    expect(outcome).to_contain_text(f"AlreadyRedeemed(id=0x{issued.rx_id.hex()})")
    expect(page.locator("#rx-verdict")).to_have_text(
        f"Do not dispense: this prescription was already redeemed by another pharmacy ({ids['pharmacy2'].address})."
    )
    assert client.prescription(issued.rx_id).custodian == ids["pharmacy2"].address
    dapp.screenshot("05-refused-by-registry")
    dapp.assert_clean()


def test_code_for_another_designated_pharmacy_is_refused_before_sending(dapp, issue, ids, w3):
    other = ids["pharmacy2"].address
    issued = issue(designated_pharmacy=other)
    page = dapp.open().page
    block = w3.eth.block_number
    dapp.paste(issued.payload_text)
    expect(page.locator("#redeem")).to_be_disabled()
    expect(page.locator("#redeem-reason")).to_have_text(
        f"Cannot redeem: This prescription is designated for another pharmacy ({other}); this pharmacy may not fill it."
    )
    expect(page.locator("#rx-pharmacy")).to_contain_text(other)
    dapp.screenshot("06-wrong-pharmacy")
    assert w3.eth.block_number == block  # nothing was sent
    # Long addresses wrap: nothing scrolls sideways, on a desktop or on a counter tablet.
    for width in (1280, 768):
        page.set_viewport_size({"width": width, "height": 1000})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width
    page.set_viewport_size({"width": 1280, "height": 1000})

    # The designated pharmacy's own account may redeem it.
    page.select_option("#dev-account", "pharmacy2")
    expect(page.locator("#redeem")).to_be_enabled()
    expect(dapp.check("pharmacy")).to_have_text("It is designated for this pharmacy.")
    dapp.assert_clean()


def test_expired_prescription_shows_expired(dapp, issue, client, w3):
    issued = issue()
    chain.mine(timestamp=issued.expires_at + 60)
    assert client.latest_block_time() > issued.expires_at
    page = dapp.open().page
    block = w3.eth.block_number
    dapp.paste(issued.payload_text)
    expect(page.locator("#rx-status")).to_contain_text("expired")
    expect(page.locator("#redeem")).to_be_disabled()
    expect(page.locator("#redeem-reason")).to_contain_text("Cannot redeem: This prescription expired on")
    expect(page.locator("#redeem-reason")).to_contain_text("the patient needs a new one")
    expect(dapp.check("expiry")).to_have_class("bad")
    dapp.screenshot("07-expired")
    assert w3.eth.block_number == block
    dapp.assert_clean()


@pytest.mark.parametrize("case", ["cancelled", "paused", "not-a-pharmacy", "credential-expired", "unregistered"])
def test_other_refusals_before_sending(case, dapp, issue, client, ids, w3):
    issued = issue()
    text = issued.payload_text
    account = "pharmacy"
    if case == "cancelled":
        client.cancel(ids["doctor"], issued.rx_id)
        expected = "was cancelled by the doctor or the regulator; do not dispense"
    elif case == "paused":
        client.pause(ids["regulator"])
        expected = "The registry is paused by the regulator"
    elif case == "not-a-pharmacy":
        account = "courier"
        expected = f"This account ({ids['courier'].address}) is not a pharmacy of the consortium"
    elif case == "credential-expired":
        now = client.latest_block_time()
        client.renew(ids["regulator"], ids["pharmacy"].address, now + 30)
        chain.mine(timestamp=now + 120)
        expected = "This account's pharmacy credential expired on"
    else:
        document = demo_document(ids["doctor"].address, client.latest_block_time())
        payload = PrescriptionPayload.create(
            chain_id=client.chain_id, registry=client.address, claim_key=ClaimKey.generate(), document=document
        )
        text = encode_payload(payload)
        expected = "This prescription is not registered on this registry"
    page = dapp.open(account).page
    block = w3.eth.block_number
    dapp.paste(text)
    expect(page.locator("#redeem")).to_be_disabled()
    expect(page.locator("#redeem-reason")).to_contain_text(expected)
    expect(page.locator("#rx-verdict")).to_contain_text("Do not dispense")
    dapp.screenshot(f"08-refused-{case}")
    assert w3.eth.block_number == block
    dapp.assert_clean()


# ------------------------------------------------------------------------------------ bad codes


def test_malformed_and_foreign_codes_show_clear_messages(dapp, issue, client, ids, w3):
    issued = issue()
    good = issued.payload_text
    tampered = payload_object(good)
    tampered["doc"]["entry"][0]["resource"]["dispenseRequest"]["quantity"]["value"] = 150
    flipped = good[:60] + ("A" if good[60] != "A" else "B") + good[61:]
    other_chain = PrescriptionPayload.create(
        chain_id=client.chain_id + 1,
        registry=client.address,
        claim_key=ClaimKey.generate(),
        document=issued.payload.document,
    )
    other_registry = PrescriptionPayload.create(
        chain_id=client.chain_id,
        registry=ids["auditor"].address,
        claim_key=ClaimKey.generate(),
        document=issued.payload.document,
    )
    cases = [
        ("   ", "Paste the prescription code"),
        ("https://example.org/some-other-qr", "This is not a prescription code"),
        ("RX2.AAAAAAAA", "version 2"),
        ("RX1.abc$def", "characters that cannot be in a prescription code"),
        (good[:-7], "incomplete"),
        (good[:200], "damaged"),
        (flipped, "damaged"),
        (encode_raw({**payload_object(good), "v": 7}), "version this page does not read"),
        (encode_raw({"v": 1, "chainId": client.chain_id}), "names no valid registry"),
        (encode_raw(tampered), "was altered"),
        (encode_payload(other_chain), f"belongs to another chain (chain {client.chain_id + 1})"),
        (encode_payload(other_registry), f"registered in another registry ({ids['auditor'].address})"),
    ]
    page = dapp.open().page
    block = w3.eth.block_number
    for text, expected in cases:
        dapp.paste(text)
        error = page.locator("#code-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text(expected)
        expect(page.locator("#rx-section")).to_be_hidden()
        expect(page.locator("#payload")).to_have_attribute("aria-invalid", "true")
        if expected == "was altered":
            dapp.screenshot("09-altered-code")
    dapp.screenshot("10-malformed-code")

    # A good code afterwards clears the message.
    dapp.paste(good)
    expect(page.locator("#code-error")).to_be_hidden()
    expect(page.locator("#rx-status")).to_contain_text("Active")
    assert w3.eth.block_number == block
    dapp.assert_clean()


# ------------------------------------------------------------------------------------ QR pictures


def test_upload_of_a_qr_picture_decodes(dapp, issue, tmp_path):
    issued = issue()
    png = payload_png(issued.payload_text, tmp_path / "prescription.png")
    page = dapp.open().page
    page.set_input_files("#qr-file", str(png))
    expect(page.locator("#rx-status")).to_contain_text("Active")
    expect(page.locator("#payload")).to_have_value(issued.payload_text)
    expect(page.locator("#rx-id")).to_have_text("0x" + issued.rx_id.hex())
    dapp.screenshot("11-qr-upload")

    # A file that is no picture, and the QR code of something else than a prescription.
    page.set_input_files("#qr-file", files=[{"name": "not-a-picture.png", "mimeType": "image/png", "buffer": b"hello"}])
    expect(page.locator("#code-error")).to_contain_text("not a picture")
    other = payload_png("https://example.org/menu", tmp_path / "other.png")
    page.set_input_files("#qr-file", str(other))
    expect(page.locator("#code-error")).to_contain_text("This is not a prescription code")
    dapp.assert_clean()


def test_upload_of_a_photo_without_a_qr_code(dapp, tmp_path):
    import struct

    # A plain grey 64x64 PNG written by hand (no QR code in it).
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x80" * 64 for _ in range(64))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    page = dapp.open().page
    page.set_input_files("#qr-file", files=[{"name": "grey.png", "mimeType": "image/png", "buffer": png}])
    expect(page.locator("#code-error")).to_contain_text("No QR code was found in this picture")
    dapp.assert_clean()


# ------------------------------------------------------------------------------------ EIP-1193 wallet


WALLET_SHIM = """
window.ethereum = {
  isRxchainTestWallet: true,
  async request({ method, params }) {
    const answer = await window.rxchainTestWallet(method, params || []);
    if (answer.error) {
      const error = new Error(answer.error.message);
      error.code = answer.error.code;
      error.data = answer.error.data;
      throw error;
    }
    return answer.result;
  },
  on() {},
  removeListener() {},
};
"""


def test_browser_wallet_redeems_with_a_free_gas_legacy_transaction(dapp, issue, client, ids, w3):
    """An EIP-1193 wallet (a stand-in that forwards to the node, whose dev accounts are unlocked)."""
    pharmacy = ids["pharmacy"].address
    calls: list[str] = []

    def wallet(method: str, params: list) -> dict:
        calls.append(method)
        if method in ("eth_requestAccounts", "eth_accounts"):
            return {"result": [pharmacy]}
        return dict(w3.provider.make_request(method, params))

    issued = issue()
    page = dapp.page
    page.expose_function("rxchainTestWallet", wallet)
    page.add_init_script(WALLET_SHIM)
    page.goto(dapp.url)
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#wallet-choice")).to_be_visible()
    page.select_option("#dev-account", "courier")  # then replaced by the wallet's account
    page.click("#connect-wallet")
    expect(page.locator("#account-info")).to_contain_text(pharmacy)
    expect(page.locator("#account-info")).to_contain_text("pharmacy in good standing")

    dapp.paste(issued.payload_text)
    page.click("#redeem")
    outcome = page.locator("#redeem-outcome")
    expect(outcome).to_contain_text("Redeemed in block")
    assert "eth_sendTransaction" in calls
    tx_hash = outcome.locator(".mono").inner_text().removeprefix("transaction ").strip()
    free_gas_legacy(w3, tx_hash, pharmacy)
    assert client.prescription(issued.rx_id).status is Status.DISPENSED
    dapp.assert_clean()


def test_page_loads_without_console_errors(dapp):
    page = dapp.open().page
    expect(page.locator("#network")).to_contain_text("chain")
    expect(page.locator("#fatal")).to_be_hidden()
    page.reload()
    page.wait_for_selector("body[data-ready]")
    dapp.assert_clean()


# ------------------------------------------------------------------------------------ set-up faults


def test_node_down_or_wrong_chain_says_so(dapp, deployment, rpc_url):
    from rxchain.web.dapp import make_server

    page = dapp.page
    with make_server("127.0.0.1", 0, deployment=deployment, rpc_url="http://127.0.0.1:9") as down:
        page.goto(down.url)
        expect(page.locator("#fatal")).to_contain_text("does not answer")
        expect(page.locator("#fatal")).to_contain_text("rx devnet up")
    other_chain = deployment.model_copy(update={"chain_id": 31338})
    with make_server("127.0.0.1", 0, deployment=other_chain, rpc_url=rpc_url) as wrong:
        page.goto(wrong.url)
        expect(page.locator("#fatal")).to_contain_text(
            f"The node serves chain {deployment.chain_id}, but the registry is recorded on chain 31338"
        )
    dapp.assert_clean()


def test_no_development_keys_on_a_consortium_network(dapp, deployment, rpc_url):
    from rxchain.web.dapp import make_server

    consortium = deployment.model_copy(update={"network": "besu"})
    with make_server("127.0.0.1", 0, deployment=consortium, rpc_url=rpc_url) as server:
        page = dapp.page
        page.goto(server.url)
        page.wait_for_selector("body[data-ready]")
        expect(page.locator("#dev-choice")).to_be_hidden()
        expect(page.locator("#wallet-choice")).to_be_hidden()
        expect(page.locator("#account-info")).to_contain_text("No wallet found in this browser")
    dapp.assert_clean()


# ------------------------------------------------------------------------------------ batched prescriptions

REDEEM_BATCHED = keccak(text="redeemBatched(address,bytes32,address,address,uint256,bytes,bytes32,bytes32[])")[:4]


def test_batched_prescription_redeemed_dispatched_and_its_trail(dapp, client, issue_batched, ids, w3):
    """A hospital's batch of five: the fourth (a proof through the carried-up odd node) is redeemed with
    redeemBatched, found from the chain's events alone; its trail starts 'issued in batch'."""
    batch = issue_batched(5)
    item = batch.prescriptions[3]
    root = "0x" + batch.root.hex()
    hospital = ids["hospital"].address
    assert client.prescription(item.rx_id).status is Status.NONE  # nothing per prescription on chain yet
    page = dapp.open().page
    dapp.paste(item.payload_text)

    expect(page.locator("#rx-status")).to_contain_text("Active")
    expect(page.locator("#rx-status")).to_contain_text("issued in a batch, not yet redeemed")
    expect(page.locator("#rx-batch")).to_have_attribute("data-root", root)
    expect(page.locator("#rx-batch")).to_contain_text(f"issued in batch {root[:8]}…{root[-6:]} by hospital {hospital}")
    expect(page.locator("#rx-hospital")).to_contain_text(hospital)
    expect(page.locator("#rx-doctor")).to_contain_text(ids["doctor"].address)
    expect(page.locator("#rx-document")).to_have_text("matches the chain")
    expect(dapp.check("document")).to_have_text(
        "The patient's document matches a prescription the hospital committed in its batch."
    )
    expect(dapp.check("doctor")).to_have_text(
        "The prescribing doctor is a doctor of the hospital that issued the batch."
    )
    expect(page.locator("#rx-fills")).to_have_text("1")
    expect(page.locator("#rx-expires time")).to_have_attribute("datetime", iso(item.expires_at))
    expect(page.locator("#rx-custodian")).to_have_text("—")
    expect(page.locator("#rx-checks li.bad")).to_have_count(0)
    expect(page.locator("#rx-verdict")).to_have_text("Ready to redeem.")
    expect(page.locator("#trail tbody tr")).to_have_count(1)
    dapp.screenshot("12-batched-ready")

    page.click("#redeem")
    outcome = page.locator("#redeem-outcome")
    expect(outcome).to_contain_text("Redeemed in block")
    tx_hash = outcome.locator(".mono").inner_text().removeprefix("transaction ").strip()
    free_gas_legacy(w3, tx_hash, ids["pharmacy"].address)
    assert bytes(w3.eth.get_transaction(tx_hash)["input"])[:4] == REDEEM_BATCHED
    state = client.prescription(item.rx_id)
    assert state.status is Status.DISPENSED and state.custodian == ids["pharmacy"].address
    expect(page.locator("#rx-status")).to_contain_text("Dispensed")
    expect(page.locator("#rx-document")).to_have_text("matches the chain")  # now opened on chain
    expect(page.locator("#rx-batch")).to_contain_text(hospital)

    page.select_option("#dev-courier", ids["courier"].address)
    page.click("#dispatch")
    expect(page.locator("#handover-outcome")).to_contain_text("Dispatched to the courier in block")
    assert client.prescription(item.rx_id).status is Status.DISPATCHED

    chain_steps = trail(client, item.rx_id)
    assert [s.step for s in chain_steps] == ["issued in batch", "opened from batch", "redeemed", "dispatched"]
    assert chain_steps[0].actor == hospital
    assert chain_steps[1].actor == ids["doctor"].address
    rows = page.locator("#trail tbody tr")
    expect(rows).to_have_count(4)
    for row, step in zip(rows.all(), chain_steps):
        assert row.get_attribute("data-step") == step.step
        cells = row.locator("td")
        assert step.actor in cells.nth(1).inner_text()
        assert cells.nth(2).inner_text() == str(step.block_number)
        assert cells.nth(3).locator("time").get_attribute("datetime") == iso(step.block_time)
        assert cells.nth(4).locator("span").get_attribute("title") == step.tx_hash
    assert "hospital" in rows.first.locator("td").nth(1).inner_text()  # the development name beside it
    dapp.screenshot("13-batched-dispatched")

    # Another prescription of the same batch is still open; the redeemed one is refused at another pharmacy.
    dapp.paste(batch.prescriptions[0].payload_text)
    expect(page.locator("#redeem")).to_be_enabled()
    page.select_option("#dev-account", "pharmacy2")
    dapp.paste(item.payload_text)
    expect(page.locator("#redeem-reason")).to_have_text(
        "Cannot redeem: This prescription has already been redeemed; it cannot be filled again."
    )
    dapp.assert_clean()


def test_a_batched_prescription_is_found_redeemed_and_traced_through_a_range_limited_node(
    dapp, client, issue_batched, ids, deployment, rpc_url
):
    """The page's every log search (the batch of a prescription, the trail) on a node that refuses
    eth_getLogs over more than a few blocks, as Besu does beyond --rpc-max-logs-range: the page asks
    in windows and halves the ones refused."""
    from client.fronts import NodeFront  # tests/ is on the path: pytest imports tests/client as "client"
    from rxchain.web.dapp import make_server

    item = issue_batched(3).prescriptions[1]
    for _ in range(30):
        client.w3.provider.make_request("evm_mine", [])
    front = NodeFront(rpc_url, max_logs_range=6)
    try:
        with make_server("127.0.0.1", 0, deployment=deployment, rpc_url=front.url) as limited:
            dapp.url = limited.url
            page = dapp.open().page
            dapp.paste(item.payload_text)
            expect(page.locator("#rx-verdict")).to_have_text("Ready to redeem.")
            expect(page.locator("#trail tbody tr")).to_have_count(1)

            page.click("#redeem")
            expect(page.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
            expect(page.locator("#trail tbody tr")).to_have_count(3)
        assert client.prescription(item.rx_id).status is Status.DISPENSED
        assert front.refused >= 1 and front.log_queries and all(end - start <= 6 for start, end in front.log_queries)
    finally:
        front.stop()
    dapp.assert_clean()


@pytest.mark.parametrize("case", ["cancelled-batch", "cancelled-in-batch", "other-hospitals-doctor"])
def test_batched_refusals_before_sending(case, dapp, client, issue_batched, ids, w3):
    hospital = ids["hospital"].address
    if case == "other-hospitals-doctor":
        # The hospital skips the workflow's check and commits an id naming doctor2 (hospital2's doctor).
        from rxchain.core.document import validate
        from rxchain.core.ids import prescription_id_for

        document = demo_document(ids["doctor2"].address, client.latest_block_time())
        checked = validate(document)
        key = ClaimKey.generate()
        rx_id = prescription_id_for(checked.doctor, checked.doc_hash, key.address)
        client.issue_batch(ids["hospital"], [rx_id], int(checked.valid_until.timestamp()))
        payload = PrescriptionPayload(
            chain_id=client.chain_id, registry=client.address, rx_id=rx_id, claim_key=key, document=document
        )
        text = encode_payload(payload)
        # The registry opens it from no batch but doctor2's own hospital's: the page looks at no other either.
        key_check, status = "registered", "None"
        expected = (
            "Cannot redeem: This prescription is not registered on this registry; check the code with the patient "
            "or the prescriber."
        )
    else:
        batch = issue_batched(2)
        item = batch.prescriptions[0]
        text = item.payload_text
        key_check, status = "cancelled", "Cancelled"
        if case == "cancelled-batch":
            client.transact(ids["hospital"], "cancelBatch", ids["hospital"].address, batch.root)
            expected = (
                "Cannot redeem: The hospital or the regulator withdrew the whole batch this prescription was issued in"
                "; do not dispense."
            )
        else:
            from rxchain.core.batch import find_batch_proof

            from rxchain.core.document import validate

            proof = find_batch_proof(client, item.rx_id, ids["doctor"].address)
            opening = validate(item.payload.document)
            client.transact(
                ids["hospital"],
                "cancelBatched",
                opening.doctor,
                opening.doc_hash,
                "0x" + "00" * 20,
                item.payload.claim_key.address,
                proof.root,
                proof.proof,
            )
            expected = (
                "Cannot redeem: This prescription was cancelled by its hospital or the regulator; do not dispense."
            )
    page = dapp.open().page
    block = w3.eth.block_number
    dapp.paste(text)
    expect(page.locator("#rx-status")).to_contain_text(status)
    if case != "other-hospitals-doctor":
        expect(page.locator("#rx-batch")).to_contain_text(f"by hospital {hospital}")
    expect(page.locator("#redeem")).to_be_disabled()
    expect(page.locator("#redeem-reason")).to_have_text(expected)
    expect(dapp.check(key_check)).to_have_class("bad")
    expect(page.locator("#rx-verdict")).to_contain_text("Do not dispense")
    if case == "cancelled-batch":
        expect(page.locator("#trail tbody tr[data-step='batch cancelled']")).to_contain_text(hospital)
    if case == "cancelled-in-batch":
        expect(page.locator("#trail tbody tr[data-step='cancelled']")).to_have_count(1)
    dapp.screenshot(f"14-batched-refused-{case}")
    assert w3.eth.block_number == block  # nothing was sent
    dapp.assert_clean()


def test_page_cannot_be_steered_to_another_hospitals_batch_when_it_announces_the_id(dapp, client, issue_batched, ids):
    """Issue 11, finding 2, in the page: another hospital announced the prescription in a newer batch of
    its own, and the genuine batch's ids (its root) too. The page shows and opens the doctor's own
    hospital's batch, and the registry accepts it."""
    batch = issue_batched(3)
    item = batch.prescriptions[0]
    client.issue_batch(ids["hospital2"], [item.rx_id], item.expires_at)
    client.issue_batch(ids["hospital2"], [p.rx_id for p in batch.prescriptions], item.expires_at)
    page = dapp.open().page
    dapp.paste(item.payload_text)

    expect(page.locator("#rx-batch")).to_have_attribute("data-root", "0x" + batch.root.hex())
    expect(page.locator("#rx-batch")).to_contain_text(f"by hospital {ids['hospital'].address}")
    expect(page.locator("#rx-verdict")).to_have_text("Ready to redeem.")
    page.click("#redeem")
    expect(page.locator("#redeem-outcome")).to_contain_text("Redeemed in block")
    assert client.prescription(item.rx_id).status is Status.DISPENSED
    opened = [s for s in trail(client, item.rx_id) if s.step == "opened from batch"]
    assert [(s.details["hospital"], s.details["root"]) for s in opened] == [
        (ids["hospital"].address, "0x" + batch.root.hex())
    ]
    dapp.assert_clean()


def test_batch_withdrawn_after_the_check_shows_the_registry_refusal(dapp, client, issue_batched, ids):
    """The code was checked, then the hospital withdrew the batch: the refusal is the registry's own, in plain words."""
    batch = issue_batched(2)
    item = batch.prescriptions[1]
    page = dapp.open().page
    dapp.paste(item.payload_text)
    expect(page.locator("#redeem")).to_be_enabled()

    client.transact(ids["hospital"], "cancelBatch", ids["hospital"].address, batch.root)
    page.click("#redeem")
    outcome = page.locator("#redeem-outcome")
    expect(outcome).to_have_attribute("data-error", "BatchIsCancelled")
    expect(outcome).to_contain_text(
        "Redemption refused — BatchIsCancelled: The hospital or the regulator "
        "withdrew the whole batch this prescription was issued in"
    )
    expect(outcome).to_contain_text(f"BatchIsCancelled(root=0x{batch.root.hex()})")
    expect(page.locator("#rx-status")).to_contain_text("Cancelled")  # redrawn from the chain
    assert client.prescription(item.rx_id).status is Status.NONE
    dapp.assert_clean()
