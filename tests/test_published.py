"""The ABIs in abi/ and the error table in docs/errors.md are what the build says (``make publish``)."""

from __future__ import annotations

import json

from eth_abi import encode
from eth_utils import keccak

from rxchain.chain.deployment import load_abi
from rxchain.dev.publish import DEPLOYED, error_selector, published_files
from rxchain.paths import project_root


def test_published_files_match_the_build():
    stale = [str(path) for path, text in published_files().items() if not path.is_file() or path.read_text() != text]

    assert not stale, f"run `make publish` and commit: {stale}"


def test_the_error_table_names_every_error_of_every_deployed_contract_with_its_real_selector():
    table = (project_root() / "docs" / "errors.md").read_text()  # what an integrator reads, as committed
    abi_errors = {contract: [item for item in load_abi(contract) if item["type"] == "error"] for contract in DEPLOYED}

    assert len(abi_errors["PrescriptionRegistry"]) > 30 and len(abi_errors["DrugBoxes"]) > 20
    for contract, items in abi_errors.items():
        for item in items:
            selector = "0x" + keccak(text=f"{item['name']}({','.join(i['type'] for i in item['inputs'])})")[:4].hex()
            assert error_selector(item) == selector
            start = f"| `{selector}` | `{item['name']}("
            row = next((line for line in table.splitlines() if line.startswith(start)), None)
            assert row is not None, f"{contract}'s {item['name']} is not in docs/errors.md"
            assert contract in row.split(" | ")[2], f"docs/errors.md does not say {contract} raises {item['name']}"


def test_a_revert_from_the_chain_starts_with_the_published_selector(client, ids):
    unknown = b"\x42" * 32
    published = json.loads(next(t for p, t in published_files().items() if p.name == "PrescriptionRegistry.json"))
    item = next(i for i in published if i["type"] == "error" and i["name"] == "UnknownPrescription")

    call = {
        "to": client.address,
        "from": ids["doctor"].address,
        "data": client.contract.encode_abi("cancel", [unknown]),
    }
    answer = client.w3.provider.make_request("eth_call", [call, "latest"])
    data = answer["error"]["data"]
    data = data if isinstance(data, str) else data["data"]
    assert data.startswith(error_selector(item))
    assert data[10:] == encode(["bytes32"], [unknown]).hex()
