"""Fixtures shared across the suite: one headless chromium for every browser test (the dApp's and the
console's). Playwright's sync API allows one running instance per process, so the session shares it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Debian's chromium; $RXCHAIN_CHROMIUM points elsewhere.
CHROMIUM = Path(os.environ.get("RXCHAIN_CHROMIUM", "/usr/bin/chromium"))
#: No background networking: this machine reaches no host but its package registries.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the session (skips with the reason when it cannot run here)."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"the browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the browser tests need the Python package playwright (pip install -r requirements.lock)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()
