"""The box pages in a real browser (headless Debian chromium) against ape's ephemeral anvil: "Check a box" on the
patient's app (and the dApp), and the pharmacy dApp's boxes step between redemption and hand-over.

Lots are registered through the Python client (BoxesClient) by the development manufacturer, and their public
lot files written into the servers' lot folder. Every verdict is read back from the real chain.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rxchain.chain.boxes import BoxesClient
from rxchain.core import boxes as core
from rxchain.core.labels import scratch_text
from rxchain.core.qr import payload_png
from rxchain.dev.demo import demo_document
from rxchain.workflow import issue_prescription, redeem_payload

expect = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the Python package playwright (fix: make setup)"
).expect

YEAR = 365 * 86_400


@pytest.fixture
def boxes(client, deployment) -> BoxesClient:
    return BoxesClient.for_deployment(client, deployment)


@pytest.fixture
def make_lot(boxes, ids, lots_dir):
    """make_lot(count) -> (Lot, boxes): registered on chain by the manufacturer, its lot file in the servers' folder."""

    def _make(count: int = 6, expires_in: int = YEAR):
        made = [core.Box(i, core.new_secret(), core.new_secret()) for i in range(count)]  # random 20-digit codes
        lot = core.Lot.from_boxes(made, boxes.registry.latest_block_time() + expires_in)
        boxes.register_lot(ids["manufacturer"], lot)
        (lots_dir / f"0x{lot.root.hex()}.lot.json").write_text(lot.to_json())
        return lot, made

    return _make


def redeemed(client, ids, pharmacy="pharmacy"):
    """A prescription redeemed by ``pharmacy`` (status Dispensed, the pharmacy its custodian)."""
    issued = issue_prescription(client, ids["doctor"], demo_document(ids["doctor"].address, client.latest_block_time()))
    redeem_payload(client, ids[pharmacy], issued.payload_text)
    return issued


#: What Chromium logs for every 404 answer, also one a page asked for and expects.
NOT_FOUND = "console.error: Failed to load resource: the server responded with a status of 404 (Not Found)"


def expect_not_found(app, count: int = 1) -> None:
    """The lot index answers 404 for a box no lot file holds (its designed answer), which Chromium logs as a console
    error: exactly ``count`` of them are expected, and taken off the page's problems."""
    app.page.evaluate("0")  # a round trip: the console events emitted before it have arrived
    for _ in range(count):
        assert NOT_FOUND in app.problems, app.problems
        app.problems.remove(NOT_FOUND)


def check(app, *, scan: str = "", code: str = "", secret: str = "") -> None:
    page = app.page
    page.fill("#box-check-scan", scan)
    page.fill("#box-check-code", code)
    page.fill("#box-check-secret", secret)
    page.click("#box-check-go")
    page.wait_for_selector("#box-check-result:not([hidden]), #box-check-error:not([hidden])")


# ------------------------------------------------------------------------------ Check a box


def test_check_page_an_unsold_box_is_genuine(patient, make_lot):
    lot, made = make_lot()
    app = patient.open()
    check(app, scan=scratch_text(made[2]))
    result = app.page.locator("#box-check-result")
    expect(result).to_have_attribute("data-state", "unsold")
    expect(app.page.locator("#box-check-verdict")).to_have_text("Genuine, not yet sold.")
    expect(result).to_contain_text("0x" + lot.root.hex())
    expect(result).to_contain_text("#2")
    app.screenshot("boxes-01-check-unsold")
    app.assert_clean()


def test_check_page_a_sold_box_shows_when_where_and_which_prescription(patient, make_lot, client, boxes, ids):
    lot, made = make_lot()
    issued = redeemed(client, ids)
    tx, _ = boxes.dispense(ids["pharmacy"], issued.rx_id, [(made[1].code, made[1].secret)], [lot])
    app = patient.open()
    check(app, code=made[1].code, secret=made[1].secret)  # typed: the printed code and the scratched secret
    expect(app.page.locator("#box-check-result")).to_have_attribute("data-state", "dispensed")
    expect(app.page.locator("#box-check-verdict")).to_have_text("Genuine, sold once.")
    expect(app.page.locator("#box-check-pharmacy")).to_have_text(ids["pharmacy"].address)
    expect(app.page.locator("#box-check-rx")).to_have_text("0x" + issued.rx_id.hex())
    sold_at = app.page.locator("#box-check-details time").first.get_attribute("datetime")
    assert sold_at.startswith(datetime.fromtimestamp(tx.block_time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    details = app.text("#box-check-result")
    assert made[1].secret not in details  # the page shows the sale, never the secret
    app.screenshot("boxes-02-check-sold")
    app.assert_clean()


def test_check_page_a_forged_secret_is_unknown(patient, make_lot):
    _lot, made = make_lot()
    app = patient.open()
    check(app, scan=f"RXS1:{made[0].code}:{core.new_secret()}")  # the printed code with a guessed secret
    expect(app.page.locator("#box-check-result")).to_have_attribute("data-state", "unknown")
    expect(app.page.locator("#box-check-verdict")).to_have_text("Unknown box.")
    expect(app.page.locator("#box-check-advice")).to_contain_text("counterfeit")
    expect_not_found(app)  # the server's lot index holds no such box; the chain's events show no sale of it
    check(app, scan=f"RXS1:{made[0].code}:123")  # mistyped: refused before asking the chain, in words
    expect(app.page.locator("#box-check-error")).to_have_attribute("data-error", "bad-secret")
    expect(app.page.locator("#box-check-error")).to_contain_text("20 digits under the box's scratch panel")
    app.assert_clean()


def test_check_page_a_recalled_lot(patient, make_lot, boxes, regulator):
    lot, made = make_lot()
    boxes.recall(regulator, lot.root)
    app = patient.open()
    check(app, scan=scratch_text(made[4]))
    expect(app.page.locator("#box-check-result")).to_have_attribute("data-state", "recalled")
    expect(app.page.locator("#box-check-verdict")).to_have_text("Recalled.")
    app.assert_clean()


def test_check_page_an_expired_lot_and_a_qr_photo(patient, make_lot, w3, tmp_path):
    _lot, made = make_lot(3, expires_in=3_600)
    w3.provider.make_request("evm_increaseTime", [7_200])
    w3.provider.make_request("evm_mine", [])
    app = patient.open()
    picture = payload_png(scratch_text(made[1]), tmp_path / "scratch.png")  # a QR code of the scratch-panel text
    app.page.set_input_files("#box-check-file", str(picture))
    expect(app.page.locator("#box-check-result")).to_have_attribute("data-state", "expired")
    expect(app.page.locator("#box-check-scan")).to_have_value(scratch_text(made[1]))
    expect(app.page.locator("#box-check-verdict")).to_have_text("Expired.")
    app.assert_clean()


def test_the_dapp_checks_a_box_too(dapp, make_lot):
    _lot, made = make_lot(2)
    page = dapp.open().page
    page.fill("#box-check-scan", scratch_text(made[0]))
    page.click("#box-check-go")
    expect(page.locator("#box-check-result")).to_have_attribute("data-state", "unsold")
    dapp.assert_clean()


# ------------------------------------------------------------------------------ the dApp's boxes step


def scan(dapp, box: core.Box) -> None:
    page = dapp.page
    page.fill("#box-scan", scratch_text(box))
    page.press("#box-scan", "Enter")  # a keyboard-style scanner ends with Enter


def test_a_fill_of_three_boxes_is_recorded(dapp, make_lot, client, boxes, ids, w3):
    lot, made = make_lot()
    issued = redeemed(client, ids)
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    expect(page.locator("#boxes-section")).to_be_visible()
    expect(page.locator("#boxes-section")).to_have_attribute("data-recorded", "false")
    for n, box in enumerate([made[4], made[0], made[2]], start=1):
        scan(dapp, box)
        expect(page.locator("#box-list tbody tr")).to_have_count(n)
    expect(page.locator("#box-error")).to_be_hidden()
    dapp.screenshot("boxes-03-three-boxes-checked")
    page.click("#record-boxes")
    outcome = page.locator("#boxes-outcome")
    expect(outcome).to_contain_text("Recorded 3 boxes of this fill in block")
    assert [boxes._call("isUnsold", lot.root, i) for i in range(6)] == [False, True, False, True, False, True]
    fill = boxes.fill(issued.rx_id, 0)
    assert (fill.pharmacy, fill.boxes) == (ids["pharmacy"].address, 3)
    assert boxes.fill_nullifiers(issued.rx_id, 0) == [made[i].nullifier for i in (0, 2, 4)]  # by index in the lot
    tx = outcome.locator(".mono").inner_text().removeprefix("transaction ").strip()
    sent = w3.eth.get_transaction(tx)
    assert sent["type"] == 0 and sent["gasPrice"] == 0 and sent["from"] == ids["pharmacy"].address
    expect(page.locator("#boxes-section")).to_have_attribute("data-recorded", "true")
    expect(page.locator("#record-boxes")).to_be_disabled()
    expect(page.locator("#deliver")).to_be_enabled()  # the hand-over step as before
    dapp.screenshot("boxes-04-recorded")
    dapp.assert_clean()


def test_a_box_already_sold_is_refused_and_reported(dapp, make_lot, client, boxes, ids):
    lot, made = make_lot()
    elsewhere = redeemed(client, ids, "pharmacy2")
    boxes.dispense(ids["pharmacy2"], elsewhere.rx_id, [(made[3].code, made[3].secret)], [lot])
    issued = redeemed(client, ids)
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    scan(dapp, made[3])
    error = page.locator("#box-error")
    expect(error).to_have_attribute("data-error", "BoxAlreadyDispensed")
    expect(error).to_contain_text("Reported to the regulator as a duplicate scan")
    expect(page.locator("#box-list tbody tr")).to_have_count(0)
    reports = boxes.events("DuplicateBoxScanned")
    assert len(reports) == 1
    args = reports[0]["args"]
    assert (bytes(args["lot"]), args["pharmacy"], args["index"], bytes(args["nullifier"])) == (
        lot.root,
        ids["pharmacy"].address,
        3,
        made[3].nullifier,
    )
    assert "0x" + bytes(reports[0]["transactionHash"]).hex() == error.get_attribute("data-report-tx")
    assert boxes.fill(issued.rx_id, 0).pharmacy is None  # nothing recorded for this fill
    dapp.screenshot("boxes-05-already-sold")
    dapp.assert_clean()


def test_a_recalled_lot_box_is_refused_before_anything_is_sent(dapp, make_lot, client, boxes, ids, regulator, w3):
    lot, made = make_lot()
    issued = redeemed(client, ids)
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    scan(dapp, made[0])
    expect(page.locator("#box-list tbody tr")).to_have_count(1)
    nonce = w3.eth.get_transaction_count(ids["pharmacy"].address)

    boxes.recall(regulator, lot.root)  # after the box was checked, before the fill is recorded
    scan(dapp, made[1])
    expect(page.locator("#box-error")).to_have_attribute("data-error", "LotIsRecalled")
    expect(page.locator("#box-list tbody tr")).to_have_count(1)
    page.click("#record-boxes")  # the box checked before the recall: every check runs again before sending
    outcome = page.locator("#boxes-outcome")
    expect(outcome).to_have_attribute("data-error", "LotIsRecalled")
    expect(outcome).to_contain_text("Nothing was sent")
    assert w3.eth.get_transaction_count(ids["pharmacy"].address) == nonce  # no transaction
    assert boxes._call("isUnsold", lot.root, 0) and boxes.fill(issued.rx_id, 0).pharmacy is None
    dapp.screenshot("boxes-06-recalled")
    dapp.assert_clean()


def test_an_expired_lot_box_is_refused_by_name(dapp, make_lot, client, ids, w3):
    _lot, made = make_lot(2, expires_in=3_600)
    w3.provider.make_request("evm_increaseTime", [7_200])
    w3.provider.make_request("evm_mine", [])
    issued = redeemed(client, ids)
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    nonce = w3.eth.get_transaction_count(ids["pharmacy"].address)
    scan(dapp, made[1])
    expect(page.locator("#box-error")).to_have_attribute("data-error", "LotExpired")
    expect(page.locator("#box-error")).to_contain_text("past its expiry")
    expect(page.locator("#record-boxes")).to_be_disabled()  # nothing to record
    assert w3.eth.get_transaction_count(ids["pharmacy"].address) == nonce
    dapp.assert_clean()


def test_a_box_no_lot_file_holds_is_named_unknown(dapp, make_lot, client, ids, w3):
    _lot, made = make_lot()
    issued = redeemed(client, ids)
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    nonce = w3.eth.get_transaction_count(ids["pharmacy"].address)
    page.fill("#box-code", made[0].code)
    page.fill("#box-secret", core.new_secret())  # a forged secret
    page.click("#add-box")
    expect(page.locator("#box-error")).to_have_attribute("data-error", "UnknownBox")
    expect(page.locator("#box-error")).to_contain_text("matches no registered lot")
    expect_not_found(dapp)
    scan(dapp, made[5])
    scan(dapp, made[5])  # the same box twice
    expect(page.locator("#box-error")).to_have_attribute("data-error", "DuplicateScan")
    expect(page.locator("#box-list tbody tr")).to_have_count(1)
    assert w3.eth.get_transaction_count(ids["pharmacy"].address) == nonce
    dapp.assert_clean()


def test_check_page_finds_a_sale_through_a_range_limited_node(
    browser, deployment, lots_dir, rpc_url, make_lot, client, boxes, ids
):
    """Besu refuses eth_getLogs over more than --rpc-max-logs-range blocks: the page reads FillBoxesRecorded in
    windows and halves a refused one (the node: anvil behind a front that refuses as Besu does, limit 6 blocks)."""
    from client.fronts import NodeFront  # tests/ is on the path: pytest imports tests/client as "client"
    from rxchain.web.patient import make_patient_server

    from .conftest import TIMEOUT_MS, PatientApp

    lot, made = make_lot()
    issued = redeemed(client, ids)
    boxes.dispense(ids["pharmacy"], issued.rx_id, [(made[0].code, made[0].secret)], [lot])
    for _ in range(30):
        client.w3.provider.make_request("evm_mine", [])
    front = NodeFront(rpc_url, max_logs_range=6)
    server = make_patient_server("127.0.0.1", 0, rpc_url=front.url, deployment=deployment, lots_dir=lots_dir).start()
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        app = PatientApp(context.new_page(), server.url)
        app.page.on("console", lambda msg: app.problems.append(msg.text) if msg.type == "error" else None)
        app.open()
        check(app, scan=scratch_text(made[0]))
        expect(app.page.locator("#box-check-result")).to_have_attribute("data-state", "dispensed")
        expect(app.page.locator("#box-check-rx")).to_have_text("0x" + issued.rx_id.hex())
        assert front.refused >= 1  # a window wider than the node allows was refused, then halved
        assert front.log_queries and all(end - start <= 6 for start, end in front.log_queries)
        app.assert_clean()
    finally:
        context.close()
        server.stop()
        front.stop()


def test_a_fill_from_two_lots_is_recorded_in_one_transaction(dapp, make_lot, client, boxes, ids):
    first, a = make_lot(9)
    second, b = make_lot(3)
    issued = redeemed(client, ids)
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    for n, box in enumerate([a[8], b[1], a[2], a[3]], start=1):
        scan(dapp, box)
        expect(page.locator("#box-list tbody tr")).to_have_count(n)
    page.click("#record-boxes")
    expect(page.locator("#boxes-outcome")).to_contain_text("Recorded 4 boxes of this fill in block")
    assert [i for i in range(9) if not boxes._call("isUnsold", first.root, i)] == [2, 3, 8]
    assert [i for i in range(3) if not boxes._call("isUnsold", second.root, i)] == [1]
    # one lot after the other, in the order first scanned; by index within a lot
    assert boxes.fill_nullifiers(issued.rx_id, 0) == [a[2].nullifier, a[3].nullifier, a[8].nullifier, b[1].nullifier]
    dapp.assert_clean()
