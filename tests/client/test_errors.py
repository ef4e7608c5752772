"""Every custom error the registry can raise has a named Python exception with a readable message."""

from __future__ import annotations

from rxchain import errors
from rxchain.chain.deployment import load_abi

# OpenZeppelin errors the registry's code paths never reach (it only calls tryRecover, and keeps the
# regulator's rules); they stay decodable as ContractRevert with their name.
UNREACHABLE = {
    "ECDSAInvalidSignature", "ECDSAInvalidSignatureLength", "ECDSAInvalidSignatureS", "InvalidShortString",
    "StringTooLong", "SafeCastOverflowedUintDowncast", "AccessControlBadConfirmation",
    "AccessControlInvalidDefaultAdmin", "AccessControlEnforcedDefaultAdminDelay", "MerkleProofInvalidMultiproof",
}  # fmt: skip


def test_every_reachable_abi_error_has_a_python_class():
    names = {item["name"] for item in load_abi() if item["type"] == "error"}

    missing = names - set(errors.BY_NAME) - UNREACHABLE
    assert not missing, f"add classes to rxchain/errors.py for {sorted(missing)}"


def test_every_python_error_class_names_an_abi_error_and_formats():
    abi_errors = {item["name"]: item for item in load_abi() if item["type"] == "error"}

    for name, cls in errors.BY_NAME.items():
        assert name in abi_errors, f"{name} is not an error of the registry"
        sample = {i["name"]: (b"\x01" * 32 if i["type"].startswith("bytes") else 1) for i in abi_errors[name]["inputs"]}
        message = str(cls(name, sample))
        assert message.startswith(name + ": ") and "{" not in message
