"""An insurance claim's off-chain side: what the claim commits to, and its opening (no node needed).

On chain a claim holds only ``commitment = keccak256("rxchain-claim-v1:" + salt + canonical JSON)``
of the amounts and the patient's insurance reference, with a 128-bit salt from the CSPRNG: the
amounts and the insurance number stay off chain (a dictionary of insurance numbers does not open it
without the salt). The pharmacy sends the opening to the insurer off chain; the insurer recomputes
the commitment and compares it with the ClaimFiled event before approving.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from eth_utils import keccak

from rxchain.errors import InvalidValue

_DOMAIN = b"rxchain-claim-v1:"
#: The longest payment reference stamped on chain as it is (ASCII, right-padded to 32 bytes).
MAX_PAYMENT_REFERENCE = 32


@dataclass(frozen=True)
class ClaimOpening:
    """The amounts (in the currency's smallest unit) and insurance reference a claim commits to, with its salt."""

    amounts: dict[str, int]
    insurance_reference: str
    salt: bytes

    @classmethod
    def new(cls, amounts: dict[str, int], insurance_reference: str) -> "ClaimOpening":
        if not insurance_reference.strip():
            raise InvalidValue("the patient's insurance reference is empty: give it as on the insurance card")
        for key, value in amounts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidValue(
                    f"amount {key!r} must be a whole number of the currency's smallest unit (got {value!r})"
                )
        if not amounts:
            raise InvalidValue("a claim needs at least one amount (e.g. total=12800 for 128.00)")
        return cls(dict(amounts), insurance_reference.strip(), secrets.token_bytes(16))

    def canonical(self) -> bytes:
        return json.dumps(
            {"amounts": self.amounts, "insuranceReference": self.insurance_reference},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()

    @property
    def commitment(self) -> bytes:
        return keccak(_DOMAIN + self.salt + self.canonical())

    def as_json(self) -> dict:
        return {
            "amounts": self.amounts,
            "insuranceReference": self.insurance_reference,
            "salt": "0x" + self.salt.hex(),
            "commitment": "0x" + self.commitment.hex(),
        }

    @classmethod
    def from_json(cls, data: dict) -> "ClaimOpening":
        try:
            opening = cls(
                {str(k): int(v) for k, v in data["amounts"].items()},
                str(data["insuranceReference"]),
                bytes.fromhex(str(data["salt"]).removeprefix("0x")),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise InvalidValue(f"not a claim opening ({exc}): it has amounts, insuranceReference and salt") from None
        if len(opening.salt) != 16:
            raise InvalidValue("a claim opening's salt is 16 bytes")
        return opening


def payment_reference(text: str) -> bytes:
    """The payment reference as stamped on chain: up to 32 ASCII characters, right-padded with zeros."""
    raw = text.strip().encode("ascii", errors="replace")
    if not raw or len(raw) > MAX_PAYMENT_REFERENCE or b"?" in raw and "?" not in text:
        raise InvalidValue(f"a payment reference is 1 to {MAX_PAYMENT_REFERENCE} ASCII characters (got {text!r})")
    return raw.ljust(32, b"\0")


def payment_reference_text(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii", errors="replace")
