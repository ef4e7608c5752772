"""Prescription statuses, mirroring the registry's ``Status`` enum."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Where a prescription stands (contracts/interfaces/IPrescriptionRegistry.sol)."""

    NONE = 0
    ACTIVE = 1
    CANCELLED = 2
    DISPENSED = 3
    DISPATCHED = 4
    DELIVERED = 5
    COMPLETED = 6
    REFILLABLE = 7

    @property
    def label(self) -> str:
        """A lower-case word for tables and JSON."""
        return self.name.lower()
