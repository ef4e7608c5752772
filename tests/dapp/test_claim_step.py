"""The pharmacy dApp's insurance claim step in a real browser (headless Debian chromium) against ape's
ephemeral anvil and a real DrugBoxes: a manufacturer's lot registered, the fill's boxes recorded and the
patient's receipt confirmed by the Python side, the claim filed from the page.

The page puts only the commitment on chain (the calldata is read back: no amount, no insurance reference),
the opening it offers for download is the one the commitment opens and `rx claim approve --opening` accepts;
every refusal fileClaim would give is named before anything is sent (the account's nonce is read back).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rxchain.chain.boxes import BoxesClient, ClaimStatus
from rxchain.core import boxes as core
from rxchain.core.insurance import ClaimOpening
from rxchain.workflow import confirm_payload_receipt, redeem_payload

expect = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the Python package playwright (fix: make setup)"
).expect

YEAR = 365 * 86_400


@pytest.fixture
def boxes(client, deployment) -> BoxesClient:
    return BoxesClient.for_deployment(client, deployment)


@pytest.fixture
def rx(deployment, tmp_path, monkeypatch, capsys):
    """Runs ``rx --network local --json ...`` in-process (the insurer's side); returns (exit code, stdout, stderr)."""
    from rxchain.chain.deployment import save_deployment
    from rxchain.cli import main as cli

    monkeypatch.setenv("RXCHAIN_DEPLOYMENTS", str(tmp_path / "deployments"))
    save_deployment(deployment)

    def run(*args: str):
        capsys.readouterr()
        try:
            cli.main(["--network", "local", "--outbox", str(tmp_path / "cli-outbox.sqlite"), *args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def with_boxes(client, boxes, ids, issued, pharmacy: str = "pharmacy", count: int = 2) -> list[bytes]:
    """Redeems the prescription's current fill as ``pharmacy`` and records ``count`` boxes of a fresh lot
    (registered by the development manufacturer) for it; returns the nullifiers in the order recorded."""
    redeem_payload(client, ids[pharmacy], issued.payload_text)
    made = [core.Box(i, f"{85 * 10**18 + i:020d}", core.new_secret()) for i in range(count + 1)]
    lot = core.Lot.from_boxes(made, client.latest_block_time() + YEAR)
    boxes.register_lot(ids["manufacturer"], lot)
    _, nullifiers = boxes.dispense(ids[pharmacy], issued.rx_id, [(b.code, b.secret) for b in made[:count]], [lot])
    return nullifiers


def received(client, ids, issued, pharmacy: str = "pharmacy") -> None:
    """The pharmacy hands the drugs over at the counter and the patient's receipt is recorded."""
    client.deliver(ids[pharmacy], issued.rx_id)
    confirm_payload_receipt(client, ids[pharmacy], issued.payload_text)


def fill_form(
    page, insurer: str, amounts: tuple[str, str] = ("12800", "2560"), reference: str = "INS-3301-0042"
) -> None:
    page.fill("#claim-insurer", insurer)
    values = page.locator("#claim-amounts .claim-amount-value")
    page.fill("#claim-amounts tbody tr:nth-child(1) .claim-amount-value", amounts[0])
    page.fill("#claim-amounts tbody tr:nth-child(2) .claim-amount-value", amounts[1])
    assert values.count() == 2
    page.fill("#claim-reference", reference)


def tx_of(page, selector: str = "#claim-outcome") -> str:
    return page.locator(f"{selector} .mono").inner_text().removeprefix("transaction ").strip()


# ------------------------------------------------------------------------------------ filed from the page


def test_a_received_fill_is_claimed_from_the_page_through_a_range_limited_node(
    dapp, client, boxes, issue, ids, w3, rx, deployment, rpc_url, tmp_path
):
    """Dispensed with boxes, received, claimed from the page: ClaimFiled holds the commitment of the opening
    the page offers, the transaction names the fill's boxes and nothing of the opening, and the insurer's
    `rx claim approve --opening` accepts the downloaded file. Every log search goes to a node that refuses
    eth_getLogs over more than 6 blocks (as Besu beyond --rpc-max-logs-range)."""
    from client.fronts import NodeFront  # tests/ is on the path: pytest imports tests/client as "client"
    from rxchain.web.dapp import make_server

    issued = issue()
    nullifiers = with_boxes(client, boxes, ids, issued)
    received(client, ids, issued)
    for _ in range(20):
        w3.provider.make_request("evm_mine", [])
    rx_id = "0x" + issued.rx_id.hex()
    insurer = ids["insurer"].address
    reference = "INS-3301-0042 Müller"
    served = dapp.url
    front = NodeFront(rpc_url, max_logs_range=6)
    try:
        with make_server("127.0.0.1", 0, deployment=deployment, rpc_url=front.url) as limited:
            dapp.url = limited.url
            page = dapp.open().page
            dapp.paste(issued.payload_text)
            expect(page.locator("#claim-section")).to_be_visible()
            expect(page.locator("#claim-fill")).to_have_value("0")
            expect(page.locator("#claim-boxes")).to_contain_text(f"2 boxes recorded by {ids['pharmacy'].address}")
            expect(page.locator("#claim-state")).to_have_attribute("data-claim", "none")
            expect(page.locator("#claim-checks li")).to_have_count(6)
            expect(page.locator("#claim-checks li.bad")).to_have_count(0)
            expect(page.locator("#file-claim")).to_be_enabled()
            page.select_option("#claim-insurer-list", insurer)  # the consortium's insurers are listed
            expect(page.locator("#claim-insurer")).to_have_value(insurer)
            fill_form(page, insurer, reference=reference)
            dapp.screenshot("claim-01-ready")

            with page.expect_download() as caught:  # the opening is downloaded as soon as the claim is sent
                page.click("#file-claim")
            download = caught.value
            assert download.suggested_filename == f"{rx_id}-0.json"
            opening_file = tmp_path / download.suggested_filename
            download.save_as(opening_file)
            outcome = page.locator("#claim-outcome")
            expect(outcome).to_contain_text(f"Claim filed with {insurer} in block")
            expect(page.locator("#claim-opening")).to_contain_text(f"downloaded as {rx_id}-0.json")
            expect(page.locator("#claim-opening")).to_contain_text("Do not post it anywhere public")
            with page.expect_download() as again:  # and offered again
                page.click("#claim-download")
            assert Path(again.value.path()).read_bytes() == opening_file.read_bytes()
            tx_hash, page_commitment = tx_of(page), outcome.get_attribute("data-commitment")
            expect(page.locator("#claim-state")).to_have_attribute("data-claim", "filed")
            expect(page.locator("#claim-reason")).to_have_attribute("data-error", "ClaimAlreadyFiled")
            expect(page.locator("#claim-reason")).to_contain_text("Claimed already — ClaimAlreadyFiled")
            expect(page.locator('#claim-checks li[data-check="claim"]')).to_have_class("done")
            expect(page.locator("#claim-form")).to_be_hidden()
            dapp.screenshot("claim-02-filed")
        assert front.refused >= 1 and front.log_queries and all(end - start <= 6 for start, end in front.log_queries)
    finally:
        front.stop()

    # The opening: the amounts and reference typed, and the commitment filed on chain.
    data = json.loads(opening_file.read_text())
    opening = ClaimOpening.from_json(data)
    assert (data["id"], data["fillsLeft"]) == (rx_id, 0)
    assert opening.amounts == {"total": 12_800, "copay": 2_560}
    assert opening.insurance_reference == reference
    commitment = "0x" + opening.commitment.hex()
    assert data["commitment"] == commitment == page_commitment
    filed = boxes.claim_events(issued.rx_id, 0)["filed"]
    assert (filed["commitment"], filed["insurer"], filed["pharmacy"]) == (commitment, insurer, ids["pharmacy"].address)

    # The transaction: fileClaim from the pharmacy, free gas, naming the fill's boxes and the commitment alone.
    tx = w3.eth.get_transaction(tx_hash)
    assert (tx["type"], tx["gasPrice"], tx["from"], tx["to"]) == (0, 0, ids["pharmacy"].address, boxes.address)
    function, args = boxes.contract.decode_function_input(tx["input"])
    assert function.fn_name == "fileClaim"
    assert args == {
        "rxId": issued.rx_id,
        "fillsLeft": 0,
        "nullifiers": nullifiers,
        "insurer": insurer,
        "commitment": opening.commitment,
    }
    calldata = bytes(tx["input"])
    for secret in (reference.encode(), "INS-3301-0042".encode(), reference.encode("utf-16-le")):
        assert secret not in calldata
    for amount in (12_800, 2_560):
        assert amount.to_bytes(32, "big") not in calldata and str(amount).encode() not in calldata

    # The insurer checks the page's opening against the claim, and approves it with the payment.
    code, out, err = rx(
        "claim",
        "approve",
        rx_id,
        "--fills-left",
        "0",
        "--payment-ref",
        "PAY-0042",
        "--opening",
        str(opening_file),
        "--as",
        "insurer",
    )
    assert code == 0, err
    assert boxes.fill(issued.rx_id, 0).claim is ClaimStatus.PAID
    dapp.url = served  # read again, on the usual node: the claim's decision shows
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    expect(page.locator("#claim-state")).to_have_attribute("data-claim", "paid")
    expect(page.locator("#claim-state")).to_contain_text("payment reference PAY-0042")
    dapp.assert_clean()


# --------------------------------------------------------------------------- refused before sending


def test_a_fill_not_yet_received_shows_fill_not_received_and_sends_nothing(dapp, client, boxes, issue, ids, w3):
    issued = issue()
    with_boxes(client, boxes, ids, issued)
    pharmacy = ids["pharmacy"].address
    page = dapp.open().page
    sent = w3.eth.get_transaction_count(pharmacy)
    dapp.paste(issued.payload_text)
    reason = page.locator("#claim-reason")
    expect(reason).to_have_attribute("data-error", "FillNotReceived")
    expect(reason).to_contain_text("FillNotReceived: The patient's receipt of this fill is not recorded")
    expect(reason).to_contain_text("the prescription is Dispensed with 0 fills left")
    expect(page.locator('#claim-checks li[data-check="received"]')).to_have_class("bad")
    expect(page.locator("#claim-form")).to_be_hidden()
    expect(page.locator("#file-claim")).to_be_disabled()
    dapp.screenshot("claim-03-not-received")
    assert w3.eth.get_transaction_count(pharmacy) == sent  # nothing was sent

    # Once the patient's receipt is recorded the same fill can be claimed.
    received(client, ids, issued)
    page.click("#check-code")
    expect(page.locator("#claim-checks li.bad")).to_have_count(0)
    expect(page.locator("#claim-form")).to_be_visible()
    dapp.assert_clean()


def test_a_second_claim_and_bad_input_are_refused_by_name_before_sending(dapp, client, boxes, issue, ids, w3):
    """The page was ready to file; meanwhile the same fill was claimed elsewhere (the pharmacy's back office):
    pressing File reads the chain again and names ClaimAlreadyFiled. Bad amounts, an empty reference and an
    insurer not in good standing are refused by name too; nothing is ever sent."""
    issued = issue()
    with_boxes(client, boxes, ids, issued)
    received(client, ids, issued)
    pharmacy, insurer = ids["pharmacy"].address, ids["insurer"].address
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    expect(page.locator("#file-claim")).to_be_enabled()
    outcome = page.locator("#claim-outcome")
    sent = w3.eth.get_transaction_count(pharmacy)

    for amounts, reference, error in [
        (("12.80", ""), "INS-1", "InvalidAmount"),
        (("-5", ""), "INS-1", "InvalidAmount"),
        (("", ""), "INS-1", "NoAmounts"),
        (("12800", ""), "   ", "EmptyInsuranceReference"),
    ]:
        fill_form(page, insurer, amounts, reference)
        page.click("#file-claim")
        expect(outcome).to_have_attribute("data-error", error)
        expect(outcome).to_contain_text("Nothing was sent.")
    fill_form(page, ids["courier"].address)
    page.click("#file-claim")
    expect(outcome).to_have_attribute("data-error", "NotInGoodStanding")
    expect(outcome).to_contain_text(f"{ids['courier'].address} is not an insurer in good standing")
    assert w3.eth.get_transaction_count(pharmacy) == sent

    boxes.file_claim(ids["pharmacy"], issued.rx_id, 0, insurer, ClaimOpening.new({"total": 1}, "INS-ELSEWHERE"))
    sent = w3.eth.get_transaction_count(pharmacy)
    fill_form(page, insurer)
    page.click("#file-claim")
    expect(outcome).to_have_attribute("data-error", "ClaimAlreadyFiled")
    expect(outcome).to_contain_text("ClaimAlreadyFiled: A claim for this fill was filed already (it is filed)")
    expect(outcome).to_contain_text("Nothing was sent.")
    expect(page.locator("#claim-state")).to_have_attribute("data-claim", "filed")
    expect(page.locator("#claim-reason")).to_have_attribute("data-error", "ClaimAlreadyFiled")
    expect(page.locator("#claim-opening")).to_be_hidden()
    dapp.screenshot("claim-04-already-filed")
    assert w3.eth.get_transaction_count(pharmacy) == sent
    assert len(boxes.events("ClaimFiled")) == 1
    dapp.assert_clean()


def test_another_pharmacy_is_refused_with_not_fill_pharmacy(dapp, client, boxes, issue, ids, w3):
    issued = issue()
    with_boxes(client, boxes, ids, issued)
    received(client, ids, issued)
    other = ids["pharmacy2"].address
    page = dapp.open("pharmacy2").page
    sent = w3.eth.get_transaction_count(other)
    dapp.paste(issued.payload_text)
    reason = page.locator("#claim-reason")
    expect(reason).to_have_attribute("data-error", "NotFillPharmacy")
    expect(reason).to_contain_text(
        f"Only the pharmacy that recorded this fill's boxes ({ids['pharmacy'].address}) may claim it; "
        f"this account ({other}) did not."
    )
    expect(page.locator("#claim-form")).to_be_hidden()
    dapp.screenshot("claim-05-other-pharmacy")
    assert w3.eth.get_transaction_count(other) == sent

    page.select_option("#dev-account", "pharmacy")  # the fill's own pharmacy may claim it
    expect(page.locator("#claim-form")).to_be_visible()
    expect(page.locator("#claim-reason")).not_to_have_attribute("data-error", "NotFillPharmacy")
    dapp.assert_clean()


def test_an_earlier_fill_is_named_by_its_fills_left(dapp, client, boxes, issue, ids, w3):
    """Two fills: the first dispensed with boxes by this pharmacy and received, the second redeemed elsewhere
    without boxes. The step offers both, picks the one this pharmacy can claim, names NoBoxesRecorded for
    the other, and files the earlier one."""
    issued = issue(fills=2)
    with_boxes(client, boxes, ids, issued)
    received(client, ids, issued)
    redeem_payload(client, ids["pharmacy2"], issued.payload_text)  # the second fill, no boxes recorded
    page = dapp.open().page
    dapp.paste(issued.payload_text)
    expect(page.locator("#claim-fill option")).to_have_count(2)
    expect(page.locator("#claim-fill")).to_have_value("1")
    expect(page.locator("#claim-checks li.bad")).to_have_count(0)

    page.select_option("#claim-fill", "0")
    expect(page.locator("#claim-reason")).to_have_attribute("data-error", "NoBoxesRecorded")
    expect(page.locator("#claim-boxes")).to_have_text("none recorded")
    expect(page.locator("#claim-form")).to_be_hidden()

    page.select_option("#claim-fill", "1")
    expect(page.locator("#claim-form")).to_be_visible()
    fill_form(page, ids["insurer"].address)
    with page.expect_download() as caught:
        page.click("#file-claim")
    expect(page.locator("#claim-outcome")).to_contain_text("Claim filed with")
    assert caught.value.suggested_filename == f"0x{issued.rx_id.hex()}-1.json"
    assert boxes.fill(issued.rx_id, 1).claim is ClaimStatus.FILED
    assert boxes.fill(issued.rx_id, 0).claim is ClaimStatus.NONE
    dapp.assert_clean()


def test_a_voided_fill_shows_fill_is_void(dapp, client, boxes, issue, ids, regulator, w3):
    """The pharmacy recorded a fill's boxes, was revoked holding it and readmitted; the regulator voided the
    fill: the page shows the claim void and names FillIsVoid."""
    issued = issue(fills=2)
    with_boxes(client, boxes, ids, issued)
    pharmacy = ids["pharmacy"].address
    client.revoke(regulator, pharmacy, "pharmacy")
    client.void_custody(regulator, issued.rx_id)
    boxes.void_fill(regulator, issued.rx_id, 1)
    client.admit(regulator, pharmacy, "pharmacy", client.latest_block_time() + 30 * 86_400)
    page = dapp.open().page
    sent = w3.eth.get_transaction_count(pharmacy)
    dapp.paste(issued.payload_text)
    expect(page.locator("#claim-state")).to_have_attribute("data-claim", "void")
    expect(page.locator("#claim-reason")).to_have_attribute("data-error", "FillIsVoid")
    expect(page.locator("#claim-reason")).to_contain_text("The regulator voided this fill")
    expect(page.locator("#claim-form")).to_be_hidden()
    assert w3.eth.get_transaction_count(pharmacy) == sent
    dapp.assert_clean()
