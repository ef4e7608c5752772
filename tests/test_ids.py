"""The prescription id's one form: RxId is the registry's 32 bytes and prints as 0x-hex everywhere."""

from __future__ import annotations

import pytest
from eth_abi import decode, encode

from rxchain import errors
from rxchain.core.ids import RxId, prescription_id_for

DOCTOR = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
CLAIM = "0xAb8483F64d9C6d1EcF9b849Ae677dD3315835cb2"


def test_an_id_reads_any_hex_form_and_prints_one():
    raw = bytes(range(32))
    for text in ("0x" + raw.hex(), raw.hex(), "0X" + raw.hex().upper(), "  0x" + raw.hex() + "\n"):
        assert RxId(text) == raw and str(RxId(text)) == "0x" + raw.hex()
    assert RxId(raw) is not raw and RxId(RxId(raw)) == raw and repr(RxId(raw)) == f"RxId('0x{raw.hex()}')"


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 32, "", "0x" + "11" * 33, b"\x01" * 31])
def test_anything_but_32_bytes_is_named_bad_input(bad):
    with pytest.raises(errors.InvalidValue, match="prescription id"):
        RxId(bad)


def test_ids_are_computed_as_rxid_and_pass_as_bytes32():
    rx_id = prescription_id_for(DOCTOR, b"\x07" * 32, CLAIM)

    assert isinstance(rx_id, RxId) and len(rx_id) == 32
    assert decode(["bytes32"], encode(["bytes32"], [rx_id]))[0] == rx_id
    assert {rx_id: 1}[bytes(rx_id)] == 1  # the same key as its plain bytes
