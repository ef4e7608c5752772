"""What the box and claim tests share: the DrugBoxes deployment beside the module's registry, a
manufacturer and an insurer, lots made as the client makes them (rxchain.core.boxes), and a pharmacy's
way to build dispense() arguments from scanned boxes."""

from __future__ import annotations

import itertools

import pytest
from eth_utils import keccak

from rxchain.core import boxes as core

from .conftest import CREDENTIAL_TERM, DAY, normalise

MANUFACTURER_ROLE = keccak(text="MANUFACTURER_ROLE")
INSURER_ROLE = keccak(text="INSURER_ROLE")
PHARMACY_ROLE_ID = keccak(text="PHARMACY_ROLE")

_serial = itertools.count(1)


def lot_boxes(count: int) -> list[core.Box]:
    """``count`` boxes with fresh codes (deterministic per run) and CSPRNG secrets, as a manufacturer makes them."""
    start = next(_serial) * 100_000
    return [core.Box(i, f"{81_000_000_000_000_000_000 + start + i:020d}", core.new_secret()) for i in range(count)]


class Factory:
    """A manufacturer's lots: registered on chain, boxes known to the test (code and secret)."""

    def __init__(self, boxes_contract, chain, manufacturer):
        self.contract = boxes_contract
        self.chain = chain
        self.manufacturer = manufacturer
        self.lots: list = []  # registered in the current test (the box ledger reads them)

    def lot(self, count=8, *, expires_in=365 * DAY, expires_at=None, sender=None):
        boxes = lot_boxes(count)
        made = core.Lot.from_boxes(boxes)
        made.expires_at = expires_at if expires_at is not None else self.chain.pending_timestamp + expires_in
        made.boxes = boxes  # the manufacturer's side: codes and secrets, by index
        made.register_tx = self.contract.registerLot(
            made.root, made.count, made.expires_at, sender=sender or self.manufacturer
        )
        self.lots.append(made)
        return made


def dispense_group(lot, boxes):
    """One LotBoxes argument for ``boxes`` of ``lot`` (any order: sorted by index here)."""
    boxes = sorted(boxes, key=lambda b: b.index)
    indexes = [b.index for b in boxes]
    return (lot.root, indexes, [b.nullifier for b in boxes], lot.multiproof(indexes))


def fill_nullifiers(*groups):
    """The nullifiers of a fill, in the order dispense() recorded them."""
    return [n for group in groups for n in group[2]]


def _funded(accounts, funder):
    """A fresh test account beyond the ten named parties, with ether enough for ape's balance check
    (gas is free on the consortium's chain)."""
    account = accounts.generate_test_account()
    funder.transfer(account, 10**18)
    return account


@pytest.fixture(scope="module")
def manufacturer(accounts, regulator):
    return _funded(accounts, regulator)


@pytest.fixture(scope="module")
def other_manufacturer(accounts, regulator):
    return _funded(accounts, regulator)


@pytest.fixture(scope="module")
def insurer(accounts, regulator):
    return _funded(accounts, regulator)


@pytest.fixture(scope="module")
def other_insurer(accounts, regulator):
    return _funded(accounts, regulator)


@pytest.fixture(scope="module")
def drug_boxes(project, registry, chain, regulator, manufacturer, other_manufacturer, insurer, other_insurer):
    """DrugBoxes reading the module's registry; two manufacturers and two insurers admitted."""
    deployed = project.DrugBoxes.deploy(registry.address, sender=regulator)
    end = chain.pending_timestamp + CREDENTIAL_TERM
    for account, role in [
        (manufacturer, MANUFACTURER_ROLE),
        (other_manufacturer, MANUFACTURER_ROLE),
        (insurer, INSURER_ROLE),
        (other_insurer, INSURER_ROLE),
    ]:
        registry.admitMember(account, role, end, sender=regulator)
    return deployed


@pytest.fixture(scope="module")
def module_factory(drug_boxes, chain, manufacturer):
    return Factory(drug_boxes, chain, manufacturer)


@pytest.fixture
def factory(module_factory):
    """The module's factory; lots a test registers are forgotten after it (the chain is reverted)."""
    known = len(module_factory.lots)
    yield module_factory
    del module_factory.lots[known:]


class BoxLedger:
    """DrugBoxes' observable state for what the test made: every lot's record and every box's unsold bit,
    and the fill record of every fill of every prescription issued (raw eth_call results, byte for byte)."""

    def __init__(self, contract, chain, factory, clinic):
        self.contract, self.chain, self.factory, self.clinic = contract, chain, factory, clinic

    def _reads(self):
        for lot in self.factory.lots:
            yield f"lot(0x{lot.root.hex()})", "lot(bytes32)", ["bytes32"], [lot.root]
            for i in range(lot.count):
                yield (
                    f"isUnsold(0x{lot.root.hex()[:8]}…, {i})",
                    "isUnsold(bytes32,uint256)",
                    ["bytes32", "uint256"],
                    [lot.root, i],
                )
        for rx in self.clinic.issued:
            for fills_left in range(rx.fills):
                yield (
                    f"fill(0x{rx.id.hex()[:8]}…, {fills_left})",
                    "fill(bytes32,uint8)",
                    ["bytes32", "uint8"],
                    [rx.id, fills_left],
                )

    def read(self):
        from eth_abi import encode as abi_encode

        labels, requests = [], []
        for label, signature, types, values in self._reads():
            data = keccak(text=signature)[:4] + abi_encode(types, values)
            labels.append(label)
            requests.append(("eth_call", [{"to": self.contract.address, "data": "0x" + data.hex()}, "latest"]))
        if not requests:
            return {}
        responses = self.chain.provider.web3.provider.make_batch_request(requests)
        return dict(zip(labels, [response["result"] for response in responses]))


def contract_events(tx, contract):
    """The events ``contract`` emitted in ``tx``, in order, as (name, {argument: value})."""
    return [
        (log.event_name, {k: normalise(v) for k, v in log.event_arguments.items()})
        for log in tx.events
        if normalise(log.contract_address) == normalise(contract.address)
    ]
