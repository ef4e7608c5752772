"""rxchain: blockchain e-prescriptions on a permissioned, Besu-style EVM chain."""

__version__ = "0.1.0"
