"""The client's plumbing: free-gas transactions, nonces, decoded refusals, the outbox, a dead node."""

from __future__ import annotations

import pytest
from web3 import Web3

from rxchain import errors
from rxchain.core.claims import sign_redeem
from rxchain.chain.client import RegistryClient
from rxchain.core.document import validate
from rxchain.dev.demo import demo_document
from rxchain.chain.outbox import Outbox
from rxchain.core.payload import ClaimKey
from rxchain.core.status import Status
from rxchain.workflow import issue_prescription, redeem_payload


def test_transactions_are_free_gas_legacy_transactions(client, w3, doctor, document):
    issued = issue_prescription(client, doctor, document)

    tx = w3.eth.get_transaction(issued.tx.tx_hash)
    assert tx["type"] == 0
    assert tx["gasPrice"] == 0
    assert tx["chainId"] == client.chain_id


def test_client_assigns_consecutive_nonces(client, w3, doctor, ids):
    start = w3.eth.get_transaction_count(doctor.address)
    hashes = []
    for _ in range(3):
        document = demo_document(doctor.address, client.latest_block_time())
        hashes.append(issue_prescription(client, doctor, document).tx.tx_hash)

    assert [w3.eth.get_transaction(h)["nonce"] for h in hashes] == [start, start + 1, start + 2]


def test_refusal_is_decoded_before_anything_is_sent(client, w3, doctor, pharmacy, document):
    issued = issue_prescription(client, doctor, document)
    redeem_payload(client, pharmacy, issued.payload_text)
    nonce_before = w3.eth.get_transaction_count(pharmacy.address)
    outbox_before = client.outbox.counts()

    with pytest.raises(errors.AlreadyRedeemed) as refused:
        redeem_payload(client, pharmacy, issued.payload_text)

    assert refused.value.name == "AlreadyRedeemed"
    assert w3.eth.get_transaction_count(pharmacy.address) == nonce_before
    assert client.outbox.counts() == outbox_before
    assert client.prescription(issued.rx_id).status is Status.DISPENSED


def test_role_refusal_names_the_account_and_role(client, ids, document):
    stranger = ids["auditor"]  # an auditor holds no doctor role

    with pytest.raises(errors.AccessControlUnauthorizedAccount) as refused:
        client.issue(stranger, b"\x01" * 32, ids["courier"].address, client.latest_block_time() + 3600)

    assert refused.value.error_args["account"] == stranger.address
    assert "doctor" in str(refused.value)


def test_expired_credential_is_refused_with_its_end_date(client, doctor, pharmacy, courier, document, chain):
    issued = issue_prescription(client, doctor, document)
    redeem_payload(client, pharmacy, issued.payload_text)
    client.dispatch(pharmacy, issued.rx_id, courier.address)
    member = client.member(courier.address)
    chain.mine(timestamp=member.valid_until + 10)

    with pytest.raises(errors.CredentialExpired) as refused:
        client.deliver(courier, issued.rx_id)

    assert refused.value.error_args["validUntil"] == member.valid_until
    assert refused.value.error_args["account"] == courier.address
    assert client.prescription(issued.rx_id).status is Status.DISPATCHED


def test_mined_revert_is_explained_by_replaying_it(client, w3, doctor, pharmacy, other_pharmacy, document, chain):
    """Two pharmacies race for one prescription in the same block: the loser gets the decoded reason."""
    issued = issue_prescription(client, doctor, document)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        first = redeem_signed(client, pharmacy, issued)
        second = redeem_signed(client, other_pharmacy, issued)
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])

    assert client.sender.wait(first).events[0]["event"] == "PrescriptionRedeemed"
    with pytest.raises(errors.AlreadyRedeemed):
        client.sender.wait(second)
    assert client.outbox.counts() == {"mined": 2, "failed": 1}


def redeem_signed(client, pharmacy, issued):
    """Signs and sends a redemption without waiting (the client's own steps, for the race)."""
    checked = validate(issued.payload.document)
    deadline = client.latest_block_time() + 600
    signature = sign_redeem(
        issued.payload.claim_key.private_key, client.domain, issued.rx_id, pharmacy.address, 1, deadline
    )
    call = client.contract.functions.redeem(
        checked.doctor, checked.doc_hash, "0x" + "00" * 20, issued.payload.claim_key.address, deadline, signature
    )
    entry = client.sender.sign(pharmacy, call, 200_000, f"race:{pharmacy.address}", "redeem")
    client.outbox.record([entry])
    client.sender.broadcast(entry)
    return entry


def test_dead_node_gives_a_clear_error_and_writes_nothing(deployment, doctor, tmp_path):
    with pytest.raises(errors.NodeUnavailable) as refused:
        RegistryClient(
            Web3(Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2})),
            deployment.registry,
            outbox=Outbox(tmp_path / "o.sqlite"),
        )

    assert "127.0.0.1:9" in str(refused.value)
    assert Outbox(tmp_path / "o.sqlite").counts() == {}


def test_pending_transactions_are_resent_with_the_same_bytes(client, w3, deployment, doctor, document, tmp_path):
    """A run that signed and recorded but died before sending: the next run sends exactly that."""
    claim = ClaimKey.generate()
    checked = validate(document)
    call = client.contract.functions.issue(
        checked.doc_hash, claim.address, "0x" + "00" * 20, int(checked.valid_until.timestamp()), 1
    )
    entry = client.sender.sign(doctor, call, 200_000, "issue:crashed", "issue")
    client.outbox.record([entry])  # ... and the process died here

    again = RegistryClient(w3, deployment.registry, deploy_block=deployment.deploy_block, outbox=client.outbox)
    outcomes = again.resume_pending()

    assert [o.tx_hash for o in outcomes] == [entry.tx_hash]
    assert client.outbox.counts() == {"mined": 1}
    assert w3.eth.get_transaction(entry.tx_hash)["nonce"] == entry.nonce
