"""A hospital's batch job, for the crash test: issues ``count`` deterministic prescriptions.

    python issue_batch.py RPC_URL REGISTRY DEPLOY_BLOCK OUTBOX COUNT VALID_FROM

Prescription i has a claim key and salt derived from i, so a re-run asks for exactly the same
prescriptions. Prints "issued i" after each.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from eth_utils import keccak
from web3 import Web3

from rxchain.chain.client import RegistryClient
from rxchain.core.document import MedicationSpec, build_prescription
from rxchain.chain.signers import dev_account
from rxchain.chain.outbox import Outbox
from rxchain.core.payload import ClaimKey
from rxchain.workflow import issue_prescription


def batch_item(i: int, doctor: str, valid_from: datetime) -> tuple[dict, ClaimKey]:
    """The i-th prescription of the batch and its claim key."""
    document = build_prescription(
        doctor=doctor,
        patient_pseudonym=keccak(text=f"patient-{i}").hex()[:22],
        medications=[
            MedicationSpec(
                code="197361",
                system="http://www.nlm.nih.gov/research/umls/rxnorm",
                text="Amlodipine 5 mg tablet",
                dosage_text="1 tablet daily",
                quantity=7,
                unit="tablet",
                supply_days=7,
            )
        ],
        valid_from=valid_from,
        salt=keccak(text=f"salt-{i}")[:16],
    )
    return document, ClaimKey(keccak(text=f"claim-{i}"))


def main() -> None:
    url, registry, deploy_block, outbox, count, valid_from = sys.argv[1:7]
    client = RegistryClient(
        Web3(Web3.HTTPProvider(url)), registry, deploy_block=int(deploy_block), outbox=Outbox(outbox)
    )
    client.resume_pending()
    doctor = dev_account("doctor")
    start = datetime.fromtimestamp(int(valid_from), timezone.utc)
    for i in range(int(count)):
        document, claim = batch_item(i, doctor.address, start)
        issue_prescription(client, doctor, document, claim_key=claim)
        print(f"issued {i}", flush=True)


if __name__ == "__main__":
    main()
