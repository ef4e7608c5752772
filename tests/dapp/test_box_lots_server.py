"""The public lot files served to the box pages (rxchain.web.lots): api/lots/locate and api/lots/<root> on the
dApp's and the patient's servers; a malformed lot file is skipped with its named reason, never a crash."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest

from rxchain.core import boxes as core
from rxchain.web.dapp import make_server
from rxchain.web.lots import LotIndex
from rxchain.web.patient import make_patient_server


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def new_lot(count: int, expires_at: int = 2_000_000_000) -> tuple[core.Lot, list[core.Box]]:
    made = [core.Box(i, core.new_secret(), core.new_secret()) for i in range(count)]
    return core.Lot.from_boxes(made, expires_at), made


def write(folder, lot: core.Lot) -> None:
    (folder / f"0x{lot.root.hex()}.lot.json").write_text(lot.to_json())


def leaf_of(box: core.Box) -> str:
    return "0x" + core.box_leaf(box.nullifier).hex()


@pytest.fixture
def served(tmp_path, deployment, rpc_url):
    """(dApp server, patient's server) on one lot folder."""
    dapp = make_server("127.0.0.1", 0, deployment=deployment, rpc_url=rpc_url, lots_dir=tmp_path).start()
    patient = make_patient_server("127.0.0.1", 0, deployment=deployment, rpc_url=rpc_url, lots_dir=tmp_path).start()
    yield tmp_path, dapp, patient
    dapp.stop()
    patient.stop()


def test_locate_finds_a_box_and_its_proof_and_serves_the_lot_file(served):
    folder, dapp, patient = served
    lot, made = new_lot(11)
    write(folder, lot)
    for server in (dapp, patient):
        status, headers, body = get(f"{server.url}api/lots/locate?leaf={leaf_of(made[6])}")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        found = json.loads(body)
        assert found == {
            "lot": "0x" + lot.root.hex(),
            "index": 6,
            "proof": ["0x" + node.hex() for node in lot.proof(6)],
            "count": 11,
            "expiresAt": lot.expires_at,
        }
        status, _, body = get(f"{server.url}api/lots/0x{lot.root.hex()}")
        assert status == 200 and body.decode() == lot.to_json()  # no code, no secret: root, count, expiry, leaves
        assert made[6].secret not in body.decode() and made[6].code not in body.decode()


def test_locate_answers_404_for_a_box_no_lot_file_holds_and_400_for_no_leaf(served):
    folder, dapp, patient = served
    lot, made = new_lot(3)
    write(folder, lot)
    stranger = core.Box(0, made[0].code, core.new_secret())  # the printed code with a guessed secret
    for server in (dapp, patient):
        assert get(f"{server.url}api/lots/locate?leaf={leaf_of(stranger)}")[0] == 404
        assert get(f"{server.url}api/lots/0x{'ab' * 32}")[0] == 404
        assert get(f"{server.url}api/lots/locate?leaf=0x1234")[0] == 400
        assert get(f"{server.url}api/lots/locate")[0] == 400
        assert get(f"{server.url}api/lots/not-a-root")[0] == 400


def test_a_lot_file_added_later_is_found_without_a_restart(served):
    folder, dapp, _patient = served
    first, _ = new_lot(2)
    write(folder, first)
    later, made = new_lot(4)
    assert get(f"{dapp.url}api/lots/locate?leaf={leaf_of(made[3])}")[0] == 404
    write(folder, later)
    status, _, body = get(f"{dapp.url}api/lots/locate?leaf={leaf_of(made[3])}")
    assert status == 200 and json.loads(body)["lot"] == "0x" + later.root.hex()
    (folder / f"0x{later.root.hex()}.lot.json").unlink()
    assert get(f"{dapp.url}api/lots/locate?leaf={leaf_of(made[3])}")[0] == 404


def test_malformed_lot_files_are_skipped_with_a_named_reason(served, caplog):
    folder, dapp, _patient = served
    good, made = new_lot(5)
    write(folder, good)
    damaged, _ = new_lot(3)
    data = json.loads(damaged.to_json())
    data["leaves"].reverse()  # the leaves no longer make the root the file names
    (folder / "damaged.lot.json").write_text(json.dumps(data))
    (folder / "garbage.lot.json").write_text("{not json")
    (folder / "empty.lot.json").write_text(json.dumps({"lot": "0x" + "00" * 32, "leaves": []}))
    (folder / "copy.lot.json").write_text(good.to_json())  # the same lot twice
    (folder / "binary.lot.json").write_bytes(b"\xff\xfe\x00")
    with caplog.at_level(logging.WARNING, logger="rxchain.web.lots"):
        status, _, body = get(f"{dapp.url}api/lots/locate?leaf={leaf_of(made[4])}")
    assert status == 200 and json.loads(body)["index"] == 4  # the good lot is served all the same
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "rxchain.web.lots")
    assert "damaged.lot.json skipped: DamagedLotFile" in logged
    assert "garbage.lot.json skipped: NotALotFile" in logged
    assert "empty.lot.json skipped: NotALotFile" in logged
    assert "binary.lot.json skipped: UnreadableLotFile" in logged
    assert "DuplicateLot" in logged
    assert get(f"{dapp.url}api/lots/0x{damaged.root.hex()}")[0] == 404


def test_the_index_reads_each_file_once_until_it_changes(tmp_path, caplog):
    lot, made = new_lot(2)
    write(tmp_path, lot)
    (tmp_path / "bad.lot.json").write_text("[]")
    index = LotIndex(tmp_path)
    with caplog.at_level(logging.WARNING, logger="rxchain.web.lots"):
        for _ in range(3):
            assert index.locate(core.box_leaf(made[1].nullifier))["index"] == 1
    assert index.skipped == {"bad.lot.json": "NotALotFile"}
    assert sum("bad.lot.json" in r.getMessage() for r in caplog.records) == 1  # logged once, not per request
    assert LotIndex(tmp_path / "missing").locate(core.box_leaf(made[1].nullifier)) is None


def test_rx_serve_serves_the_lot_folder_it_is_given(deployment, rpc_url, tmp_path, monkeypatch):
    import rxchain.chain.deployment as records
    from rxchain.web.server import WebServer
    from rxchain.web.service import ServeOptions, build

    monkeypatch.setattr(records, "load_deployment", lambda network: deployment)
    lot, made = new_lot(2)
    write(tmp_path, lot)
    options = ServeOptions(
        network="local", dapp=True, console=False, patient=True, rpc_url=rpc_url, sign_in=False, lots_dir=str(tmp_path)
    )
    app, parts = build(options)
    with WebServer(app, parts=parts) as server:
        for part in ("dapp", "patient"):
            status, _, body = get(f"{server.part_url(part)}api/lots/locate?leaf={leaf_of(made[1])}")
            assert status == 200 and json.loads(body)["lot"] == "0x" + lot.root.hex(), part


def test_the_lot_files_are_indexed_when_the_server_starts(deployment, rpc_url, tmp_path, caplog):
    (tmp_path / "torn.lot.json").write_text('{"lot": "0x')  # a copy cut short
    with caplog.at_level(logging.WARNING, logger="rxchain.web.lots"):
        server = make_server("127.0.0.1", 0, deployment=deployment, rpc_url=rpc_url, lots_dir=tmp_path).start()
        try:
            assert any("torn.lot.json skipped: NotALotFile" in r.getMessage() for r in caplog.records)  # no request yet
            assert get(f"{server.url}config.json")[0] == 200  # and the server serves
        finally:
            server.stop()
