"""Privacy: after a full run with realistic patients, nothing a consortium member's node holds —
calldata of every transaction, topics and data of every log, every storage word of every contract —
contains any patient datum, in plain text or as an unsalted hash a dictionary attack would compute.

The hospital keeps who the patient is (name, national id, phone, diagnosis); the FHIR document it
builds carries only a pseudonym, the drugs and the dosage text; the chain gets only the salted hash
of that document. The scanner is shown to find data deliberately put on chain (a positive control),
so a zero here means zero.
"""

from __future__ import annotations

import base64
import copy
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from rxchain.core.document import (
    MedicationSpec,
    build_prescription,
    canonical_bytes,
    document_hash,
    new_patient_pseudonym,
)
from rxchain.core.payload import encode_payload
from rxchain.core.status import Status
from rxchain.workflow import confirm_payload_receipt, issue_batch, issue_prescription, redeem_payload

from .chainkit import read_registry
from .conftest import report
from .leakscan import Needle, needles, raw_needles, read_chain, scan
from .workload import address_of

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

# ------------------------------------------------------------------------------------ patients


def national_id(region: str, birth: str, sequence: str) -> str:
    """An 18-character Chinese resident identity number with its ISO 7064 MOD 11-2 check character."""
    body = region + birth + sequence
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


@dataclass(frozen=True)
class Patient:
    """What the hospital keeps about a patient: never in the document, never on chain."""

    name: str
    name_pinyin: str
    national_id: str
    phone: str
    address: str
    diagnosis: str
    icd10: str


PATIENTS = [
    Patient(
        "张伟",
        "Zhang Wei",
        national_id("110105", "19491231", "002"),
        "13812345678",
        "北京市朝阳区建国路88号",
        "2型糖尿病",
        "E11.9",
    ),
    Patient(
        "王芳",
        "Wang Fang",
        national_id("310104", "19850612", "124"),
        "+86 139 0123 4567",
        "上海市徐汇区漕溪北路201号",
        "原发性高血压",
        "I10",
    ),
    Patient(
        "李娜",
        "Li Na",
        national_id("440106", "19920304", "366"),
        "15900001111",
        "广州市天河区体育西路103号",
        "社区获得性肺炎",
        "J18.9",
    ),
    Patient(
        "刘洋",
        "Liu Yang",
        national_id("510107", "19780909", "417"),
        "18688889999",
        "成都市武侯区人民南路四段9号",
        "慢性阻塞性肺疾病急性加重",
        "J44.1",
    ),
    Patient(
        "陈静",
        "Chen Jing",
        national_id("330106", "20010101", "528"),
        "13300002222",
        "杭州市西湖区文三路477号",
        "幽门螺杆菌感染",
        "B96.81",
    ),
]

# The drugs and dosage text in each patient's document (with free text a doctor writes).
TREATMENTS = [
    [
        MedicationSpec(
            code="861007",
            system=RXNORM,
            text="二甲双胍缓释片 0.5g (Metformin ER 500 mg)",
            display="metformin 500 MG Extended Release Oral Tablet",
            dosage_text="每日两次，每次一片，随餐服用；监测空腹血糖",
            quantity=14,
            unit="tablet",
            supply_days=7,
            frequency=2,
        )
    ],
    [
        MedicationSpec(
            code="197361",
            system=RXNORM,
            text="苯磺酸氨氯地平片 5mg (Amlodipine besylate)",
            dosage_text="每日一次，每次一片，早晨服用 — check BP weekly",
            quantity=7,
            unit="tablet",
            supply_days=7,
        )
    ],
    [
        MedicationSpec(
            code="308182",
            system=RXNORM,
            text="阿莫西林胶囊 0.5g (Amoxicillin 500 mg)",
            dosage_text="一日三次，每次两粒，饭后服用，连服五天",
            quantity=30,
            unit="capsule",
            supply_days=5,
            frequency=3,
        ),
        MedicationSpec(
            code="198211",
            system=RXNORM,
            text="布洛芬缓释胶囊 0.3g (Ibuprofen SR)",
            dosage_text="发热超过38.5℃时服用一粒，间隔至少8小时",
            quantity=6,
            unit="capsule",
            supply_days=3,
            frequency=2,
        ),
    ],
    [
        MedicationSpec(
            code="896188",
            system=RXNORM,
            text="噻托溴铵吸入粉雾剂 18μg (Tiotropium)",
            dosage_text="每日一次，每次一吸，勿吞服胶囊",
            quantity=10,
            unit="capsule",
            supply_days=5,
        )
    ],
    [
        MedicationSpec(
            code="311989",
            system=RXNORM,
            text="奥美拉唑肠溶胶囊 20mg (Omeprazole)",
            dosage_text="每日两次，早晚餐前半小时服用",
            quantity=14,
            unit="capsule",
            supply_days=7,
            frequency=2,
        ),
        MedicationSpec(
            code="562251",
            system=RXNORM,
            text="克拉霉素片 0.5g (Clarithromycin)",
            dosage_text="每日两次，每次一片，疗程十四天内遵医嘱",
            quantity=14,
            unit="tablet",
            supply_days=7,
            frequency=2,
        ),
    ],
]


@dataclass
class Case:
    patient: Patient
    document: dict
    pseudonym: str
    issued: object = None  # IssuedPrescription


def documents_for(doctor: str, now: int, designated: list[str | None]) -> list[Case]:
    start = datetime.fromtimestamp(now, timezone.utc)
    out = []
    for patient, treatment, pharmacy in zip(PATIENTS, TREATMENTS, designated):
        pseudonym = new_patient_pseudonym()
        document = build_prescription(
            doctor=doctor,
            patient_pseudonym=pseudonym,
            medications=treatment,
            valid_from=start,
            valid_days=1,
            designated_pharmacy=pharmacy,
        )
        out.append(Case(patient, document, pseudonym))
    return out


def patient_needles(cases: list[Case]) -> list[Needle]:
    """Every way any patient datum, any document content, or any secret of the QR could show."""
    wanted: list[Needle] = []
    for k, case in enumerate(cases):
        p = case.patient
        for label, value in [
            ("name", p.name),
            ("name in pinyin", p.name_pinyin),
            ("national id", p.national_id),
            ("national id without check character", p.national_id[:17]),
            ("phone", p.phone),
            ("phone digits", p.phone.replace(" ", "").removeprefix("+86")),
            ("home address", p.address),
            ("diagnosis", p.diagnosis),
            ("diagnosis code", p.icd10),
            ("pseudonym", case.pseudonym),
            ("document salt", case.document["identifier"]["value"]),
        ]:
            wanted += needles(f"{label} of patient {k}", value)
        for m, entry in enumerate(case.document["entry"]):
            request = entry["resource"]
            wanted += needles(f"drug {m} of patient {k}", request["medicationCodeableConcept"]["text"])
            wanted += needles(f"dosage text {m} of patient {k}", request["dosageInstruction"][0]["text"])
        unsalted = copy.deepcopy(case.document)
        unsalted.pop("identifier")
        wanted += raw_needles(f"canonical document of patient {k} without its salt", canonical_bytes(unsalted))
        zero_salt = copy.deepcopy(case.document)
        zero_salt["identifier"]["value"] = "0" * 32
        wanted += raw_needles(f"canonical document of patient {k} with a zero salt", canonical_bytes(zero_salt))
        wanted += [
            Needle(f"document of patient {k}", "canonical bytes", canonical_bytes(case.document))
        ]  # its keccak IS the docHash
        if case.issued is not None:
            wanted += [Needle(f"claim private key of patient {k}", "bytes", case.issued.payload.claim_key.private_key)]
            wanted += needles(f"QR payload of patient {k}", case.issued.payload_text)
    return wanted


# ----------------------------------------------------------------------------------------- run


@pytest.fixture
def demo_run(client, rpc, ids):
    """The whole lifecycle for five realistic patients: two single prescriptions (one for a
    designated pharmacy, one with two fills, both refilled), three in a hospital batch; redeemed from
    their QR codes, dispatched or handed over, delivered, receipts confirmed."""
    doctor, hospital, pharmacy, courier = ids["doctor"], ids["hospital"], ids["pharmacy"], ids["courier"]
    cases = documents_for(doctor.address, client.latest_block_time(), [pharmacy.address, None, None, None, None])
    cases[0].issued = issue_prescription(client, doctor, cases[0].document)
    cases[1].issued = issue_prescription(client, doctor, cases[1].document, fills=2)
    batch = issue_batch(client, hospital, [c.document for c in cases[2:]])
    for case, issued in zip(cases[2:], batch.prescriptions):
        case.issued = issued
    for k, case in enumerate(cases):
        text = case.issued.payload_text
        redeem_payload(client, pharmacy, text)
        if k % 2:
            client.dispatch(pharmacy, case.issued.rx_id, courier.address)
            client.deliver(courier, case.issued.rx_id)
            confirm_payload_receipt(client, courier, text)
        else:
            confirm_payload_receipt(client, pharmacy, text, with_delivery=True)
    refill = cases[1].issued.payload_text  # the second fill of the two-fill prescription
    redeem_payload(client, ids["pharmacy2"], refill)
    confirm_payload_receipt(client, ids["pharmacy2"], refill, with_delivery=True)
    statuses = [client.prescription(c.issued.rx_id).status for c in cases]
    assert statuses == [Status.COMPLETED] * 5
    return cases


def test_no_patient_datum_is_on_chain_after_a_full_run(demo_run, client, rpc):
    cases = demo_run
    contents = read_chain(rpc)
    wanted = patient_needles(cases)

    findings = scan(contents, wanted)
    assert not findings, "patient data on chain:\n" + "\n".join(str(f) for f in findings[:20])

    # what is meant to be on chain is found by the same scan: it sees calldata, logs and storage
    for case in cases:
        doc_hash = document_hash(case.document)
        assert any(doc_hash in blob for _, blob in contents.calldata), "the document hash travels in redeem calldata"
        assert any(case.issued.rx_id in blob for _, blob in contents.logs), "every prescription id is in the events"
    views = read_registry(rpc, client, [c.issued.rx_id for c in cases]).prescriptions
    words = {blob[32:] for _, blob in contents.storage}
    for rx_id, (custodian, issued_at, expires_at, status, fills_left) in views.items():
        word = int(custodian, 16) | issued_at << 160 | expires_at << 200 | int(status) << 240 | fills_left << 248
        assert word.to_bytes(32, "big") in words, "the scan reads every prescription's storage word"
    report(
        f"privacy: {len(wanted)} patterns of {len(cases)} patients' data searched in {len(contents.calldata)} "
        f"transactions, {len(contents.logs)} logs, {len(contents.storage)} storage words over {contents.blocks} "
        "blocks: 0 findings"
    )


def test_scanner_finds_patient_data_put_on_chain_on_purpose(client, rpc, ids):
    """The positive control: a careless system puts a name in calldata, an unsalted hash of a
    national id as a document hash, and a phone number into a stored credential end date."""
    patient = PATIENTS[0]
    doctor, regulator = ids["doctor"], ids["regulator"]
    snapshot = rpc.snapshot()
    try:
        careless = client.transact  # each through the client, as any member's software would
        clumsy_hash = keccak(patient.national_id.encode())
        careless(
            doctor,
            "issue",
            clumsy_hash,
            address_of(keccak(text="claim")),
            "0x" + "00" * 20,
            client.latest_block_time() + 3600,
            1,
        )
        careless(
            regulator,
            "admitMember",
            address_of(keccak(text="auditor")),
            keccak(text="AUDITOR_ROLE"),
            int(patient.phone),
        )
        raw_name_tx(client, rpc, ids["stranger"], patient.name)

        contents = read_chain(rpc)
        findings = scan(
            contents,
            needles("name", patient.name)
            + needles("national id", patient.national_id)
            + needles("phone", patient.phone),
        )
        kinds = {(f.needle.datum, f.needle.encoding, f.where.split(" of ")[0].split(" ")[0]) for f in findings}
        assert ("name", "utf-8", "calldata") in kinds
        assert ("national id", "keccak256(utf-8)", "calldata") in kinds and (
            "national id",
            "keccak256(utf-8)",
            "log",
        ) in kinds
        assert ("phone", "big-endian number", "storage") in kinds, "the storage scan must see a stored datum"
        report(f"privacy control: the scanner found {len(findings)} planted occurrences ({len(kinds)} kinds)")
    finally:
        rpc.revert(snapshot)


def raw_name_tx(client, rpc, sender, text: str) -> None:
    """A transaction whose calldata is a person's name (to the registry: it reverts, and stays on chain)."""
    import coincurve

    from rxchain.chain.pipeline import sign_legacy

    raw, tx_hash = sign_legacy(
        coincurve.PrivateKey(bytes(sender.key)),
        client.chain_id,
        rpc.nonce(sender.address),
        100_000,
        bytes.fromhex(client.address[2:]),
        b"\x00\x00\x00\x00" + abi_encode(["string"], [text]),
    )
    rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
    rpc.receipt(tx_hash)


def test_qr_payload_carries_the_pseudonym_but_never_the_patients_identity(demo_run):
    """What the patient holds: the document (pseudonym, drugs, dosage) and the claim key, never who
    the patient is."""
    for case in demo_run:
        text = encode_payload(case.issued.payload)
        assert text == case.issued.payload_text
        body = zlib.decompress(base64.urlsafe_b64decode(text[4:] + "=" * (-len(text[4:]) % 4))[:-4]).decode()
        assert case.pseudonym in body
        for datum in (
            case.patient.name,
            case.patient.name_pinyin,
            case.patient.national_id,
            case.patient.phone,
            case.patient.diagnosis,
            case.patient.icd10,
            case.patient.address,
        ):
            assert datum not in body and datum.encode("unicode_escape").decode() not in body


def test_no_box_code_secret_or_insurance_reference_is_on_chain(client, rpc, ids, deployment):
    """Boxes and claims (issue 14): a manufacturer registers a lot, pharmacies dispense fills of its
    boxes for two patients, the receipts are confirmed, claims are filed, decided and paid, and a sold box
    is scanned again and reported as a duplicate. Nowhere on chain:
    a box's traceability code or scratch-panel secret (plain, as numbers, hashed unsalted, the code and
    secret together as the nullifier's preimage without its domain), a product code, an insurance
    reference or an amount, nor a claim's opening."""
    from rxchain.chain.boxes import BoxesClient
    from rxchain.core import boxes as core
    from rxchain.core.insurance import ClaimOpening

    boxes = BoxesClient.for_deployment(client, deployment)
    product = "86901234000017"  # the drug's product code (GTIN-like): it must not reach the chain
    made = [core.Box(i, f"{product[:7]}{7_000_000_000_000 + i:013d}", core.new_secret()) for i in range(12)]
    lot = core.Lot.from_boxes(made, client.latest_block_time() + 365 * 86_400)
    boxes.register_lot(ids["manufacturer"], lot)
    cases = documents_for(ids["doctor"].address, client.latest_block_time(), [None, None])
    openings, rx_ids = [], []
    for k, case in enumerate(cases):
        issued = issue_prescription(client, ids["doctor"], case.document)
        redeem_payload(client, ids["pharmacy"], issued.payload_text)
        boxes.dispense(ids["pharmacy"], issued.rx_id, [(b.code, b.secret) for b in made[3 * k : 3 * k + 3]], [lot])
        confirm_payload_receipt(client, ids["pharmacy"], issued.payload_text, with_delivery=True)
        opening = ClaimOpening.new({"total": 12_800 + k, "copay": 2_560 + k}, f"INS-3301-{PATIENTS[k].national_id}")
        boxes.file_claim(ids["pharmacy"], issued.rx_id, 0, ids["insurer"].address, opening)
        openings.append(opening)
        rx_ids.append(issued.rx_id)
    boxes.approve(ids["insurer"], rx_ids[0], 0, None)
    boxes.record_payment(ids["insurer"], rx_ids[0], 0, "PAY-0001")
    boxes.reject(ids["insurer"], rx_ids[1], 0, 3)
    # a box scanned again at another pharmacy: the duplicate report carries the box's proof, not its code
    (again,) = boxes.locate([(made[0].code, made[0].secret)], [lot])
    boxes.report_duplicate(ids["pharmacy2"], again)

    wanted: list[Needle] = needles("product code", product)
    for box in made:
        wanted += needles(f"code of box {box.index}", box.code) + needles(f"secret of box {box.index}", box.secret)
        wanted += raw_needles(f"code and secret of box {box.index}", (box.code + box.secret).encode())
        wanted += raw_needles(f"code:secret of box {box.index}", f"{box.code}:{box.secret}".encode())
    for k, opening in enumerate(openings):
        wanted += needles(f"insurance reference of claim {k}", opening.insurance_reference)
        wanted += raw_needles(f"opening of claim {k} without its salt", opening.canonical())
        wanted += [Needle(f"salt of claim {k}", "bytes", opening.salt)]
    contents = read_chain(rpc)
    findings = scan(contents, wanted)
    assert not findings, "box or claim data on chain:\n" + "\n".join(str(f) for f in findings[:20])
    # what is meant to be on chain is seen by the same scan: the nullifiers and the commitments
    assert any(made[0].nullifier in blob for _, blob in contents.logs)
    assert any(openings[1].commitment in blob for _, blob in contents.logs)
    report(
        f"privacy (boxes and claims): {len(wanted)} patterns searched in {len(contents.calldata)} transactions, "
        f"{len(contents.logs)} logs, {len(contents.storage)} storage words: 0 findings"
    )
