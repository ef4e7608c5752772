"""Tests of rxchain.core.ids and rxchain.core.payload: prescription ids, claim keys, QR payload and rendering."""

from __future__ import annotations

import base64
import copy
import json
import struct
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_canonical_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxchain.core.document import MedicationSpec, build_prescription, document_hash, new_patient_pseudonym
from rxchain.core.ids import ZERO_ADDRESS, is_valid_address, prescription_id, prescription_id_for, terms_hash
from rxchain.core.payload import (
    MAX_PAYLOAD_CHARS,
    PAYLOAD_PREFIX,
    ClaimKey,
    MalformedPayload,
    NonCanonicalPayload,
    NotAPayload,
    PayloadChecksumMismatch,
    PayloadError,
    PayloadTampered,
    PayloadTooLarge,
    PrescriptionPayload,
    TruncatedPayload,
    UnsupportedPayloadVersion,
    WrongChain,
    WrongRegistry,
    decode_payload,
    encode_payload,
)
from rxchain.core.qr import payload_matrix, payload_png, payload_terminal, read_qr_image

DOCTOR = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
PHARMACY = "0xAb8483F64d9C6d1EcF9b849Ae677dD3315835cb2"
REGISTRY = "0x4B20993Bc481177ec7E8f571ceCaE8A9e22C02db"
CHAIN_ID = 1337
CLAIM_KEY_HEX = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
DOC_HASH = bytes.fromhex("7310b13f2c05e408331338b3082979ff82753435927cde3bf729c8d117dac821")


def make_document(pharmacy: str | None = PHARMACY, drugs: int = 2) -> dict[str, Any]:
    return build_prescription(
        doctor=DOCTOR,
        patient_pseudonym=new_patient_pseudonym(),
        medications=[
            MedicationSpec(
                code=f"J01CA0{i}",
                system="http://www.whocc.no/atc",
                text=f"阿莫西林胶囊 {i} 0.25g",
                dosage_text="每日三次，每次两粒",
                quantity=2,
                unit="盒",
                supply_days=3,
                frequency=3,
            )
            for i in range(drugs)
        ],
        valid_from=datetime(2025, 3, 14, 9, 30, tzinfo=timezone(timedelta(hours=8))),
        designated_pharmacy=pharmacy,
    )


def make_payload(pharmacy: str | None = PHARMACY, drugs: int = 2) -> PrescriptionPayload:
    return PrescriptionPayload.create(
        chain_id=CHAIN_ID, registry=REGISTRY, claim_key=ClaimKey.generate(), document=make_document(pharmacy, drugs)
    )


def payload_object(payload: PrescriptionPayload) -> dict[str, Any]:
    """The JSON object of the format, written out independently of the module."""
    return {
        "v": 1,
        "chainId": payload.chain_id,
        "registry": payload.registry,
        "rxId": "0x" + payload.rx_id.hex(),
        "claimKey": payload.claim_key.hex,
        "doc": payload.document,
    }


def frame_bytes(canonical: bytes, *, prefix: str = PAYLOAD_PREFIX) -> str:
    """Frame raw JSON bytes as the format says: zlib, keccak checksum, base64url without padding."""
    body = zlib.compress(canonical, 9)
    return prefix + base64.urlsafe_b64encode(body + keccak(body)[:4]).rstrip(b"=").decode()


def frame(obj: Any) -> str:
    return frame_bytes(rfc8785.dumps(obj))


def raw_of(text: str) -> bytes:
    encoded = text[len(PAYLOAD_PREFIX) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def text_of(raw: bytes) -> str:
    return PAYLOAD_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def payload() -> PrescriptionPayload:
    return make_payload()


@pytest.fixture(scope="module")
def text(payload: PrescriptionPayload) -> str:
    return encode_payload(payload)


# --------------------------------------------------------------------------- ids


def test_ids_known_vector_matches_independent_computation() -> None:
    claim_address = Account.from_key(CLAIM_KEY_HEX).address
    terms = keccak(
        abi_encode(
            ["address", "bytes32", "address"], [to_canonical_address(DOCTOR), DOC_HASH, to_canonical_address(PHARMACY)]
        )
    )
    expected = keccak(abi_encode(["address", "bytes32"], [to_canonical_address(claim_address), terms]))
    assert terms_hash(DOCTOR, DOC_HASH, PHARMACY) == terms
    assert prescription_id(claim_address, terms) == expected
    assert prescription_id_for(DOCTOR, DOC_HASH, claim_address, PHARMACY) == expected
    # Frozen regression values (also reproduced with ethers' AbiCoder when they were recorded).
    assert claim_address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert terms.hex() == "8841a943ec61d49908714c6cb422d384c37af802b5cf1125ada179e6848fb8ac"
    assert expected.hex() == "bc733dbf2c83e48560b16a7a7900ab5a6896854e25772aff6a31bd7090eb6942"
    # Hex hashes and lowercase or raw-byte addresses give the same id.
    assert expected == prescription_id_for(DOCTOR.lower(), "0x" + DOC_HASH.hex(), claim_address.lower(), PHARMACY)
    assert expected == prescription_id_for(
        to_canonical_address(DOCTOR), DOC_HASH, to_canonical_address(claim_address), PHARMACY.lower()
    )


def test_ids_no_pharmacy_is_the_zero_address() -> None:
    assert terms_hash(DOCTOR, DOC_HASH) == terms_hash(DOCTOR, DOC_HASH, ZERO_ADDRESS)
    assert terms_hash(DOCTOR, DOC_HASH, None) == keccak(
        abi_encode(["address", "bytes32", "address"], [to_canonical_address(DOCTOR), DOC_HASH, bytes(20)])
    )
    assert terms_hash(DOCTOR, DOC_HASH) != terms_hash(DOCTOR, DOC_HASH, PHARMACY)


@pytest.mark.parametrize(
    "args",
    [
        ("0x123", DOC_HASH, None),
        (DOCTOR.replace("B", "b", 1), DOC_HASH, None),  # broken checksum
        (DOCTOR, b"short", None),
        (DOCTOR, "0x" + "zz" * 32, None),
        (DOCTOR, "0x" + "00 " * 21, None),
        (DOCTOR, DOC_HASH, "nowhere"),
        (DOCTOR, DOC_HASH, b"\x00" * 19),
    ],
)
def test_ids_refuse_malformed_input(args: tuple[Any, Any, Any]) -> None:
    with pytest.raises(ValueError):
        terms_hash(*args)


def test_is_valid_address() -> None:
    assert is_valid_address(DOCTOR) and is_valid_address(DOCTOR.lower()) and is_valid_address("0x" + DOCTOR[2:].upper())
    assert not is_valid_address(DOCTOR.replace("B", "b", 1))
    assert not is_valid_address(DOCTOR[2:]) and not is_valid_address(None) and not is_valid_address(DOCTOR + "0")


# --------------------------------------------------------------------------- claim key


def test_claim_key() -> None:
    a, b = ClaimKey.generate(), ClaimKey.generate()
    assert a != b and a.address != b.address
    assert len(a.private_key) == 32
    assert ClaimKey.from_hex(a.hex) == a
    assert ClaimKey.from_hex(a.hex[2:]) == a
    assert a.address == Account.from_key(a.private_key).address
    assert a.hex[2:] not in repr(a) and a.address in repr(a)
    key = ClaimKey.from_hex(CLAIM_KEY_HEX)
    assert key.address == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    message = encode_defunct(text="claim")
    assert Account.recover_message(message, signature=key.account.sign_message(message).signature) == key.address


@pytest.mark.parametrize(
    "bad",
    [
        "0x" + "00" * 32,
        "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
        "0x1234",
        "not hex",
        "0x" + "g" * 64,
    ],
)
def test_claim_key_refuses_invalid_keys(bad: str) -> None:
    with pytest.raises(ValueError):
        ClaimKey.from_hex(bad)


# --------------------------------------------------------------------------- round trip and format


def test_round_trip(payload: PrescriptionPayload, text: str) -> None:
    decoded = decode_payload(text, expected_chain_id=CHAIN_ID, expected_registry=REGISTRY.lower())
    assert decoded == payload
    assert decoded.claim_key.address == payload.claim_key.address
    assert decoded.doc_hash == document_hash(payload.document)
    assert decoded.computed_rx_id == decoded.rx_id
    assert decoded.rx_id == prescription_id_for(DOCTOR, decoded.doc_hash, payload.claim_key.address, PHARMACY)
    assert decode_payload("\n  " + text + "\r\n") == payload  # scanners may add whitespace


def test_round_trip_without_pharmacy() -> None:
    payload = make_payload(pharmacy=None, drugs=5)
    decoded = decode_payload(encode_payload(payload))
    assert decoded == payload
    assert decoded.rx_id == prescription_id_for(DOCTOR, decoded.doc_hash, payload.claim_key.address, None)


def test_format_is_exactly_as_documented(payload: PrescriptionPayload, text: str) -> None:
    assert text.startswith("RX1.") and text.isascii() and "=" not in text
    raw = raw_of(text)
    body, checksum = raw[:-4], raw[-4:]
    assert checksum == keccak(body)[:4]
    assert body[0] == 0x78 and int.from_bytes(body[:2], "big") % 31 == 0  # zlib header (RFC 1950)
    canonical = zlib.decompress(body)
    assert canonical == rfc8785.dumps(payload_object(payload))
    assert json.loads(canonical)["registry"] == REGISTRY
    assert text == frame(payload_object(payload))  # deterministic
    assert len(text) < 2331  # fits a QR code at error correction M


def test_encode_refuses_inconsistent_payload(payload: PrescriptionPayload) -> None:
    wrong = PrescriptionPayload(
        chain_id=CHAIN_ID, registry=REGISTRY, rx_id=bytes(32), claim_key=payload.claim_key, document=payload.document
    )
    with pytest.raises(PayloadTampered):
        encode_payload(wrong)
    other_key = PrescriptionPayload(
        chain_id=CHAIN_ID,
        registry=REGISTRY,
        rx_id=payload.rx_id,
        claim_key=ClaimKey.generate(),
        document=payload.document,
    )
    with pytest.raises(PayloadTampered):
        encode_payload(other_key)


def test_payload_constructor_checks_types(payload: PrescriptionPayload) -> None:
    good = dict(chain_id=CHAIN_ID, registry=REGISTRY, rx_id=payload.rx_id, claim_key=payload.claim_key, document={})
    for key, value in [("chain_id", 0), ("chain_id", True), ("registry", "0x12"), ("rx_id", b"1"), ("claim_key", "k")]:
        with pytest.raises(MalformedPayload):
            PrescriptionPayload(**{**good, key: value})
    assert PrescriptionPayload(**{**good, "registry": REGISTRY.lower()}).registry == REGISTRY


# --------------------------------------------------------------------------- refused input


def test_wrong_prefix(text: str) -> None:
    for bad in ("XX1." + text[4:], "https://example.org/rx", text[4:], "rx1." + text[4:]):
        with pytest.raises(NotAPayload) as err:
            decode_payload(bad)
        assert isinstance(err.value, MalformedPayload)


def test_unsupported_version(text: str, payload: PrescriptionPayload) -> None:
    with pytest.raises(UnsupportedPayloadVersion) as err:
        decode_payload("RX2." + text[4:])
    assert err.value.version == 2
    obj = payload_object(payload)
    obj["v"] = 2
    with pytest.raises(UnsupportedPayloadVersion):
        decode_payload(frame(obj))


@pytest.mark.parametrize("bad", ["RX1.abc$def", "RX1.ab+/", "RX1.abcd==", "RX1.a b"])
def test_bad_base64(bad: str) -> None:
    with pytest.raises(MalformedPayload):
        decode_payload(bad)


def test_flipped_checksum_byte(text: str) -> None:
    raw = bytearray(raw_of(text))
    for position in range(len(raw) - 8, len(raw)):  # Adler-32 trailer and keccak checksum
        damaged = bytearray(raw)
        damaged[position] ^= 0x01
        with pytest.raises(PayloadChecksumMismatch):
            decode_payload(text_of(bytes(damaged)))


def test_flipped_body_byte(text: str) -> None:
    raw = raw_of(text)
    kinds = set()
    for position in range(0, len(raw) - 4):
        damaged = bytearray(raw)
        damaged[position] ^= 0x40
        with pytest.raises((PayloadChecksumMismatch, TruncatedPayload)) as err:
            decode_payload(text_of(bytes(damaged)))
        kinds.add(type(err.value))
    assert PayloadChecksumMismatch in kinds


def test_flipped_character(text: str) -> None:
    positions = list(range(4, len(text), 7)) + [len(text) - 1]
    for position in positions:
        replacement = "A" if text[position] != "A" else "B"
        with pytest.raises((PayloadChecksumMismatch, TruncatedPayload, NonCanonicalPayload)):
            decode_payload(text[:position] + replacement + text[position + 1 :])


@pytest.mark.parametrize("spare_bits", [2, 4])
def test_last_character_spare_bits_are_refused(spare_bits: int) -> None:
    # A code whose raw length leaves 2 or 4 unused low bits in its last base64 character:
    # setting them decodes to the same bytes, so the decoder must refuse that spelling.
    for _ in range(200):
        payload = make_payload()
        text = encode_payload(payload)
        encoded = text[len(PAYLOAD_PREFIX) :]
        if {4: 2, 2: 3}[spare_bits] == len(encoded) % 4:
            break
    else:
        pytest.fail(f"no code of {spare_bits} spare bits in 200 tries")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(encoded[-1])
    assert last & ((1 << spare_bits) - 1) == 0  # what the encoder writes
    altered = PAYLOAD_PREFIX + encoded[:-1] + alphabet[last | 1]
    assert raw_of(altered) == raw_of(text)  # the same bytes under another spelling
    with pytest.raises(NonCanonicalPayload):
        decode_payload(altered)
    assert decode_payload(text).rx_id == payload.rx_id  # the encoder's own spelling still reads


def test_truncated(text: str) -> None:
    for cut in list(range(1, 12)) + [50, 300, len(text) - 10, len(text) - 5]:
        with pytest.raises(TruncatedPayload):
            decode_payload(text[:-cut])
    with pytest.raises(TruncatedPayload):
        decode_payload("RX1.")


def test_wrong_chain(text: str) -> None:
    with pytest.raises(WrongChain) as err:
        decode_payload(text, expected_chain_id=1)
    assert (err.value.expected, err.value.got) == (1, CHAIN_ID)


def test_wrong_registry(text: str) -> None:
    with pytest.raises(WrongRegistry) as err:
        decode_payload(text, expected_registry=PHARMACY)
    assert (err.value.expected, err.value.got) == (PHARMACY, REGISTRY)
    with pytest.raises(ValueError):
        decode_payload(text, expected_registry="not an address")


def test_tampered_document_with_recomputed_checksum(payload: PrescriptionPayload) -> None:
    obj = payload_object(payload)
    obj["doc"] = copy.deepcopy(obj["doc"])
    obj["doc"]["entry"][0]["resource"]["dispenseRequest"]["quantity"]["value"] = 20
    with pytest.raises(PayloadTampered) as err:
        decode_payload(frame(obj))
    assert err.value.rx_id == payload.rx_id and err.value.computed != payload.rx_id


def test_tampered_pharmacy_claim_key_and_id(payload: PrescriptionPayload) -> None:
    obj = payload_object(payload)
    obj["doc"] = copy.deepcopy(obj["doc"])
    for entry in obj["doc"]["entry"]:
        del entry["resource"]["dispenseRequest"]["performer"]
    with pytest.raises(PayloadTampered):
        decode_payload(frame(obj))
    obj = payload_object(payload)
    obj["claimKey"] = ClaimKey.generate().hex
    with pytest.raises(PayloadTampered):
        decode_payload(frame(obj))
    obj = payload_object(payload)
    obj["rxId"] = "0x" + bytes(32).hex()
    with pytest.raises(PayloadTampered):
        decode_payload(frame(obj))


@pytest.mark.parametrize("key", ["v", "chainId", "registry", "rxId", "claimKey", "doc"])
def test_missing_key(payload: PrescriptionPayload, key: str) -> None:
    obj = payload_object(payload)
    del obj[key]
    with pytest.raises(MalformedPayload) as err:
        decode_payload(frame(obj))
    assert err.value.key == key and key in str(err.value)


@pytest.mark.parametrize(
    "key,value",
    [
        ("v", "1"),
        ("v", True),
        ("chainId", "1337"),
        ("chainId", 0),
        ("chainId", -5),
        ("chainId", 1337.5),
        ("chainId", True),
        ("registry", "0x1234"),
        ("registry", REGISTRY.replace("B", "b", 1)),
        ("registry", 42),
        ("rxId", "0x1234"),
        ("rxId", 5),
        ("claimKey", "0x" + "00" * 32),
        ("claimKey", "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"),
        ("claimKey", "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"),
        ("doc", []),
        ("doc", "document"),
        ("doc", {"resourceType": "Bundle"}),
        ("doc", {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationRequest"}}]}),
        ("extra", 1),
    ],
)
def test_wrong_key_types(payload: PrescriptionPayload, key: str, value: Any) -> None:
    obj = payload_object(payload)
    obj[key] = value
    with pytest.raises((MalformedPayload, UnsupportedPayloadVersion)) as err:
        decode_payload(frame(obj))
    if isinstance(err.value, MalformedPayload):
        assert err.value.key == key


@pytest.mark.parametrize("bad", [None, 42, b"RX1.abc", ["RX1."], object()])
def test_non_string_input(bad: Any) -> None:
    with pytest.raises(MalformedPayload):
        decode_payload(bad)


@pytest.mark.parametrize("bad", ["", "   ", "\n"])
def test_empty_input(bad: str) -> None:
    with pytest.raises(MalformedPayload):
        decode_payload(bad)


def test_too_large() -> None:
    with pytest.raises(PayloadTooLarge) as err:
        decode_payload("RX1." + "A" * MAX_PAYLOAD_CHARS)
    assert err.value.maximum == MAX_PAYLOAD_CHARS
    with pytest.raises(PayloadTooLarge):
        decode_payload(" " * (10 * MAX_PAYLOAD_CHARS))


def test_decompression_bomb() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_payload(frame_bytes(b" " * (10 * 1024 * 1024)))


@pytest.mark.parametrize(
    "canonical",
    [b"{not json", b'{"v": 1, "v": 1}', b'{"v": NaN}', b"\xff\xfe", b"[1, 2]", b"null", b"[" * 50000, b"1" * 5000],
    ids=["syntax", "duplicate-key", "nan", "not-utf8", "array", "null", "deep-nesting", "huge-integer"],
)
def test_bad_json_inside_valid_framing(canonical: bytes) -> None:
    with pytest.raises(MalformedPayload):
        decode_payload(frame_bytes(canonical))


def test_bad_zlib_inside_valid_framing() -> None:
    body = b"this is not zlib data at all"
    with pytest.raises(MalformedPayload, match="zlib"):
        decode_payload(text_of(body + keccak(body)[:4]))
    body = zlib.compress(b"{}") + b"trailing"
    with pytest.raises(MalformedPayload, match="after the end"):
        decode_payload(text_of(body + keccak(body)[:4]))
    body = zlib.compress(b"{}" * 100)[:-6]  # cut inside the stream, checksum recomputed
    with pytest.raises(MalformedPayload, match="incomplete"):
        decode_payload(text_of(body + keccak(body)[:4]))


def test_exception_hierarchy() -> None:
    for cls in (
        MalformedPayload,
        NotAPayload,
        UnsupportedPayloadVersion,
        TruncatedPayload,
        PayloadChecksumMismatch,
        PayloadTooLarge,
        WrongChain,
        WrongRegistry,
        PayloadTampered,
    ):
        assert issubclass(cls, PayloadError) and issubclass(cls, ValueError)


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def decode_only_payload_errors(text: Any) -> None:
    try:
        decode_payload(text, expected_chain_id=CHAIN_ID, expected_registry=REGISTRY)
    except PayloadError:
        pass


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(text: str) -> None:
    decode_only_payload_errors(text)


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_prefixed_text(text: str) -> None:
    decode_only_payload_errors(PAYLOAD_PREFIX + text)


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_base64(data: bytes) -> None:
    decode_only_payload_errors(text_of(data))
    decode_only_payload_errors(text_of(data + keccak(data[:-4])[:4]))  # sometimes a valid checksum


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_in_valid_framing(data: bytes) -> None:
    decode_only_payload_errors(frame_bytes(data))


@FUZZ
@given(json_values)
def test_fuzz_arbitrary_json_in_valid_framing(value: Any) -> None:
    decode_only_payload_errors(frame(value))


@FUZZ
@given(key=st.sampled_from(["v", "chainId", "registry", "rxId", "claimKey", "doc"]), value=json_values, data=st.data())
def test_fuzz_one_key_replaced(key: str, value: Any, data: st.DataObject) -> None:
    obj = payload_object(FUZZ_PAYLOAD)
    obj[key] = value
    decode_only_payload_errors(frame(obj))
    # Also replace one value deep inside the document.
    obj = payload_object(FUZZ_PAYLOAD)
    obj["doc"] = copy.deepcopy(obj["doc"])
    target = obj["doc"]
    while isinstance(target, (dict, list)) and target:
        keys = list(target.keys()) if isinstance(target, dict) else list(range(len(target)))
        chosen = data.draw(st.sampled_from(keys))
        if not isinstance(target[chosen], (dict, list)) or data.draw(st.booleans()):
            target[chosen] = value
            break
        target = target[chosen]
    decode_only_payload_errors(frame(obj))


FUZZ_PAYLOAD = make_payload()


# --------------------------------------------------------------------------- rendering


def read_png(path: Path) -> tuple[int, int, list[list[int]]]:
    """Decode the 1-bit greyscale PNG written by payload_png, checking every chunk CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        content = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + content)
        chunks.append((kind, content))
        position += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, interlace) == (1, 0, 0)
    pixels = zlib.decompress(b"".join(c for k, c in chunks if k == b"IDAT"))
    stride = 1 + (width + 7) // 8
    rows = []
    for y in range(height):
        line = pixels[y * stride : (y + 1) * stride]
        assert line[0] == 0  # filter type None
        bits = "".join(f"{byte:08b}" for byte in line[1:])[:width]
        rows.append([int(b) for b in bits])
    return width, height, rows


def test_png_is_a_png_of_the_qr_code(tmp_path: Path, text: str) -> None:
    path = payload_png(text, tmp_path / "rx.png", box_size=3)
    matrix = payload_matrix(text)
    width, height, rows = read_png(path)
    assert width == height == len(matrix) * 3
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            assert rows[y * 3 + 1][x * 3 + 2] == (0 if dark else 1)
    # Finder pattern in the top left corner, after the 4-module quiet zone.
    assert matrix[4][4:11] == [True] * 7 and not any(matrix[0])


def test_qr_sizes(text: str) -> None:
    small = payload_matrix("RX1.abc")
    assert len(small) == 21 + 8  # version 1 plus quiet zone
    assert 21 < len(payload_matrix(text)) - 8 <= 177
    with pytest.raises(PayloadTooLarge):
        payload_matrix("RX1." + "aB3_-x" * 500)  # 3004 bytes, no alphanumeric runs: over 2953


def test_terminal_rendering(text: str) -> None:
    out = payload_terminal(text)
    lines = out.splitlines()
    modules = len(payload_matrix(text, border=2))
    assert len(lines) == (modules + 1) // 2
    assert all(len(line) == modules for line in lines)
    assert set(out) <= {"\n", "\u2580", "\u2584", "\u2588", "\xa0"}
    assert payload_terminal(text, dark_terminal=False) != out


def test_png_scans_back_to_the_same_payload(tmp_path):
    """A real scan of the rendered QR code (zxing-cpp) gives back the exact payload text."""
    text = encode_payload(_scan_sample_payload())
    path = payload_png(text, tmp_path / "qr.png")

    assert read_qr_image(path) == text
    assert decode_payload(read_qr_image(path)).rx_id == decode_payload(text).rx_id


def _scan_sample_payload():
    document = build_prescription(
        doctor="0x" + "ab" * 20,
        patient_pseudonym="p" * 22,
        medications=[
            MedicationSpec(
                code="1",
                system="urn:x",
                text="Drug 5 mg",
                dosage_text="daily",
                quantity=7,
                unit="tablet",
                supply_days=7,
            )
        ],
        valid_from=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    return PrescriptionPayload.create(
        chain_id=31338, registry="0x" + "cd" * 20, claim_key=ClaimKey.generate(), document=document
    )
