"""Fixtures for the regulator's console: the scripted workload on ape's ephemeral anvil, indexed into
SQLite once per module, the console server on it, and one headless Debian chromium for the session
(driven by Playwright).

Without /usr/bin/chromium or the playwright package the browser tests skip, saying why; without a
PostgreSQL server the PostgreSQL variant skips, saying why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rxchain.paths import project_root

ARTIFACTS = project_root() / "artifacts" / "console"
#: Set to 1 to refresh the README's screenshot (docs/img/console.png).
UPDATE_DOCS_IMAGE = os.environ.get("RXCHAIN_UPDATE_DOCS_IMAGE") == "1"
TIMEOUT_MS = 15_000


def labels_for(scenario, ids) -> dict[str, str]:
    names = {a.address: n for n, a in ids.items()}
    return {**scenario.pharmacies, **scenario.couriers, **names}


@pytest.fixture(scope="module")
def indexed(scenario, deployment, rpc_url, tmp_path_factory) -> str:
    """The scenario indexed into a module's SQLite file."""
    from rxchain.indexer import index

    db = str(tmp_path_factory.mktemp("console") / "index.sqlite")
    index(rpc_url, deployment.registry, deployment.deploy_block, db)
    return db


@pytest.fixture(scope="module")
def console_server(indexed, rpc_url, scenario, ids):
    """The console on the module's index, with the node for /tx/ and the development names."""
    from rxchain.web.console import make_server

    server = make_server(indexed, "127.0.0.1", 0, rpc_url=rpc_url, labels=labels_for(scenario, ids)).start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------- browser


@dataclass
class ConsolePage:
    """A page of the console with the console errors it produced."""

    page: object
    url: str
    problems: list[str] = field(default_factory=list)

    def open(self, fragment: str = "") -> "ConsolePage":
        self.page.goto(self.url + fragment)
        self.page.wait_for_selector("body[data-ready]", timeout=TIMEOUT_MS)
        return self

    def figure(self, key: str) -> str:
        return self.page.locator(f'[data-figure="{key}"] .value').inner_text()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        if not self.page.is_closed():
            self.page.evaluate("0")
        assert self.problems == [], "the page logged errors:\n" + "\n".join(self.problems)


@pytest.fixture
def console_page(browser, console_server):
    """A fresh browser context on the console (UTC, English), collecting console and page errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console = ConsolePage(page, console_server.url)
    page.on(
        "console",
        lambda msg: console.problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: console.problems.append(f"uncaught: {exc}"))
    yield console
    context.close()
    console.assert_clean()
