"""The consortium's roles, as the registry names them."""

from __future__ import annotations

from eth_utils import keccak

from rxchain.errors import BadInput

REGULATOR_ROLE = b"\x00" * 32  # OpenZeppelin's DEFAULT_ADMIN_ROLE

#: Short names (CLI, JSON) -> role id.
ROLES: dict[str, bytes] = {
    "doctor": keccak(text="DOCTOR_ROLE"),
    "pharmacy": keccak(text="PHARMACY_ROLE"),
    "courier": keccak(text="COURIER_ROLE"),
    "auditor": keccak(text="AUDITOR_ROLE"),
    "hospital": keccak(text="HOSPITAL_ROLE"),
    "manufacturer": keccak(text="MANUFACTURER_ROLE"),
    "insurer": keccak(text="INSURER_ROLE"),
}

#: Role bit in the registry's Member.roles mask.
ROLE_BITS: dict[str, int] = {
    "doctor": 1,
    "pharmacy": 2,
    "courier": 4,
    "auditor": 8,
    "hospital": 16,
    "manufacturer": 32,
    "insurer": 64,
}


class UnknownRoleName(BadInput, ValueError):
    """A role name that is not one of the consortium's."""

    def __init__(self, name: str):
        super().__init__(f"unknown role {name!r}: use one of {', '.join(ROLES)}")


def role_id(name: str) -> bytes:
    """The role id for a short name such as ``pharmacy``."""
    try:
        return ROLES[name.lower()]
    except KeyError:
        raise UnknownRoleName(name) from None


def role_name(role: bytes | str) -> str:
    """The short name for a role id (hex or bytes); the hex itself if unknown."""
    raw = bytes.fromhex(role[2:]) if isinstance(role, str) else bytes(role)
    if raw == REGULATOR_ROLE:
        return "regulator"
    for name, value in ROLES.items():
        if value == raw:
            return name
    return "0x" + raw.hex()


def roles_from_mask(mask: int) -> list[str]:
    """The role names set in a Member.roles mask."""
    return [name for name, bit in ROLE_BITS.items() if mask & bit]
