"""Who signs: the devnet's well-known development identities, and real keys for real networks.

On the devnet every role has a development key derived from the public development mnemonic (the
same one anvil funds), so a demo needs no key handling. These keys are known to everyone: never use
them on a consortium network. There, a signer is an encrypted keystore file (its password in
$RXCHAIN_KEYSTORE_PASSWORD) or a private key in an environment variable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from rxchain.errors import BadInput

Account.enable_unaudited_hdwallet_features()

#: The public development mnemonic (anvil's default): its keys are known to everyone.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

#: Development identities: name -> index in the development mnemonic.
DEV_IDENTITIES: dict[str, int] = {
    "regulator": 0,
    "hospital": 1,
    "doctor": 2,
    "pharmacy": 3,
    "courier": 4,
    "auditor": 5,
    "pharmacy2": 6,
    "courier2": 7,
    "hospital2": 8,
    "doctor2": 9,
    "manufacturer": 10,
    "insurer": 11,
}


class SignerNotFound(BadInput):
    """The named signer is neither a development identity nor a readable key."""


def dev_account(name: str) -> LocalAccount:
    """The development key of identity ``name`` (devnet and tests only)."""
    if name not in DEV_IDENTITIES:
        raise SignerNotFound(f"no development identity {name!r}: use one of {', '.join(DEV_IDENTITIES)}")
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{DEV_IDENTITIES[name]}")


def dev_accounts() -> dict[str, LocalAccount]:
    """Every development identity."""
    return {name: dev_account(name) for name in DEV_IDENTITIES}


def load_signer(spec: str, *, allow_dev: bool) -> LocalAccount:
    """A signer from ``spec``: a development identity name (when allowed), ``env:VAR`` holding a
    private key, or the path of an encrypted keystore file (password in $RXCHAIN_KEYSTORE_PASSWORD)."""
    if spec.startswith("env:"):
        value = os.environ.get(spec[4:])
        if not value:
            raise SignerNotFound(f"environment variable {spec[4:]} is not set")
        return Account.from_key(value)
    path = Path(spec)
    if path.is_file():
        password = os.environ.get("RXCHAIN_KEYSTORE_PASSWORD")
        if password is None:
            raise SignerNotFound(f"set RXCHAIN_KEYSTORE_PASSWORD to unlock {path}")
        try:
            return Account.from_key(Account.decrypt(json.loads(path.read_text()), password))
        except ValueError as exc:
            raise SignerNotFound(f"cannot unlock {path}: {exc}") from None
    if path.is_dir():
        raise SignerNotFound(f"{spec} is a folder: give a keystore file, env:VAR or a development identity")
    if allow_dev and spec in DEV_IDENTITIES:
        return dev_account(spec)
    if os.sep in spec or spec.endswith(".json"):
        raise SignerNotFound(f"no keystore file {spec}")
    if allow_dev:
        return dev_account(spec)
    raise SignerNotFound(f"{spec!r} is not a keystore file or env:VAR (development identities are for the devnet only)")
