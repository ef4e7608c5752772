"""The end-to-end demonstration: onboard the consortium and take one prescription through
issue -> redeem -> dispatch -> delivered -> receipt confirmed.

Used by ``ape run lifecycle``, ``rx demo`` and the test suite, on the devnet or an ephemeral chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from eth_account.signers.local import LocalAccount
from rich.console import Console

from rxchain.audit import TrailStep, trail
from rxchain.chain.client import RegistryClient
from rxchain.errors import AlreadyRedeemed
from rxchain.core.document import MedicationSpec, build_prescription, new_patient_pseudonym
from rxchain.cli.render import trail_table
from rxchain.core.handover import AuthorizationForAnotherPharmacy
from rxchain.workflow import (
    IssuedPrescription,
    confirm_receipt_code,
    issue_prescription,
    patient_consent,
    patient_receipt,
    redeem_code,
)

CREDENTIAL_DAYS = 365


@dataclass(frozen=True)
class LifecycleResult:
    """What the demonstration did."""

    issued: IssuedPrescription
    steps: list[TrailStep]
    gas: dict[str, int]


def onboard(client: RegistryClient, ids: dict[str, LocalAccount], days: int = CREDENTIAL_DAYS) -> list[str]:
    """Admits the hospital, pharmacy, courier, auditor, manufacturer and insurer (by the regulator) and the doctor (by
    its hospital), skipping members already in good standing. Returns what it did."""
    until = client.latest_block_time() + days * 86400
    done = []
    plan = [
        ("regulator", "hospital", "hospital"),
        ("regulator", "pharmacy", "pharmacy"),
        ("regulator", "pharmacy2", "pharmacy"),
        ("regulator", "courier", "courier"),
        ("regulator", "auditor", "auditor"),
        ("regulator", "hospital2", "hospital"),
        ("regulator", "manufacturer", "manufacturer"),
        ("regulator", "insurer", "insurer"),
        ("hospital", "doctor", "doctor"),
        ("hospital2", "doctor2", "doctor"),
    ]
    for admitter, who, role in plan:
        if who not in ids or client.has_role(ids[who].address, role):
            continue
        client.admit(ids[admitter], ids[who].address, role, until)
        done.append(f"{admitter} admitted {who} as {role}")
    return done


def demo_document(doctor: str, now: int, designated_pharmacy: str | None = None) -> dict:
    """A realistic one-drug prescription document, valid from now for one day."""
    return build_prescription(
        doctor=doctor,
        patient_pseudonym=new_patient_pseudonym(),
        medications=[
            MedicationSpec(
                code="308182",
                system="http://www.nlm.nih.gov/research/umls/rxnorm",
                text="Amoxicillin 500 mg oral capsule",
                dosage_text="1 capsule 3 times a day for 5 days",
                quantity=15,
                unit="capsule",
                supply_days=5,
                frequency=3,
            )
        ],
        valid_from=datetime.fromtimestamp(now, timezone.utc),
        valid_days=1,
        designated_pharmacy=designated_pharmacy,
    )


def run_lifecycle(
    client: RegistryClient,
    ids: dict[str, LocalAccount],
    console: Console | None = None,
    *,
    show_qr: Callable[[IssuedPrescription], None] | None = None,
) -> LifecycleResult:
    """Onboards the actors and takes one prescription through all five steps, shows that a second
    pharmacy cannot fill it again, and prints the trail. ``ape run lifecycle`` and ``rx demo`` both run
    this; ``show_qr`` lets the caller show the patient's QR code once it is issued."""
    console = console or Console()
    for line in onboard(client, ids):
        console.print(f"  [dim]onboard:[/] {line}")
    doctor, pharmacy, courier = ids["doctor"], ids["pharmacy"], ids["courier"]
    document = demo_document(doctor.address, client.latest_block_time())

    issued = issue_prescription(client, doctor, document)
    console.print(
        f"1. [bold]issue[/]    the doctor issued {issued.rx_id} ({_tx(issued.tx)})"
        f"; QR payload {len(issued.payload_text)} chars"
    )
    if show_qr is not None:
        show_qr(issued)
    # The patient's app took the prescription code home at the desk; the claim key stays on the phone.
    request = client.consent_request(pharmacy.address).encode()
    authorization = patient_consent(client, issued.payload_text, request).encode()
    _, redeemed = redeem_code(client, pharmacy, authorization)
    console.print(
        "2. [bold]redeem[/]   the patient's app consented to this pharmacy, this fill"
        f"; the pharmacy redeemed ({_tx(redeemed)})"
    )
    dispatched = client.dispatch(pharmacy, issued.rx_id, courier.address)
    console.print(f"3. [bold]dispatch[/] to the courier ({_tx(dispatched)})")
    delivered = client.deliver(courier, issued.rx_id)
    console.print(f"4. [bold]deliver[/]  at the patient's door ({_tx(delivered)})")
    receipt = patient_receipt(
        client, issued.payload_text, client.delivery_request(courier.address, issued.rx_id).encode()
    )
    received = confirm_receipt_code(client, courier, receipt.encode())
    console.print(
        f"5. [bold]confirm[/]  the patient's receipt, signed on the patient's app for this courier ({_tx(received)})"
    )
    second = ids.get("pharmacy2")
    if second is not None:
        try:
            redeem_code(client, second, authorization)
            raise AssertionError(
                "a second pharmacy redeemed with another pharmacy's authorisation"
            )  # the promise broke
        except AuthorizationForAnotherPharmacy as exc:
            console.print(
                f"   a second pharmacy tries the same authorisation: [red]{type(exc).__name__}[/]"
                " — refused before anything was sent"
            )
        try:
            own = patient_consent(client, issued.payload_text, client.consent_request(second.address).encode()).encode()
            redeem_code(client, second, own)
            raise AssertionError("a second pharmacy redeemed a filled prescription")  # the registry's promise broke
        except AlreadyRedeemed as exc:
            console.print(
                f"   even with the patient's own consent, a second fill is refused: [red]{exc.name}[/]"
                " — nothing was sent"
            )

    steps = trail(client, issued.rx_id)
    names = {account.address: name for name, account in ids.items()}
    console.print(trail_table(str(issued.rx_id), steps, names))
    gas = {
        "issue": issued.tx.gas_used,
        "redeem": redeemed.gas_used,
        "dispatch": dispatched.gas_used,
        "deliver": delivered.gas_used,
        "confirm": received.gas_used,
    }
    gas["lifecycle"] = sum(gas.values())
    return LifecycleResult(issued, steps, gas)


def _tx(tx) -> str:
    return f"block {tx.block_number}, {tx.gas_used:,} gas"
