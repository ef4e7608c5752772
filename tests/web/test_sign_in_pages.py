"""Signing in from the pages in a real browser (headless Debian chromium): a development identity on
the console's sign-in page, each role's view (regulator, auditor, hospital, pharmacy; a doctor is
turned away), a browser wallet (EIP-1193 ``personal_sign``) and sign-out; with no console error and
no CSP violation. Screenshots go to artifacts/web/."""

from __future__ import annotations

import re

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from rxchain.paths import project_root

expect = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need the Python package playwright (fix: make setup)"
).expect

ARTIFACTS = project_root() / "artifacts" / "web"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def dev_web(deployment, rpc_url, indexed):
    """The application with the development identities offered on the sign-in page (a development chain)."""
    from rxchain.web.dapp import _dev_keys

    from .conftest import make_web

    server = make_web(deployment, rpc_url, indexed, dev_keys=_dev_keys()).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser, dev_web):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.problems = problems
    yield page
    context.close()


def assert_clean(page) -> None:
    page.evaluate("0")
    assert page.problems == [], "the page logged errors:\n" + "\n".join(page.problems)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in_as(page, url: str, identity: str) -> None:
    page.goto(url)
    page.wait_for_selector('body[data-signed-in="0"]')
    expect(page.locator("#signin")).to_be_visible()
    page.wait_for_selector("body[data-signin-ready]")
    page.select_option("#signin-dev-account", identity)
    page.click("#signin-dev-button")


def test_a_stranger_gets_the_sign_in_page_only(page, dev_web):
    page.goto(dev_web.part_url("console"))
    page.wait_for_selector('body[data-signed-in="0"]')
    expect(page.locator("#signin")).to_be_visible()
    for hidden in ("#mine", "#search", "#summary"):
        expect(page.locator(hidden)).to_be_hidden()
    shot(page, "01-sign-in")
    assert_clean(page)


@pytest.mark.parametrize("identity", ["regulator", "auditor"])
def test_the_regulator_and_the_auditor_see_the_whole_console(page, dev_web, ids, scenario, identity):
    sign_in_as(page, dev_web.part_url("console"), identity)
    page.wait_for_selector('body[data-view="all"][data-ready]')
    expect(page.locator("#who")).to_contain_text(ids[identity].address)
    expect(page.locator('[data-figure="issued"] .value')).to_have_text(str(len(scenario.prescriptions)))
    expect(page.locator("#hospitals-table tbody tr")).to_have_count(len(scenario.hospitals))
    expect(page.locator("#mine")).to_be_hidden()
    shot(page, f"02-{identity}")
    assert_clean(page)


def test_a_hospital_sees_what_became_of_its_prescriptions(page, dev_web, ids, scenario):
    sign_in_as(page, dev_web.part_url("console"), "hospital")
    page.wait_for_selector('body[data-view="hospital"][data-ready]')
    mine = [p for p in scenario.prescriptions if p.hospital == ids["hospital"].address]
    rows = page.locator("#mine-table tbody tr")
    expect(rows).to_have_count(len(mine))
    shown = set(page.eval_on_selector_all("#mine-table tbody tr", "rows => rows.map(r => r.dataset.id)"))
    assert shown == {p.id_hex for p in mine}
    expect(page.locator('#mine-figures [data-figure="issued"] .value')).to_have_text(str(len(mine)))
    for hidden in ("#summary", "#hospitals-table", "#members-table"):
        expect(page.locator(hidden)).to_be_hidden()
    # its own trail opens from the table
    page.locator("#mine-table tbody tr a").first.click()
    expect(page.locator("#trail-result")).to_be_visible()
    expect(page.locator("#trail-steps tbody tr").first).to_have_attribute("data-step", re.compile(r"^issued"))
    shot(page, "03-hospital")
    assert_clean(page)


def test_a_pharmacy_sees_its_fills_and_signs_out(page, dev_web, ids, scenario):
    sign_in_as(page, dev_web.part_url("console"), "pharmacy")
    page.wait_for_selector('body[data-view="pharmacy"][data-ready]')
    fills = [f for p in scenario.prescriptions for f in p.taken if f.pharmacy == ids["pharmacy"].address]
    expect(page.locator("#mine-table tbody tr")).to_have_count(len(fills))
    expect(page.locator('#mine-figures [data-figure="fills"] .value')).to_have_text(str(len(fills)))
    shot(page, "04-pharmacy")
    page.click("#sign-out")
    page.wait_for_selector('body[data-signed-in="0"]')
    expect(page.locator("#signin")).to_be_visible()
    assert_clean(page)


def test_a_doctor_is_turned_away(page, dev_web):
    sign_in_as(page, dev_web.part_url("console"), "doctor")
    expect(page.locator("#signin-error")).to_contain_text("is not a member this server shows anything to")
    expect(page.locator("#summary")).to_be_hidden()
    page.problems[:] = [
        p for p in page.problems if "403" not in p
    ]  # the refused sign-in's status, as the browser logs it


def test_signing_in_through_a_browser_wallet(page, dev_web, ids):
    """A stand-in EIP-1193 wallet: the page asks it for accounts and personal_sign; the keys stay in
    this test (Python), as they stay in a real wallet."""
    auditor = ids["auditor"]
    asked: list[str] = []

    def wallet(method: str, params):
        asked.append(method)
        if method == "eth_requestAccounts":
            return [auditor.address.lower()]
        if method == "personal_sign":
            data, address = params
            assert address.lower() == auditor.address.lower()
            return "0x" + Account.sign_message(encode_defunct(hexstr=data), auditor.key).signature.hex().removeprefix(
                "0x"
            )
        raise ValueError(f"the test wallet does not do {method}")

    page.expose_function("rxTestWallet", wallet)
    page.add_init_script(
        "window.ethereum = { request: ({ method, params }) => window.rxTestWallet(method, params || []) };"
    )
    page.goto(dev_web.part_url("console"))
    page.wait_for_selector("body[data-signin-ready]")
    page.click("#signin-wallet")
    page.wait_for_selector('body[data-view="all"][data-ready]')
    expect(page.locator("#who")).to_contain_text(auditor.address)
    assert asked == ["eth_requestAccounts", "personal_sign"]
    assert_clean(page)
