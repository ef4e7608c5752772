"""Fixtures for the Python side against an ephemeral anvil (ape test's own, never the devnet).

One registry per test module, onboarded with the development identities (regulator, hospital,
doctor, pharmacy, pharmacy2, courier, auditor); ape's isolation reverts the chain after each test,
so every test starts from that state. Each test gets a fresh client (its nonce cache and outbox are
per test, matching the reverted chain).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from rxchain.chain.deployment import save_deployment
from rxchain.cli import main as cli
from rxchain.dev.demo import demo_document


@pytest.fixture
def document(client, doctor):
    """A valid one-drug prescription document by ``doctor``, valid from chain-now for a day."""
    return demo_document(doctor.address, client.latest_block_time())


@pytest.fixture
def chain_now(client):
    return datetime.fromtimestamp(client.latest_block_time(), timezone.utc)


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
        if not (json_out and code == 0):
            return code, out, err
        data = json.loads(out)
        snake = _snake_case_keys(data)
        assert not snake, f"rx {' '.join(args)} --json: keys not in camelCase (one casing everywhere): {snake}"
        return code, data, err

    return run


def _snake_case_keys(value) -> list[str]:
    """Every key, at any depth, that is not camelCase (it holds an underscore)."""
    if isinstance(value, list):
        return [key for item in value for key in _snake_case_keys(item)]
    if isinstance(value, dict):
        return [k for k in value if "_" in k] + [key for v in value.values() for key in _snake_case_keys(v)]
    return []
