"""The ABIs in abi/ and the error table in docs/errors.md are what the build says (``make publish``)."""

from __future__ import annotations

import json

from eth_abi import encode
from eth_utils import keccak

from rxchain.chain.deployment import load_abi
from rxchain.dev.publish import error_selector, published_files


def test_published_files_match_the_build():
    stale = [str(path) for path, text in published_files().items() if not path.is_file() or path.read_text() != text]

    assert not stale, f"run `make publish` and commit: {stale}"


def test_the_error_table_names_every_error_with_its_real_selector():
    table = next(text for path, text in published_files().items() if path.name == "errors.md")
    abi_errors = [item for item in load_abi() if item["type"] == "error"]

    assert len(abi_errors) > 30
    for item in abi_errors:
        selector = "0x" + keccak(text=f"{item['name']}({','.join(i['type'] for i in item['inputs'])})")[:4].hex()
        assert error_selector(item) == selector
        assert f"| `{selector}` | `{item['name']}(" in table


def test_a_revert_from_the_chain_starts_with_the_published_selector(client, ids):
    unknown = b"\x42" * 32
    published = json.loads(next(t for p, t in published_files().items() if p.name == "PrescriptionRegistry.json"))
    item = next(i for i in published if i["type"] == "error" and i["name"] == "UnknownPrescription")

    call = {"to": client.address, "from": ids["doctor"].address, "data": client.contract.encode_abi("cancel", [unknown])}
    answer = client.w3.provider.make_request("eth_call", [call, "latest"])
    data = answer["error"]["data"]
    data = data if isinstance(data, str) else data["data"]
    assert data.startswith(error_selector(item))
    assert data[10:] == encode(["bytes32"], [unknown]).hex()
