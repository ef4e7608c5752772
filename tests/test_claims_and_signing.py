"""The fast signing paths agree byte for byte with eth-account's reference implementations."""

from __future__ import annotations

import coincurve
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from rxchain.core.claims import RegistryDomain, receipt_typed_data, redeem_typed_data, sign_receipt, sign_redeem
from rxchain.chain.pipeline import sign_legacy

keys = st.binary(min_size=32, max_size=32).filter(lambda k: 0 < int.from_bytes(k, "big") < 2**256 - 2**129)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@settings(max_examples=60, deadline=None)
@given(
    key=keys,
    rx_id=st.binary(min_size=32, max_size=32),
    pharmacy=addresses,
    fills=st.integers(0, 255),
    deadline=st.integers(0, 2**40),
    chain_id=st.integers(1, 2**31),
    registry=addresses,
)
def test_claim_signatures_equal_eth_account_typed_data_signatures(
    key, rx_id, pharmacy, fills, deadline, chain_id, registry
):
    domain = RegistryDomain(chain_id, registry)

    reference = Account.sign_message(
        encode_typed_data(full_message=redeem_typed_data(domain, rx_id, pharmacy, fills, deadline)), key
    )
    assert sign_redeem(key, domain, rx_id, pharmacy, fills, deadline) == bytes(reference.signature)

    reference = Account.sign_message(
        encode_typed_data(full_message=receipt_typed_data(domain, rx_id, pharmacy, fills, deadline)), key
    )
    assert sign_receipt(key, domain, rx_id, pharmacy, fills, deadline) == bytes(reference.signature)


@settings(max_examples=60, deadline=None)
@given(
    key=keys,
    nonce=st.integers(0, 2**32),
    gas=st.integers(21_000, 30_000_000),
    to=st.binary(min_size=20, max_size=20),
    data=st.binary(max_size=300),
    chain_id=st.integers(1, 2**31),
)
def test_pipeline_transactions_equal_eth_account_signed_transactions(key, nonce, gas, to, data, chain_id):
    raw, tx_hash = sign_legacy(coincurve.PrivateKey(key), chain_id, nonce, gas, to, data)

    reference = Account.sign_transaction(
        {
            "nonce": nonce,
            "gasPrice": 0,
            "gas": gas,
            "to": to_checksum_address(to),
            "value": 0,
            "data": data,
            "chainId": chain_id,
        },
        key,
    )
    assert raw == bytes(reference.raw_transaction)
    assert tx_hash == "0x" + bytes(reference.hash).hex()
