// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ConsortiumRoles} from "./ConsortiumRoles.sol";
import {IPrescriptionRegistry, Status} from "./interfaces/IPrescriptionRegistry.sol";
import {BatchRecord, BatchWord} from "./libraries/BatchRecord.sol";
import {PrescriptionRecord, RxRecord} from "./libraries/PrescriptionRecord.sol";

/// @title rxchain's prescription registry.
/// @notice Doctors issue prescriptions, pharmacies redeem each allowed fill once with the patient's
/// claim-key signature, and the drugs' way to the patient is stamped step by step. One storage word
/// per prescription; the facts an auditor needs are in the events.
/// @dev See {IPrescriptionRegistry} for the id scheme, the signed messages and every function's rules.
// Slither's incorrect-equality detector flags every `==` on a value read from storage, to catch
// balance checks an attacker can skew. Here such comparisons are the state machine itself: enum
// statuses and counters this contract alone writes, which nobody can move by sending ether or tokens.
// slither-disable-start incorrect-equality
contract PrescriptionRegistry is ConsortiumRoles, EIP712, IPrescriptionRegistry {
    using PrescriptionRecord for RxRecord;
    using BatchRecord for BatchWord;

    bytes32 private constant _REDEEM_TYPEHASH =
        keccak256("Redeem(bytes32 rxId,address pharmacy,uint256 fillsLeft,uint256 deadline)");
    bytes32 private constant _RECEIPT_TYPEHASH =
        keccak256("Receipt(bytes32 rxId,address deliverer,uint256 fillsLeft,uint256 deadline)");

    uint32 private constant _MAX_VALIDITY_CAP = 366 days;
    uint8 private constant _MAX_FILLS_CAP = 12;
    uint256 private constant _MAX_BATCH = 1024;

    /// @dev Limits and the pause flag share one word: one read per call.
    struct Config {
        uint32 maxValiditySeconds;
        uint8 maxFills;
        bool paused;
    }

    Config private _config;
    mapping(bytes32 id => RxRecord) private _records;
    /// @dev Keyed by {_batchKey}(hospital, root): another hospital announcing the same root writes
    /// its own slot and cannot occupy, cancel or shadow this one.
    mapping(bytes32 key => BatchWord) private _batches;

    /// @param regulator the regulator's account (DEFAULT_ADMIN_ROLE)
    /// @param adminTransferDelay seconds a regulator handover waits before it can be accepted
    /// @param maxValiditySeconds the longest a prescription may stay redeemable (3 days by China's rules)
    /// @param maxFills the most fills one prescription may allow
    constructor(address regulator, uint48 adminTransferDelay, uint32 maxValiditySeconds, uint8 maxFills)
        ConsortiumRoles(regulator, adminTransferDelay)
        EIP712("rxchain PrescriptionRegistry", "1")
    {
        _setLimits(maxValiditySeconds, maxFills);
    }

    /// @dev A pause stops what creates obligations — new prescriptions and new fills — while drugs
    /// already dispensed still reach their patients and their trail is still recorded, and a
    /// prescription can still be withdrawn. Refusing to record a delivery that happens anyway would
    /// only lose the record.
    modifier whenNotPaused() {
        if (_config.paused) revert EnforcedPause();
        _;
    }

    // ----------------------------------------------------------------------------------- issue

    /// @inheritdoc IPrescriptionRegistry
    function issue(bytes32 docHash, address claimKey, address designatedPharmacy, uint40 expiresAt, uint8 fills)
        external
        returns (bytes32 id)
    {
        Config memory c = _config;
        if (c.paused) revert EnforcedPause();
        address hospital = _checkDoctor(_msgSender());
        if (docHash == bytes32(0)) revert ZeroDocumentHash();
        if (claimKey == address(0)) revert ZeroClaimKey();
        _checkExpiryAndFills(c, expiresAt, fills);
        if (designatedPharmacy != address(0) && !hasRole(PHARMACY_ROLE, designatedPharmacy)) {
            revert NotAPharmacy(designatedPharmacy);
        }

        id = _id(claimKey, _terms(_msgSender(), docHash, designatedPharmacy));
        if (!_records[id].isEmpty()) revert AlreadyIssued(id);
        _records[id] = PrescriptionRecord.pack(_msgSender(), uint40(block.timestamp), expiresAt, Status.Active, fills);

        emit PrescriptionIssued(id, _msgSender(), hospital, docHash, designatedPharmacy, expiresAt, fills);
    }

    /// @inheritdoc IPrescriptionRegistry
    function issueBatch(bytes32[] calldata ids, uint40 expiresAt, uint8 fills) external returns (bytes32 root) {
        Config memory c = _config;
        if (c.paused) revert EnforcedPause();
        _checkMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL);
        if (ids.length == 0 || ids.length > _MAX_BATCH) revert InvalidBatchSize(ids.length, _MAX_BATCH);
        _checkExpiryAndFills(c, expiresAt, fills);

        root = _merkleRoot(ids);
        bytes32 key = _batchKey(_msgSender(), root);
        if (!_batches[key].isEmpty()) revert BatchAlreadyIssued(_msgSender(), root);
        _batches[key] = BatchRecord.pack(_msgSender(), uint40(block.timestamp), expiresAt, fills);

        _announceBatched(ids, root);
        emit BatchIssued(root, _msgSender(), expiresAt, fills, ids.length);
    }

    /// @inheritdoc IPrescriptionRegistry
    function cancelBatched(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        bytes32 root,
        bytes32[] calldata proof
    ) external returns (bytes32 id) {
        id = _id(claimKey, _terms(doctor, docHash, designatedPharmacy));
        RxRecord r = _records[id];
        if (!r.isEmpty()) {
            Status s = r.status();
            if (s == Status.Active || s == Status.Refillable) revert WrongStatus(id, s); // use cancel(id)
            _revertNotRedeemable(id, s);
        }
        // The id names its doctor and the doctor's record names its hospital: only that hospital's
        // batch is looked at, and only that hospital (or the regulator) may cancel.
        address hospital = _memberRecord(doctor).hospital;
        BatchWord b = _openableBatch(id, hospital, root, proof);
        _checkBatchManager(b, root);

        _records[id] = PrescriptionRecord.pack(doctor, b.issuedAt(), b.expiresAt(), Status.Cancelled, 0);
        emit PrescriptionOpened(id, doctor, hospital, root);
        emit PrescriptionCancelled(id, _msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function cancelBatch(address hospital, bytes32 root) external {
        bytes32 key = _batchKey(hospital, root);
        BatchWord b = _batches[key];
        if (b.isEmpty()) revert UnknownBatch(root);
        if (b.isCancelled()) revert BatchIsCancelled(root);
        _checkBatchManager(b, root);

        _batches[key] = b.cancelled();
        emit BatchCancelled(root, hospital, _msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function cancel(bytes32 id) external {
        RxRecord r = _records[id];
        Status s = r.status();
        if (s == Status.None) revert UnknownPrescription(id);
        if (s == Status.Cancelled) revert PrescriptionIsCancelled(id);

        if (s != Status.Active && s != Status.Refillable) revert AlreadyRedeemed(id);
        if (s == Status.Active && r.custodian() == _msgSender()) {
            _checkDoctor(_msgSender()); // its doctor, still licensed, of a hospital in good standing
        } else if (!hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) {
            revert NotIssuer(id, _msgSender());
        }

        _records[id] = r.withStatus(Status.Cancelled);
        emit PrescriptionCancelled(id, _msgSender());
    }

    // ---------------------------------------------------------------------------------- redeem

    /// @inheritdoc IPrescriptionRegistry
    function redeem(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature
    ) external whenNotPaused returns (bytes32 id) {
        _checkMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        id = _id(claimKey, _terms(doctor, docHash, designatedPharmacy));
        _redeem(id, _records[id], designatedPharmacy, claimKey, deadline, claimSignature);
    }

    /// @inheritdoc IPrescriptionRegistry
    function redeemBatched(
        address doctor,
        bytes32 docHash,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature,
        bytes32 root,
        bytes32[] calldata proof
    ) external whenNotPaused returns (bytes32 id) {
        _checkMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        id = _id(claimKey, _terms(doctor, docHash, designatedPharmacy));
        RxRecord r = _records[id];
        if (r.isEmpty()) {
            address hospital;
            (r, hospital) = _openBatched(id, doctor, root, proof);
            emit PrescriptionOpened(id, doctor, hospital, root);
        }
        _redeem(id, r, designatedPharmacy, claimKey, deadline, claimSignature);
    }

    // ------------------------------------------------------------------------- delivery trail

    /// @inheritdoc IPrescriptionRegistry
    function dispatch(bytes32 id, address courier) external {
        RxRecord r = _records[id];
        _checkStatus(id, r, Status.Dispensed);
        _checkCustodian(id, r);
        _checkMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        if (courier == address(0)) revert ZeroCourier();
        _checkMember(courier, COURIER_ROLE, _COURIER);

        _records[id] = r.handTo(courier, Status.Dispatched);
        emit PrescriptionDispatched(id, _msgSender(), courier);
    }

    /// @inheritdoc IPrescriptionRegistry
    function deliver(bytes32 id) external {
        RxRecord r = _records[id];
        _checkCanDeliver(id, r);
        _records[id] = r.withStatus(Status.Delivered);
        emit PrescriptionDelivered(id, _msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function deliverWithReceipt(bytes32 id, bytes32 terms, uint256 deadline, bytes calldata receiptSignature)
        external
    {
        RxRecord r = _records[id];
        _checkCanDeliver(id, r);
        emit PrescriptionDelivered(id, _msgSender());
        _records[id] = _confirm(id, r, terms, deadline, receiptSignature);
    }

    /// @inheritdoc IPrescriptionRegistry
    function confirmReceipt(bytes32 id, bytes32 terms, uint256 deadline, bytes calldata receiptSignature)
        external
    {
        RxRecord r = _records[id];
        _checkStatus(id, r, Status.Delivered);
        _records[id] = _confirm(id, r, terms, deadline, receiptSignature);
    }

    // ------------------------------------------------------------------------------ regulator

    /// @inheritdoc IPrescriptionRegistry
    function reassignCustody(bytes32 id, address to) external onlyRole(DEFAULT_ADMIN_ROLE) {
        RxRecord r = _records[id];
        (bytes32 role, uint8 bit) = _heldByRevoked(id, r);
        _checkMember(to, role, bit); // the same role as the one that held it, in good standing
        _records[id] = r.handTo(to, r.status());
        emit CustodyReassigned(id, r.custodian(), to, _msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function voidCustody(bytes32 id) external onlyRole(DEFAULT_ADMIN_ROLE) {
        RxRecord r = _records[id];
        _heldByRevoked(id, r);
        uint8 fillsLeft = r.fillsLeft();
        // The fill in the revoked member's hands is void; the fills left stay redeemable elsewhere.
        _records[id] = r.withStatus(fillsLeft == 0 ? Status.Cancelled : Status.Refillable);
        emit CustodyVoided(id, r.custodian(), _msgSender(), fillsLeft);
    }

    /// @inheritdoc IPrescriptionRegistry
    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_config.paused) revert EnforcedPause();
        _config.paused = true;
        emit Paused(_msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (!_config.paused) revert ExpectedPause();
        _config.paused = false;
        emit Unpaused(_msgSender());
    }

    /// @inheritdoc IPrescriptionRegistry
    function setLimits(uint32 maxValiditySeconds, uint8 maxFills) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setLimits(maxValiditySeconds, maxFills);
    }

    // ---------------------------------------------------------------------------------- views

    /// @inheritdoc IPrescriptionRegistry
    function prescription(bytes32 id) external view returns (Prescription memory) {
        RxRecord r = _records[id];
        return Prescription(r.custodian(), r.issuedAt(), r.expiresAt(), r.status(), r.fillsLeft());
    }

    /// @inheritdoc IPrescriptionRegistry
    function computeId(address doctor, bytes32 docHash, address designatedPharmacy, address claimKey)
        external
        pure
        returns (bytes32 id, bytes32 terms)
    {
        terms = _terms(doctor, docHash, designatedPharmacy);
        id = _id(claimKey, terms);
    }

    /// @inheritdoc IPrescriptionRegistry
    function redeemDigest(bytes32 id, address pharmacy, uint256 fillsLeft, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _redeemDigest(id, pharmacy, fillsLeft, deadline);
    }

    /// @inheritdoc IPrescriptionRegistry
    function receiptDigest(bytes32 id, address deliverer, uint256 fillsLeft, uint256 deadline)
        external
        view
        returns (bytes32)
    {
        return _receiptDigest(id, deliverer, fillsLeft, deadline);
    }

    /// @inheritdoc IPrescriptionRegistry
    function batch(address hospital, bytes32 root)
        external
        view
        returns (uint40 issuedAt, uint40 expiresAt, uint8 fills, bool cancelled)
    {
        BatchWord b = _batches[_batchKey(hospital, root)];
        return (b.issuedAt(), b.expiresAt(), b.fills(), b.isCancelled());
    }

    /// @inheritdoc IPrescriptionRegistry
    function limits() external view returns (uint32 maxValiditySeconds, uint8 maxFills, bool isPaused) {
        Config memory c = _config;
        return (c.maxValiditySeconds, c.maxFills, c.paused);
    }

    /// @inheritdoc IPrescriptionRegistry
    function paused() external view returns (bool) {
        return _config.paused;
    }

    // -------------------------------------------------------------------------------- helpers

    function _setLimits(uint32 maxValiditySeconds, uint8 maxFills) private {
        if (
            maxValiditySeconds == 0 || maxValiditySeconds > _MAX_VALIDITY_CAP || maxFills == 0
                || maxFills > _MAX_FILLS_CAP
        ) revert InvalidLimits(maxValiditySeconds, maxFills);
        _config.maxValiditySeconds = maxValiditySeconds;
        _config.maxFills = maxFills;
        emit LimitsChanged(maxValiditySeconds, maxFills);
    }

    /// @dev One fill of prescription `id` (record `r`, possibly just opened from a batch) for the caller.
    function _redeem(
        bytes32 id,
        RxRecord r,
        address designatedPharmacy,
        address claimKey,
        uint256 deadline,
        bytes calldata claimSignature
    ) private {
        // Who before when: another pharmacy hears NotDesignatedPharmacy whatever the status.
        if (designatedPharmacy != address(0) && designatedPharmacy != _msgSender()) {
            revert NotDesignatedPharmacy(id, _msgSender());
        }
        Status s = r.status();
        if (s != Status.Active && s != Status.Refillable) _revertNotRedeemable(id, s);
        if (block.timestamp > r.expiresAt()) revert Expired(id, r.expiresAt());
        if (block.timestamp > deadline) revert SignatureDeadlinePassed(deadline);

        uint8 fillsLeft = r.fillsLeft();
        // A zero signer means an invalid signature: never a match, even for a zero claim key (a batch
        // cannot see inside its ids, so one may name none). The patient's consent names this pharmacy;
        // a paper fill slip, signed before any pharmacy was chosen, names none (pharmacy = 0) and is
        // only tried when the first does not match.
        address signer = _recover(_redeemDigest(id, _msgSender(), fillsLeft, deadline), claimSignature);
        if (signer == address(0) || signer != claimKey) {
            signer = _recover(_redeemDigest(id, address(0), fillsLeft, deadline), claimSignature);
            if (signer == address(0) || signer != claimKey) revert BadClaimSignature(id);
        }

        _records[id] = r.takeFill(_msgSender());
        emit PrescriptionRedeemed(id, _msgSender(), fillsLeft - 1);
    }

    /// @dev The record a batched prescription starts from, once its proof and doctor check out, and
    /// the hospital whose batch it opened from (the doctor's own).
    function _openBatched(bytes32 id, address doctor, bytes32 root, bytes32[] calldata proof)
        private
        view
        returns (RxRecord, address hospital)
    {
        Credential memory m = _memberRecord(doctor);
        hospital = m.hospital;
        BatchWord b = _openableBatch(id, hospital, root, proof);
        // The single path checks the doctor's licence at issue; a batch cannot see its doctors until
        // now, so the doctor's current uninterrupted licence must have been live when the batch was
        // issued: begun no later, ended no earlier. A licence that lapsed or was revoked and was
        // renewed later does not reach back to a batch issued before it.
        uint40 issuedAt = b.issuedAt();
        if (m.roles & _DOCTOR == 0 || m.since > issuedAt || m.validUntil < issuedAt) {
            revert NotBatchDoctor(id, doctor, hospital);
        }
        // And a revoked or lapsed hospital's batches are refused at once.
        _checkLiveHospital(doctor, hospital);
        return (PrescriptionRecord.pack(doctor, b.issuedAt(), b.expiresAt(), Status.Active, b.fills()), hospital);
    }

    /// @dev The live batch `root` of `hospital`, after checking that `proof` shows `id` in it.
    function _openableBatch(bytes32 id, address hospital, bytes32 root, bytes32[] calldata proof)
        private
        view
        returns (BatchWord b)
    {
        b = _batches[_batchKey(hospital, root)];
        if (b.isEmpty()) revert UnknownBatch(root);
        if (b.isCancelled()) revert BatchIsCancelled(root);
        if (!MerkleProof.verifyCalldata(proof, root, _leaf(id))) revert NotInBatch(id, root);
    }

    /// @dev Reverts unless the caller is the batch's hospital in good standing, or the regulator.
    function _checkBatchManager(BatchWord b, bytes32 root) private view {
        if (hasRole(DEFAULT_ADMIN_ROLE, _msgSender())) return;
        if (b.hospital() != _msgSender()) revert NotBatchHospital(root, _msgSender());
        _checkMember(_msgSender(), HOSPITAL_ROLE, _HOSPITAL);
    }

    /// @dev The Merkle root over the leaves ({_leaf}) of `ids`: sorted-pair keccak256 level by level, an
    /// odd last node carried up (any such tree verifies with OpenZeppelin's MerkleProof). Computed in
    /// place in the free memory past the free memory pointer, which is left as it was (scratch space).
    function _merkleRoot(bytes32[] calldata ids) private pure returns (bytes32 root) {
        assembly ("memory-safe") {
            let n := ids.length
            let level := mload(0x40)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(0x00, calldataload(add(ids.offset, shl(5, i))))
                mstore(add(level, shl(5, i)), keccak256(0x00, 0x20))
            }
            for {} gt(n, 1) {} {
                let half := shr(1, n)
                for { let i := 0 } lt(i, half) { i := add(i, 1) } {
                    let a := mload(add(level, shl(6, i)))
                    let b := mload(add(level, add(shl(6, i), 0x20)))
                    switch gt(a, b)
                    case 0 {
                        mstore(0x00, a)
                        mstore(0x20, b)
                    }
                    default {
                        mstore(0x00, b)
                        mstore(0x20, a)
                    }
                    mstore(add(level, shl(5, i)), keccak256(0x00, 0x40))
                }
                switch and(n, 1)
                case 1 {
                    mstore(add(level, shl(5, half)), mload(add(level, shl(5, sub(n, 1)))))
                    n := add(half, 1)
                }
                default { n := half }
            }
            root := mload(level)
        }
    }

    /// @dev Emits {PrescriptionBatched}(id, root) for each of `ids`, read straight from calldata.
    function _announceBatched(bytes32[] calldata ids, bytes32 root) private {
        bytes32 topic = PrescriptionBatched.selector;
        assembly ("memory-safe") {
            let end := add(ids.offset, shl(5, ids.length))
            for { let p := ids.offset } lt(p, end) { p := add(p, 0x20) } { log3(0, 0, topic, calldataload(p), root) }
        }
    }

    /// @dev The Merkle leaf of prescription `id`: keccak256 of its 32 bytes. An inner node is keccak256
    /// of 64 bytes, and so is an id (claim key and terms): were the id itself the leaf, two chosen
    /// leaves could have an id as their parent, and that id would open from the batch although no
    /// event announced it. A leaf and an inner node now differ in the length of what was hashed, so
    /// neither can pass for the other (OpenZeppelin's MerkleProof guidance).
    function _leaf(bytes32 id) private pure returns (bytes32 leaf) {
        assembly ("memory-safe") {
            mstore(0x00, id)
            leaf := keccak256(0x00, 0x20)
        }
    }

    /// @dev The storage key of `hospital`'s batch with Merkle root `root`.
    function _batchKey(address hospital, bytes32 root) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0x00, and(hospital, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(0x20, root)
            key := keccak256(0x00, 0x40)
        }
    }

    function _checkExpiryAndFills(Config memory c, uint40 expiresAt, uint8 fills) private view {
        uint256 latest = block.timestamp + c.maxValiditySeconds;
        if (expiresAt <= block.timestamp || expiresAt > latest) revert InvalidExpiry(expiresAt, latest);
        if (fills == 0 || fills > c.maxFills) revert InvalidFills(fills, c.maxFills);
    }

    /// @dev Reverts unless prescription `id` (record `r`) is Dispensed or Dispatched and its custodian is
    /// no longer in good standing in the role that holds it; returns that role and its bit.
    function _heldByRevoked(bytes32 id, RxRecord r) private view returns (bytes32 role, uint8 bit) {
        Status s = r.status();
        if (s == Status.Dispensed) (role, bit) = (PHARMACY_ROLE, _PHARMACY);
        else if (s == Status.Dispatched) (role, bit) = (COURIER_ROLE, _COURIER);
        else _revertWrongStatus(id, s);
        address custodian = r.custodian();
        if (hasRole(role, custodian)) revert CustodianInGoodStanding(id, custodian);
    }

    /// @dev The courier of a Dispatched prescription or the pharmacy of a Dispensed one, in good standing.
    function _checkCanDeliver(bytes32 id, RxRecord r) private view {
        Status s = r.status();
        if (s == Status.Dispatched) {
            _checkCustodian(id, r);
            _checkMember(_msgSender(), COURIER_ROLE, _COURIER);
        } else if (s == Status.Dispensed) {
            _checkCustodian(id, r);
            _checkMember(_msgSender(), PHARMACY_ROLE, _PHARMACY);
        } else {
            // Who before when: a courier that never held it hears NotCustodian, not the status.
            if (s == Status.Delivered || s == Status.Completed || s == Status.Refillable) _checkCustodian(id, r);
            _revertWrongStatus(id, s);
        }
    }

    /// @dev Checks the claim key's receipt signature and returns the record after receipt.
    function _confirm(bytes32 id, RxRecord r, bytes32 terms, uint256 deadline, bytes calldata signature)
        private
        returns (RxRecord)
    {
        if (block.timestamp > deadline) revert SignatureDeadlinePassed(deadline);
        uint8 fillsLeft = r.fillsLeft();
        // The receipt names who handed the drugs over (the custodian: the courier at the door, or the
        // pharmacy at the counter); a paper receipt slip, signed before anyone was chosen, names none.
        address signer = _recover(_receiptDigest(id, r.custodian(), fillsLeft, deadline), signature);
        if (signer == address(0) || _id(signer, terms) != id) {
            signer = _recover(_receiptDigest(id, address(0), fillsLeft, deadline), signature);
            if (signer == address(0) || _id(signer, terms) != id) revert BadClaimSignature(id);
        }
        emit ReceiptConfirmed(id, _msgSender(), fillsLeft);
        return r.withStatus(fillsLeft == 0 ? Status.Completed : Status.Refillable);
    }

    function _checkStatus(bytes32 id, RxRecord r, Status expected) private pure {
        Status s = r.status();
        if (s != expected) _revertWrongStatus(id, s);
    }

    function _checkCustodian(bytes32 id, RxRecord r) private view {
        if (r.custodian() != _msgSender()) revert NotCustodian(id, _msgSender(), r.custodian());
    }

    function _revertWrongStatus(bytes32 id, Status s) private pure {
        if (s == Status.None) revert UnknownPrescription(id);
        revert WrongStatus(id, s);
    }

    function _revertNotRedeemable(bytes32 id, Status s) private pure {
        if (s == Status.None) revert UnknownPrescription(id);
        if (s == Status.Cancelled) revert PrescriptionIsCancelled(id);
        revert AlreadyRedeemed(id);
    }

    function _redeemDigest(bytes32 id, address pharmacy, uint256 fillsLeft, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(_REDEEM_TYPEHASH, id, pharmacy, fillsLeft, deadline)));
    }

    function _receiptDigest(bytes32 id, address deliverer, uint256 fillsLeft, uint256 deadline)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(_RECEIPT_TYPEHASH, id, deliverer, fillsLeft, deadline)));
    }

    /// @dev The signer of `digest`, or zero for a malformed or malleable signature. Reads (r, s, v)
    /// straight from calldata: no copy to memory.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        if (signature.length != 65) return address(0);
        // The error and its argument are not needed: every failure returns the zero signer, which
        // the callers refuse as BadClaimSignature.
        // slither-disable-next-line unused-return
        (signer,,) = ECDSA.tryRecover(
            digest, uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64])
        );
    }

    function _terms(address doctor, bytes32 docHash, address designatedPharmacy) private pure returns (bytes32) {
        return keccak256(abi.encode(doctor, docHash, designatedPharmacy));
    }

    function _id(address claimKey, bytes32 terms) private pure returns (bytes32 id) {
        // keccak256(abi.encode(claimKey, terms)), hashed in the scratch space (no memory expansion).
        assembly ("memory-safe") {
            mstore(0x00, and(claimKey, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(0x20, terms)
            id := keccak256(0x00, 0x40)
        }
    }
}
// slither-disable-end incorrect-equality
