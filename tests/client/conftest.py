"""Fixtures for the Python side against an ephemeral anvil (ape test's own, never the devnet).

One registry per test module, onboarded with the development identities (regulator, hospital,
doctor, pharmacy, pharmacy2, courier, auditor); ape's isolation reverts the chain after each test,
so every test starts from that state. Each test gets a fresh client (its nonce cache and outbox are
per test, matching the reverted chain).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rxchain.dev.demo import demo_document


@pytest.fixture
def document(client, doctor):
    """A valid one-drug prescription document by ``doctor``, valid from chain-now for a day."""
    return demo_document(doctor.address, client.latest_block_time())


@pytest.fixture
def chain_now(client):
    return datetime.fromtimestamp(client.latest_block_time(), timezone.utc)
