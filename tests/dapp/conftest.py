"""Fixtures for the pharmacy dApp's tests: a registry on ape's ephemeral anvil, the dApp server in a
thread, and one headless Debian chromium for the whole session (driven by Playwright).

One registry per test module, onboarded with the development identities; ape's isolation reverts the
chain after every test, so each test starts from that state. The dApp is stateless (every page reads
the chain afresh) and each test gets a fresh Python client (its nonce cache matches the reverted
chain) and a fresh browser context.

Without /usr/bin/chromium or the playwright package the browser tests skip, saying why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rxchain.chain.signers import dev_accounts
from rxchain.dev.demo import demo_document
from rxchain.paths import project_root
from rxchain.workflow import IssuedBatch, IssuedPrescription, issue_batch, issue_prescription

ARTIFACTS = project_root() / "artifacts" / "dapp"
#: Set to 1 to refresh the README's screenshot (docs/img/dapp-redeemed.png) from the happy path.
UPDATE_DOCS_IMAGE = os.environ.get("RXCHAIN_UPDATE_DOCS_IMAGE") == "1"
TIMEOUT_MS = 15_000


# ------------------------------------------------------------------------------------ the chain


@pytest.fixture
def issue(client, ids):
    """issue(designated_pharmacy=None) -> IssuedPrescription by the development doctor, valid for a day."""

    def _issue(designated_pharmacy: str | None = None, fills: int = 1) -> IssuedPrescription:
        doctor = ids["doctor"]
        document = demo_document(doctor.address, client.latest_block_time(), designated_pharmacy=designated_pharmacy)
        return issue_prescription(client, doctor, document, fills=fills)

    return _issue


@pytest.fixture
def issue_batched(client, ids):
    """issue_batched(count, designated_pharmacy=None) -> IssuedBatch: the development hospital's batch of
    ``count`` prescriptions by its doctor, valid for a day."""

    def _issue(count: int = 3, designated_pharmacy: str | None = None, fills: int = 1) -> IssuedBatch:
        now = client.latest_block_time()
        documents = [
            demo_document(ids["doctor"].address, now, designated_pharmacy=designated_pharmacy) for _ in range(count)
        ]
        return issue_batch(client, ids["hospital"], documents, fills=fills)

    return _issue


# ------------------------------------------------------------------------------ server and browser


@pytest.fixture(scope="module")
def lots_dir(tmp_path_factory) -> Path:
    """The public lot files the module's servers locate boxes in (a lot file written here is found at once)."""
    return tmp_path_factory.mktemp("lots")


@pytest.fixture(scope="module")
def dapp_server(deployment, rpc_url, lots_dir):
    """The dApp server for this module's registry, on a free port, with sign-in: the page signs its
    pharmacy in (a development key signs the EIP-4361 message) before the relay sends for it. The
    head is read on every request (a credential moved by a test shows at once)."""
    from rxchain.web.auth import Auth, Limits, Membership
    from rxchain.web.dapp import make_server

    # the module's pages sign in many times from 127.0.0.1 within seconds: roomy rate limits
    auth = Auth(
        Membership(rpc_url, deployment.registry, head_ttl=0),
        deployment.chain_id,
        limits=Limits(messages_burst=1000, sign_ins_burst=1000),
    )
    server = make_server("127.0.0.1", 0, deployment=deployment, rpc_url=rpc_url, auth=auth, lots_dir=lots_dir).start()
    yield server
    server.stop()


@dataclass
class Dapp:
    """A page of the dApp with the console errors it produced."""

    page: object
    url: str
    problems: list[str] = field(default_factory=list)

    # -- navigation and reading

    def open(self, account: str = "pharmacy") -> "Dapp":
        """Loads the page and waits until the development ``account`` is in use."""
        from playwright.sync_api import expect

        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready]", timeout=TIMEOUT_MS)
        if account != "pharmacy":
            self.page.select_option("#dev-account", account)
        address = dev_accounts()[account].address
        expect(self.page.locator("#account-info")).to_contain_text(address, timeout=TIMEOUT_MS)
        self.page.wait_for_selector(
            f'body[data-account="{address}"]', timeout=TIMEOUT_MS
        )  # read, and signed in if a pharmacy
        return self

    def paste(self, text: str) -> None:
        """Pastes a prescription code, checks it, and waits for the prescription or the refusal."""
        self.page.fill("#payload", text)
        self.page.click("#check-code")
        self.page.wait_for_selector("#rx-section:not([hidden]), #code-error:not([hidden])", timeout=TIMEOUT_MS)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def check(self, key: str):
        """The checks list item ``key`` (registered, document, doctor (batched only), cancelled, redeemable, expiry,
        pharmacy, account, paused)."""
        return self.page.locator(f'#rx-checks li[data-check="{key}"]')

    # -- evidence

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        """No console error and no uncaught page error so far."""
        if not self.page.is_closed():
            self.page.evaluate("0")  # a round trip: console events emitted before it have arrived
        assert self.problems == [], "the page logged errors:\n" + "\n".join(self.problems)


@pytest.fixture
def dapp(browser, dapp_server):
    """A fresh browser context on the dApp (UTC, English), collecting console and page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    dapp = Dapp(page, dapp_server.url)
    page.on(
        "console", lambda msg: dapp.problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
    )
    page.on("pageerror", lambda exc: dapp.problems.append(f"uncaught: {exc}"))
    yield dapp
    context.close()
    dapp.assert_clean()


# ------------------------------------------------------------------------------ the patient's app


@pytest.fixture(scope="module")
def patient_server(deployment, rpc_url, lots_dir):
    """The patient's app for this module's registry, on a free port (no sign-in: it only reads)."""
    from rxchain.web.patient import make_patient_server

    server = make_patient_server("127.0.0.1", 0, rpc_url=rpc_url, deployment=deployment, lots_dir=lots_dir).start()
    yield server
    server.stop()


#: The PIN the tests' patient chooses.
PIN = "864213"


@dataclass
class PatientApp(Dapp):
    """The patient's app on a phone-sized page."""

    def open(self, account: str = "") -> "PatientApp":  # the patient has no chain account
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready]", timeout=TIMEOUT_MS)
        return self

    def take_home(self, rx1: str, pin: str = PIN) -> None:
        """Imports the hospital's prescription code with ``pin``."""
        from playwright.sync_api import expect

        self.page.fill("#rx-code", rx1)
        self.page.fill("#new-pin", pin)
        self.page.fill("#new-pin-again", pin)
        self.page.click("#import")
        expect(self.page.locator("#status")).to_contain_text("Kept on this phone", timeout=TIMEOUT_MS)

    def read(self, code: str) -> None:
        """Reads a pharmacy's or courier's code; waits for the question or the refusal."""
        self.page.fill("#request-code", code)
        self.page.click("#read-request")
        self.page.wait_for_selector("#ask:not([hidden]), #request-error:not([hidden])", timeout=TIMEOUT_MS)

    def agree(self, pin: str = PIN) -> str:
        """Enters the PIN, agrees, and returns the code the app shows."""
        from playwright.sync_api import expect

        self.page.fill("#pin", pin)
        self.page.click("#sign")
        expect(self.page.locator("#answer")).to_be_visible(timeout=TIMEOUT_MS)
        return self.page.input_value("#answer-code")

    def stored(self) -> str:
        """Everything the page keeps in localStorage, as one text."""
        return self.page.evaluate("() => JSON.stringify(Object.fromEntries(Object.entries(localStorage)))")


@pytest.fixture
def patient(browser, patient_server):
    """A fresh phone-sized browser context on the patient's app, collecting console and page errors."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    app = PatientApp(page, patient_server.url)
    page.on(
        "console", lambda msg: app.problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
    )
    page.on("pageerror", lambda exc: app.problems.append(f"uncaught: {exc}"))
    yield app
    context.close()
    app.assert_clean()


def save_patient_docs_image(app: PatientApp) -> None:
    """Writes docs/img/patient-app.png (the patient's app showing its consent code) when RXCHAIN_UPDATE_DOCS_IMAGE=1."""
    if not UPDATE_DOCS_IMAGE:
        return
    target = project_root() / "docs" / "img" / "patient-app.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    app.page.screenshot(path=str(target), full_page=True, scale="css")


def save_docs_image(dapp: Dapp) -> None:
    """Writes docs/img/dapp-redeemed.png (the prescription card, small) when RXCHAIN_UPDATE_DOCS_IMAGE=1.

    The image is committed, so it is not rewritten on every run.
    """
    if not UPDATE_DOCS_IMAGE:
        return
    target = project_root() / "docs" / "img" / "dapp-redeemed.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page = dapp.page
    page.set_viewport_size({"width": 1000, "height": 900})
    page.locator("#rx-section").screenshot(path=str(target))
    page.set_viewport_size({"width": 1280, "height": 1000})
